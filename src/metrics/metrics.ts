/**
 * Metrics as an injected object (ghostunnel LiveMetrics/NilMetrics): the proxy
 * calls these few methods at connection boundaries, never per chunk. Names,
 * labels and help texts are public API and are listed in docs/metrics.md.
 */
import { buildInfo, type BuildInfo } from '../build.js'

/** Connection direction: a sidecar's two listeners, or a gateway's one (src/gateway/). */
export type Direction = 'inbound' | 'outbound' | 'mesh_gateway' | 'terminating_gateway'

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
  /** How long a relayed connection lived, reported once at close. */
  duration (direction: Direction, seconds: number): void
  /** An audit-mode intention would have denied a connection that was allowed. */
  auditDenial (): void
  /** Our leaf's expiry (unix seconds). */
  certExpiry (spiffeId: string, unixSeconds: number): void
  /** The intention table's index in use. */
  intentionsVersion (index: number): void
  /** Whether the Consul agent answers (control plane "consul" only). */
  controlPlaneUp (up: boolean): void
  /** Live pooled tunnels (mTLS connections carrying streams); returns the undo. */
  trackTunnel (direction: Direction): () => void
}

/** Metrics that do nothing (library default). */
export const noopMetrics: Metrics = {
  connection: () => {},
  handshakeFailure: () => {},
  upstreamConnectError: () => {},
  trackActive: () => () => {},
  bytes: () => {},
  duration: () => {},
  auditDenial: () => {},
  certExpiry: () => {},
  intentionsVersion: () => {},
  controlPlaneUp: () => {},
  trackTunnel: () => () => {}
}

type Kind = 'counter' | 'gauge' | 'histogram'

/** Every metric family: name, type and help. The table in docs/metrics.md is this list. */
export const METRICS = {
  connections: { name: 'mesh_proxy_connections_total', type: 'counter', help: 'Finished connections by direction and result (allowed, denied_intention, tls_error, upstream_error, relay_error, revoked, over_limit, rate_limited, aborted).' },
  active: { name: 'mesh_proxy_connections_active', type: 'gauge', help: 'Live relayed connections by direction (a stream of a tunnel is one).' },
  tunnels: { name: 'mesh_proxy_tunnels_active', type: 'gauge', help: 'Live pooled tunnels (mTLS connections carrying HTTP/2 CONNECT streams) by direction.' },
  handshakeFailures: { name: 'mesh_proxy_handshake_failures_total', type: 'counter', help: 'TLS handshake and SVID failures by reason.' },
  upstreamConnectErrors: { name: 'mesh_proxy_upstream_connect_errors_total', type: 'counter', help: 'Failed TCP connects by upstream (local_app for the inbound app).' },
  bytes: { name: 'mesh_proxy_bytes_total', type: 'counter', help: 'Relayed bytes by direction and flow (to_app, from_app), added at connection close.' },
  duration: { name: 'mesh_proxy_connection_duration_seconds', type: 'histogram', help: 'Lifetime of relayed connections.' },
  auditDenials: { name: 'mesh_proxy_intention_audit_denials_total', type: 'counter', help: 'Connections an audit-mode intention would have denied.' },
  certExpiry: { name: 'mesh_proxy_cert_expiry_timestamp_seconds', type: 'gauge', help: 'Expiry of our leaf certificate (unix seconds).' },
  intentionsVersion: { name: 'mesh_proxy_intentions_version', type: 'gauge', help: 'Index of the intention table in use.' },
  controlPlaneUp: { name: 'mesh_proxy_control_plane_up', type: 'gauge', help: '1 while the control plane agent (Consul, or the Workload API) answers, 0 while the sidecar serves from what it last had.' },
  buildInfo: { name: 'mesh_proxy_build_info', type: 'gauge', help: 'Always 1; the labels say the mesh-proxy version and the Node and OpenSSL it runs on.' }
} as const satisfies Record<string, { name: string, type: Kind, help: string }>

/** Histogram buckets for connection lifetimes (seconds). */
export const DURATION_BUCKETS = [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 3600]

type Labels = Readonly<Record<string, string>>

function renderLabels (labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
  return parts.length === 0 ? '' : `{${parts.join(',')}}`
}

/** Rendered label sets, so that the few per-connection events do not escape and join the same labels again. */
const labelTexts = new Map<string, string>()
const MAX_LABEL_TEXTS = 10_000

/** `{k="v",…}` for `labels`, escaped per the exposition format; '' for none. */
function labelText (labels: Labels): string {
  let key = ''
  for (const k in labels) key += `${k}\u0000${labels[k]!}\u0000`
  let text = labelTexts.get(key)
  if (text === undefined) {
    text = renderLabels(labels)
    if (labelTexts.size < MAX_LABEL_TEXTS) labelTexts.set(key, text)
  }
  return text
}

