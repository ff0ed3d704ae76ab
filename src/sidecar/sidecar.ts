/**
 * One sidecar: one control plane composed with the listeners, and the
 * shutdown order written down. What crosses between them is wired here once,
 * for every plane: TLS generations and intention tables are read from the
 * plane when needed (core/watched.ts), a new intention table is logged and,
 * with --enforce-on-change, re-checked against live connections.
 *
 * start: probe this Node's TLS -> control plane (certificates, intentions) ->
 *        upstream listeners -> inbound listener -> registration. A failure at
 *        any step closes what already started and rethrows.
 * close: deregister (no new traffic is sent here) -> stop accepting -> drain
 *        live connections up to drainTimeoutMs -> close the rest -> close the
 *        plane. Idempotent; destroy() skips the drain.
 */
import type { Logger } from 'pino'
import type { Config, Endpoint, HostPort, UpstreamConfig } from '../core/config/types.js'
import { formatEndpoint, isUnix } from '../core/config/endpoint.js'
import { DEFAULT_DATACENTER } from '../core/config/defaults.js'
import type { Registration } from '../core/resolver.js'
import type { IntentionsDoc } from '../core/intentions/table.js'
import { workloadOf } from '../core/identity/forms.js'
import { noopMetrics, type Metrics } from '../metrics/metrics.js'
import type { TlsState } from '../tls/context.js'
import { adoptPsk, type Adopted, type SharedPsk } from '../tls/psk.js'
import { InboundListener } from '../dataplane/inbound.js'
import { planeFor, type ControlPlane, type IntentionsState, type PlaneDeps } from '../plane/index.js'
import { probeTlsOnce } from './probe-log.js'
import { notASocket } from '../net/unix.js'
import { ConfigError } from '../core/errors.js'
import { UpstreamSet, type UpstreamsDiff } from './upstreams.js'
import { buildInfo } from '../build.js'

/** What a sidecar needs besides its config. */
export interface SidecarOptions {
  readonly config: Config
  readonly logger: Logger
  readonly metrics?: Metrics
  /** After a root change, re-issue our leaf within a random delay below this (default 30 s). */
  readonly rootChangeJitterMs?: number
  /** First retry delay towards the local agent, Consul or the SPIFFE Workload API (default 250 ms; tests shorten it). */
  readonly agentBackoffMs?: number
  /**
   * False for all but one of `--workers N` processes: they neither renew the
   * mesh dir leaf nor register in the catalog, they follow the files the
   * leader writes (default true).
   */
  readonly leader?: boolean
  /** --workers: hands the PSKs our inbound makes to the sibling processes (tls/psk.ts, runtime/). */
  readonly sharePsk?: (m: SharedPsk) => void
  /** The control plane to run (default: the one config.plane names, plane/index.ts). */
  readonly plane?: (deps: PlaneDeps) => ControlPlane
}

/** Lifecycle state, as /ready reports it. */
export type SidecarState = 'starting' | 'ready' | 'draining' | 'stopped'

/** Where the sidecar ended up listening. */
export interface SidecarAddresses {
  readonly inbound: HostPort | null
  /** Upstreams on TCP ports. */
  readonly upstreams: ReadonlyMap<string, HostPort>
  /** Upstreams on UNIX sockets (`db:unix:/run/db.sock`): their paths. */
  readonly upstreamSockets: ReadonlyMap<string, string>
}

/** A running sidecar. */
export class Sidecar {
  readonly #o: SidecarOptions
  readonly #metrics: Metrics
  readonly #plane: ControlPlane
  /** The config in force: as given, with the upstreams of the last reload (/config shows it). */
  #config: Config
  #upstreams: UpstreamSet | undefined
  #inbound: InboundListener | undefined
  #registration: Registration | undefined
  #unsubscribe: (() => void) | undefined
  #closing: Promise<void> | undefined
  #destroying = false
  #state: SidecarState = 'starting'
  #startError: string | undefined

