/**
 * Metrics as an injected object (ghostunnel LiveMetrics/NilMetrics): the proxy
 * calls these few methods at connection boundaries, never per chunk. Names and
 * labels are public API and are listed in the README.
 */

/** Connection direction. */
export type Direction = 'inbound' | 'outbound'

/** What the proxy reports. */
export interface Metrics {
  /** A connection finished with `result` (allowed, denied_intention, tls_error, upstream_error, ...). */
  connection (direction: Direction, result: string): void
  /** A handshake or identity check failed, by reason. */
  handshakeFailure (reason: string): void
  /** A TCP connect to an upstream instance or the app failed. */
  upstreamConnectError (upstream: string): void
  /** Live connections; returns the undo (consul trackConn). */
  trackActive (direction: Direction): () => void
  /** Bytes relayed by one connection, reported once at close. */
  bytes (direction: Direction, toApp: number, fromApp: number): void
  /** An audit-mode intention would have denied a connection that was allowed. */
  auditDenial (): void
}

/** Metrics that do nothing (library default). */
export const noopMetrics: Metrics = {
  connection: () => {},
  handshakeFailure: () => {},
  upstreamConnectError: () => {},
  trackActive: () => () => {},
  bytes: () => {},
  auditDenial: () => {}
}

/** Metric names, the public API. */
export const METRIC_NAMES = {
  connections: 'mesh_proxy_connections_total',
  active: 'mesh_proxy_connections_active',
  handshakeFailures: 'mesh_proxy_handshake_failures_total',
  upstreamConnectErrors: 'mesh_proxy_upstream_connect_errors_total',
  bytes: 'mesh_proxy_bytes_total',
  auditDenials: 'mesh_proxy_intention_audit_denials_total'
} as const

/** An in-memory registry; one per sidecar (no globals, so tests run in parallel). */
export class MetricsRegistry implements Metrics {
  readonly #values = new Map<string, number>()

  #add (name: string, labels: Record<string, string>, delta: number): void {
    const key = name + '{' + Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, '_')}"`).join(',') + '}'
    this.#values.set(key, (this.#values.get(key) ?? 0) + delta)
  }

  connection (direction: Direction, result: string): void { this.#add(METRIC_NAMES.connections, { direction, result }, 1) }
  handshakeFailure (reason: string): void { this.#add(METRIC_NAMES.handshakeFailures, { reason }, 1) }
  upstreamConnectError (upstream: string): void { this.#add(METRIC_NAMES.upstreamConnectErrors, { upstream }, 1) }
  trackActive (direction: Direction): () => void {
    this.#add(METRIC_NAMES.active, { direction }, 1)
    let undone = false
    return () => {
      if (undone) return
      undone = true
      this.#add(METRIC_NAMES.active, { direction }, -1)
    }
  }

  bytes (direction: Direction, toApp: number, fromApp: number): void {
    this.#add(METRIC_NAMES.bytes, { direction, flow: 'to_app' }, toApp)
    this.#add(METRIC_NAMES.bytes, { direction, flow: 'from_app' }, fromApp)
  }

  auditDenial (): void { this.#add(METRIC_NAMES.auditDenials, {}, 1) }

  /** Current value of one series, e.g. `get('mesh_proxy_connections_active', { direction: 'inbound' })`. */
  get (name: string, labels: Record<string, string> = {}): number {
    const key = name + '{' + Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(',') + '}'
    return this.#values.get(key) ?? 0
  }

  /** Prometheus text exposition (format 0.0.4). */
  render (): string {
    return [...this.#values].sort().map(([k, v]) => `${k.replace('{}', '')} ${v}`).join('\n') + '\n'
  }
}