/** An in-memory registry; one per sidecar (no globals, so tests run in parallel). */
export class MetricsRegistry implements Metrics {
  /** family name -> label text -> value */
  readonly #values = new Map<string, Map<string, number>>()
  readonly #hist = new Map<string, { buckets: number[], sum: number, count: number }>()

  /** `build` is this process's own unless a test gives another. */
  constructor (build: BuildInfo = buildInfo()) {
    this.#set(METRICS.buildInfo.name, { version: build.version, node: build.node, openssl: build.openssl }, 1)
  }

  #add (name: string, labels: Labels, delta: number): void {
    let fam = this.#values.get(name)
    if (fam === undefined) { fam = new Map(); this.#values.set(name, fam) }
    const k = labelText(labels)
    fam.set(k, (fam.get(k) ?? 0) + delta)
  }

  #set (name: string, labels: Labels, value: number): void {
    let fam = this.#values.get(name)
    if (fam === undefined) { fam = new Map(); this.#values.set(name, fam) }
    fam.set(labelText(labels), value)
  }

  connection (direction: Direction, result: string): void { this.#add(METRICS.connections.name, { direction, result }, 1) }
  handshakeFailure (reason: string): void { this.#add(METRICS.handshakeFailures.name, { reason }, 1) }
  upstreamConnectError (upstream: string): void { this.#add(METRICS.upstreamConnectErrors.name, { upstream }, 1) }
  trackActive (direction: Direction): () => void { return this.#gauge(METRICS.active.name, direction) }
  trackTunnel (direction: Direction): () => void { return this.#gauge(METRICS.tunnels.name, direction) }

  #gauge (name: string, direction: Direction): () => void {
    this.#add(name, { direction }, 1)
    let undone = false
    return () => {
      if (undone) return
      undone = true
      this.#add(name, { direction }, -1)
    }
  }

  bytes (direction: Direction, toApp: number, fromApp: number): void {
    this.#add(METRICS.bytes.name, { direction, flow: 'to_app' }, toApp)
    this.#add(METRICS.bytes.name, { direction, flow: 'from_app' }, fromApp)
  }

  duration (direction: Direction, seconds: number): void {
    const k = labelText({ direction })
    let h = this.#hist.get(k)
    if (h === undefined) { h = { buckets: DURATION_BUCKETS.map(() => 0), sum: 0, count: 0 }; this.#hist.set(k, h) }
    for (let i = 0; i < DURATION_BUCKETS.length; i++) if (seconds <= DURATION_BUCKETS[i]!) h.buckets[i]!++
    h.sum += seconds
    h.count++
  }

  auditDenial (): void { this.#add(METRICS.auditDenials.name, {}, 1) }
  certExpiry (spiffeId: string, unixSeconds: number): void { this.#set(METRICS.certExpiry.name, { spiffe_id: spiffeId }, unixSeconds) }
  intentionsVersion (index: number): void { this.#set(METRICS.intentionsVersion.name, {}, index) }
  controlPlaneUp (up: boolean): void { this.#set(METRICS.controlPlaneUp.name, {}, up ? 1 : 0) }

  /** Current value of one series, e.g. `get('mesh_proxy_connections_active', { direction: 'inbound' })`. */
  get (name: string, labels: Labels = {}): number {
    return this.#values.get(name)?.get(labelText(labels)) ?? 0
  }

  /** Prometheus text exposition format 0.0.4. */
  render (): string {
    const out: string[] = []
    for (const m of Object.values(METRICS)) {
      if (m.type === 'histogram') {
        if (this.#hist.size === 0) continue
        out.push(`# HELP ${m.name} ${m.help}`, `# TYPE ${m.name} histogram`)
        for (const [k, h] of this.#hist) {
          const inner = k === '' ? '' : k.slice(1, -1) + ','
          DURATION_BUCKETS.forEach((b, i) => out.push(`${m.name}_bucket{${inner}le="${b}"} ${h.buckets[i]!}`))
          out.push(`${m.name}_bucket{${inner}le="+Inf"} ${h.count}`, `${m.name}_sum${k} ${h.sum}`, `${m.name}_count${k} ${h.count}`)
        }
        continue
      }
      const fam = this.#values.get(m.name)
      if (fam === undefined) continue
      out.push(`# HELP ${m.name} ${m.help}`, `# TYPE ${m.name} ${m.type}`)
      for (const [k, v] of [...fam].sort()) out.push(`${m.name}${k} ${v}`)
    }
    return out.join('\n') + '\n'
  }
}