  constructor (opts: SidecarOptions) {
    this.#o = opts
    this.#config = opts.config
    this.#metrics = opts.metrics ?? noopMetrics
    const deps: PlaneDeps = {
      config: opts.config,
      logger: opts.logger,
      metrics: this.#metrics,
      leader: opts.leader ?? true,
      ...(opts.rootChangeJitterMs === undefined ? {} : { rootChangeJitterMs: opts.rootChangeJitterMs }),
      ...(opts.agentBackoffMs === undefined ? {} : { agentBackoffMs: opts.agentBackoffMs })
    }
    this.#plane = (opts.plane ?? planeFor)(deps)
  }

  /** The effective configuration (no secrets: only file paths). */
  get config (): Config { return this.#config }

  /** The current TLS generation (after start). */
  get tls (): TlsState { return this.#plane.tls.current }

  /** The intention table in force, when this sidecar has one loaded. */
  get intentionsDoc (): IntentionsDoc | undefined {
    const i = this.#plane.intentions
    return i === null || !i.isSet ? undefined : i.current.doc
  }

  /** Live connections across all listeners. */
  get connections (): number {
    return (this.#inbound?.connections ?? 0) + (this.#upstreams?.connections ?? 0)
  }

  /** Lifecycle state and, when not ready, why. */
  status (): { state: SidecarState, ready: boolean, reason?: string } {
    if (this.#state === 'ready') return { state: 'ready', ready: true }
    const reasons: Record<Exclude<SidecarState, 'ready'>, string> = {
      starting: this.#startError ?? this.#plane.notReadyReason ?? 'starting: listeners, certificates and intentions are being loaded',
      draining: 'draining: not accepting new connections',
      stopped: 'stopped'
    }
    return { state: this.#state, ready: false, reason: reasons[this.#state] }
  }

  /**
   * A PSK a sibling --workers process made (tls/psk.ts): kept when it belongs to
   * our current TLS generation, so that its client resumes here too.
   */
  adoptPsk (m: SharedPsk): Adopted {
    if (!this.#plane.tls.isSet) return 'not_started'
    const state = this.#plane.tls.current
    return adoptPsk(state.psks, state.generation, m, Date.now())
  }

  /** Start everything; on failure nothing stays open. */
  async start (): Promise<SidecarAddresses> {
    try {
      const addrs = await this.#start()
      this.#state = 'ready'
      return addrs
    } catch (err) {
      this.#startError = `start failed: ${err instanceof Error ? err.message : String(err)}`
      await this.destroy()
      throw err
    }
  }

  async #start (): Promise<SidecarAddresses> {
    const cfg = this.#o.config
    // An app socket that is not there yet is fine (the app may start after us); a file or directory there is a mistake.
    if (cfg.to !== null && isUnix(cfg.to)) {
      const what = notASocket(cfg.to.path)
      if (what !== undefined) throw new ConfigError('--to', `${cfg.to.path} is ${what}, not a socket: give the socket file the app listens on (e.g. --to unix:/run/app.sock)`)
    }
    await probeTlsOnce(this.#o.logger)
    const plane = this.#plane
    await plane.start()
    this.#unsubscribe = plane.intentions?.onChange(s => this.#intentionsChanged(s))
    const own = workloadOf(cfg.identityForm, plane.tls.current.svid.id)
    const datacenter = cfg.datacenter ?? own?.datacenter ?? DEFAULT_DATACENTER
    const meshDir = cfg.plane.kind === 'mesh-dir' || cfg.plane.kind === 'files' || cfg.plane.kind === 'spiffe' ? cfg.plane.meshDir : null
    this.#upstreams = new UpstreamSet({ config: cfg, datacenter, tls: plane.tls, resolver: plane.resolver, meshDir, logger: this.#o.logger, metrics: this.#metrics })
    const upstreams = new Map<string, HostPort>()
    const upstreamSockets = new Map<string, string>()
    for (const u of cfg.upstreams) {
      const at = await this.#upstreams.add(u)
      if (isUnix(at)) upstreamSockets.set(u.service, at.path)
      else upstreams.set(u.service, at)
    }
    const inbound = await this.#startInbound()
    this.#logStarted(inbound, [...upstreams, ...[...upstreamSockets].map(([s, path]) => [s, { path }] as const)])
    return { inbound, upstreams, upstreamSockets }
  }

  /** The public listener and our registration, when this sidecar has an inbound side. */
  async #startInbound (): Promise<HostPort | null> {
    const cfg = this.#o.config
    const intentions = this.#plane.intentions
    if (cfg.listen === null || cfg.to === null || intentions === null) return null
    const me = { namespace: cfg.namespace, name: cfg.service }
    this.#inbound = new InboundListener({ service: me, identityForm: cfg.identityForm, listen: cfg.listen, app: cfg.to, proxyProtocol: cfg.proxyProtocol, timeouts: cfg.timeouts, maxConnections: cfg.maxConnections, sourceRateLimit: cfg.sourceRateLimit, tls: this.#plane.tls, authorize: () => intentions.current.authorize, ...(this.#plane.ask === undefined ? {} : { ask: this.#plane.ask }), logger: this.#o.logger, metrics: this.#metrics, sharePsk: this.#o.sharePsk })
    const at = await this.#inbound.start()
    if (this.#plane.register !== undefined) {
      const host = at.host === '0.0.0.0' || at.host === '::' ? '127.0.0.1' : at.host
      this.#registration = await this.#plane.register(host, at.port)
    }
    return at
  }

  #logStarted (inbound: HostPort | null, upstreams: ReadonlyArray<readonly [string, Endpoint]>): void {
    const cfg = this.#o.config
    const tls = this.#plane.tls.current
    this.#o.logger.info({
      service: cfg.service,
      spiffeId: tls.svid.id.uri,
      notAfter: tls.svid.chain[0]!.notAfter.toISOString(),
      trustDomains: tls.bundle.trustDomains,
      inbound: inbound === null || cfg.to === null ? null : `${inbound.host}:${inbound.port} => ${formatEndpoint(cfg.to)}`,
      upstreams: upstreams.map(([s, at]) => `${formatEndpoint(at)} => ${s}${crossDc(cfg, s)}`),
      mode: this.#plane.mode, ...buildInfo()
    }, 'sidecar started')
  }

  /**
   * A new intention table is in force, whichever control plane it came from:
   * with --enforce-on-change, live inbound connections it now denies are closed;
   * one 'intentions reloaded' line, the same fields for every plane.
   */
  #intentionsChanged ({ doc, authorize }: IntentionsState): void {
    const enforce = this.#o.config.enforceOnChange
    const closed = enforce ? this.#inbound?.reauthorize(authorize) ?? 0 : 0
    this.#o.logger.info({ version: doc.index, intentions: doc.intentions.length, defaultPolicy: doc.defaultPolicy, ...(enforce ? { closedConnections: closed } : {}) }, 'intentions reloaded')
  }

  /**
   * SIGHUP: re-read the intentions and the certificates. A file that fails
   * validation keeps the current state and is logged; live connections are
   * not touched (new ones get the new TLS context).
   */
  async reload (): Promise<void> {
    await this.#plane.reload()
  }

  /** SIGHUP with a config file: apply its upstreams without dropping anything (sidecar/upstreams.ts). */
  async setUpstreams (list: readonly UpstreamConfig[]): Promise<UpstreamsDiff> {
    if (this.#upstreams === undefined) throw new Error('sidecar not started')
    const diff = await this.#upstreams.set(list)
    this.#config = Object.freeze({ ...this.#config, upstreams: list })
    return diff
  }

  /** Graceful shutdown (see the order above). Idempotent. */
  close (): Promise<void> {
    this.#closing ??= (async () => {
      this.#state = 'draining'
      await this.#registration?.close()
      const now = this.#destroying
      await Promise.all([this.#upstreams?.close(now), now ? this.#inbound?.destroy() : this.#inbound?.close()])
      this.#unsubscribe?.()
      this.#plane.close()
      this.#state = 'stopped'
      this.#o.logger.info({ service: this.#o.config.service }, 'sidecar stopped')
    })()
    return this.#closing
  }

  /** Immediate shutdown: live connections are closed now. Idempotent. */
  async destroy (): Promise<void> {
    this.#destroying = true
    await Promise.all([this.#inbound?.destroy(), this.#upstreams?.close(true)])
    await this.close()
  }
}

/** ` (datacenter dc2)` for an upstream given --upstream-dc, else ''. */
function crossDc (cfg: Config, service: string): string {
  const dc = cfg.upstreams.find(u => u.service === service)?.target?.datacenter
  return dc === undefined ? '' : ` (datacenter ${dc})`
}
