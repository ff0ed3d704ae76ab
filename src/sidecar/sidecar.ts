/**
 * One sidecar: config in, listeners up, and the shutdown order written down.
 *
 * start: mesh settings -> TLS material -> intentions -> upstream listeners ->
 *        inbound listener -> catalog registration. A failure at any step closes
 *        what already started and rethrows: nothing is left half-started.
 * close: deregister from the catalog (no new traffic is sent here) -> stop
 *        accepting -> drain live connections up to drainTimeoutMs -> close the
 *        rest -> stop watchers. Idempotent; destroy() skips the drain.
 */
import type { Logger } from 'pino'
import type { Config, HostPort, PlaneConfig, UpstreamConfig } from '../core/config/types.js'
import { DEFAULT_DATACENTER } from '../core/config/defaults.js'
import { meshLayout, readMeshSettings } from '../meshdir/layout.js'
import { IntentionsSource } from '../meshdir/intentions-store.js'
import { decidedBy, type Authorizer, type IntentionsDoc, type ServiceRef } from '../core/intentions/table.js'
import { ConsulClient } from '../consul/client.js'
import { ConsulControlPlane } from '../plane/consul.js'
import { ConfigError } from '../core/errors.js'
import { readFile } from 'node:fs/promises'
import { MeshCatalog, type Registration } from '../meshdir/catalog.js'
import { staticResolver, type Resolver } from '../core/resolver.js'
import { toConsulService } from '../core/identity/spiffe-id.js'
import { noopMetrics, type Metrics } from '../metrics/metrics.js'
import { InboundListener } from '../dataplane/inbound.js'
import { UpstreamListener } from '../dataplane/outbound.js'
import { CertManager } from '../plane/cert-manager.js'
import type { TlsState } from '../tls/context.js'
import { adoptPsk, type Adopted, type SharedPsk } from '../tls/psk.js'
import { probeTls, tlsProbed } from '../tls/probe.js'

/** What a sidecar needs besides its config. */
export interface SidecarOptions {
  readonly config: Config
  readonly logger: Logger
  readonly metrics?: Metrics
  /** After a root change, re-issue our leaf within a random delay below this (default 30 s). */
  readonly rootChangeJitterMs?: number
  /** First retry delay towards the Consul agent (default 250 ms; tests shorten it). */
  readonly consulBackoffMs?: number
  /**
   * False for all but one of `--workers N` processes: they neither renew the
   * mesh dir leaf nor register in the catalog, they follow the files the
   * leader writes (default true).
   */
  readonly leader?: boolean
  /** --workers: hands the PSKs our inbound makes to the sibling processes (psk.ts, workers.ts). */
  readonly sharePsk?: (m: SharedPsk) => void
}

/** What a control plane hands the listeners. */
interface Plane {
  readonly tls: TlsState
  readonly mode: string
  /** Resolves upstreams given without explicit instances. */
  readonly resolver: Resolver | null
  /** Start following intentions for `me`; returns the current-authorizer getter. */
  authorizer (me: ServiceRef): Promise<() => Authorizer>
  /** Register our public address so that peers find us. */
  register?: (host: string, port: number) => Promise<Registration>
}

/** Lifecycle state, as /ready reports it. */
export type SidecarState = 'starting' | 'ready' | 'draining' | 'stopped'

/** Where the sidecar ended up listening. */
export interface SidecarAddresses {
  readonly inbound: HostPort | null
  readonly upstreams: ReadonlyMap<string, HostPort>
}

/** A running sidecar. */
export class Sidecar {
  readonly #cfg: Config
  readonly #log: Logger
  readonly #metrics: Metrics
  #tls: TlsState | undefined
  #intentions: IntentionsSource | undefined
  #inbound: InboundListener | undefined
  /** Upstream listeners by service. */
  readonly #upstreams = new Map<string, { cfg: UpstreamConfig, listener: UpstreamListener }>()
  /** Explicit upstream instances (`db:9191=h:p,...`), read live by the listeners' resolver. */
  readonly #static = new Map<string, readonly HostPort[]>()
  #plane: Plane | undefined
  #datacenter = DEFAULT_DATACENTER
  #catalog: MeshCatalog | undefined
  #registration: Registration | undefined
  #closing: Promise<void> | undefined
  #destroying = false
  #state: SidecarState = 'starting'
  #startError: string | undefined
  #certs: CertManager | undefined
  readonly #rootChangeJitterMs: number | undefined
  readonly #consulBackoffMs: number | undefined
  readonly #leader: boolean
  readonly #sharePsk: ((m: SharedPsk) => void) | undefined
  #consul: ConsulControlPlane | undefined

  constructor (opts: SidecarOptions) {
    this.#cfg = opts.config
    this.#log = opts.logger
    this.#metrics = opts.metrics ?? noopMetrics
    this.#rootChangeJitterMs = opts.rootChangeJitterMs
    this.#consulBackoffMs = opts.consulBackoffMs
    this.#leader = opts.leader ?? true
    this.#sharePsk = opts.sharePsk
  }

  /**
   * A PSK a sibling --workers process made (psk.ts): kept when it belongs to our
   * current TLS generation, so that its client resumes here too. Returns what was done.
   */
  adoptPsk (m: SharedPsk): Adopted {
    const state = this.#tls
    if (state === undefined) return 'not_started'
    return adoptPsk(state.psks, state.generation, m, Date.now())
  }

  /** The current TLS generation (after start). */
  get tls (): TlsState {
    if (this.#tls === undefined) throw new Error('sidecar not started')
    return this.#tls
  }

  /** The intention table in use (mesh dir, file or Consul). */
  get intentionsDoc (): IntentionsDoc | undefined { return this.#intentions?.doc ?? this.#consul?.intentions }

  /** Live connections across all listeners. */
  get connections (): number {
    return (this.#inbound?.connections ?? 0) + [...this.#upstreams.values()].reduce((n, u) => n + u.listener.connections, 0)
  }

  /** Lifecycle state and, when not ready, why. */
  status (): { state: SidecarState, ready: boolean, reason?: string } {
    const reasons: Record<SidecarState, string> = {
      starting: this.#startError ?? this.#consul?.notReadyReason ?? 'starting: listeners, certificates and intentions are being loaded',
      ready: '',
      draining: 'draining: not accepting new connections',
      stopped: 'stopped'
    }
    return this.#state === 'ready' ? { state: 'ready', ready: true } : { state: this.#state, ready: false, reason: reasons[this.#state] }
  }

  /** The effective configuration (no secrets: only file paths). */
  get config (): Config { return this.#cfg }

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

  /** Find out once what this Node's TLS does (tls-probe.ts); the slower paths are said once, at debug. */
  async #probeTls (): Promise<void> {
    const first = !tlsProbed()
    const caps = await probeTls()
    if (!first) return
    if (!caps.x509KeepsChain) this.#log.debug({ node: process.version }, 'tls: this Node shortens a peer chain once its leaf is read as X509Certificate; every new peer costs a detailed certificate chain')
    if (!caps.endTracking) this.#log.debug({ node: process.version }, 'tls: this Node cannot tell close_notify from a bare TCP close; an EOF from a peer is taken as clean (a reset is still an abort)')
  }

  /**
   * SIGHUP: re-read the intentions and the certificates. A file that fails
   * validation keeps the current state and is logged; live connections are
   * not touched (new ones get the new TLS context).
   */
  async reload (): Promise<void> {
    await this.#intentions?.reload()
    await this.#certs?.reload('SIGHUP')
  }

  async #start (): Promise<SidecarAddresses> {
    const cfg = this.#cfg
    await this.#probeTls()
    const plane = cfg.plane.kind === 'consul' ? await this.#startConsul(cfg.plane) : await this.#startMesh()
    const own = toConsulService(plane.tls.svid.id)!
    this.#datacenter = cfg.datacenter ?? own.datacenter ?? DEFAULT_DATACENTER
    this.#plane = plane
    const getTls = (): TlsState => this.#tls!

    const upstreams = new Map<string, HostPort>()
    for (const u of cfg.upstreams) upstreams.set(u.service, await this.#addUpstream(u))

    let inbound: HostPort | null = null
    if (cfg.listen !== null && cfg.to !== null) {
      const me = { namespace: cfg.namespace, name: cfg.service }
      const authorize = await plane.authorizer(me)
      this.#inbound = new InboundListener({ service: me, listen: cfg.listen, app: cfg.to, timeouts: cfg.timeouts, maxConnections: cfg.maxConnections, sourceRateLimit: cfg.sourceRateLimit, tls: getTls, authorize, logger: this.#log, metrics: this.#metrics, sharePsk: this.#sharePsk })
      inbound = await this.#inbound.start()
      if (plane.register !== undefined) {
        const host = inbound.host === '0.0.0.0' || inbound.host === '::' ? '127.0.0.1' : inbound.host
        this.#registration = await plane.register(host, inbound.port)
      }
    }
    this.#log.info({
      service: cfg.service,
      spiffeId: plane.tls.svid.id.uri,
      notAfter: plane.tls.svid.chain[0]!.notAfter.toISOString(),
      trustDomains: plane.tls.bundle.trustDomains,
      inbound: inbound === null ? null : `${inbound.host}:${inbound.port} => ${cfg.to!.host}:${cfg.to!.port}`,
      upstreams: [...upstreams].map(([s, hp]) => `${hp.host}:${hp.port} => ${s}`),
      mode: plane.mode
    }, 'sidecar started')
    return { inbound, upstreams }
  }

  async #addUpstream (u: UpstreamConfig): Promise<HostPort> {
    const cfg = this.#cfg
    // resolveConfig refuses a service given twice; a second listener here would outlive close().
    if (this.#upstreams.has(u.service)) throw new ConfigError('--upstream', `${u.service} is given twice; give each upstream service once`)
    if (u.instances !== null) this.#static.set(u.service, u.instances)
    const resolver: Resolver = u.instances !== null ? staticResolver(this.#static) : this.#plane!.resolver!
    const listener = new UpstreamListener({ upstream: u.service, namespace: cfg.namespace, datacenter: this.#datacenter, bind: u.bind, resolver, timeouts: cfg.timeouts, maxConnections: cfg.maxConnections, tls: () => this.#tls!, logger: this.#log, metrics: this.#metrics })
    this.#upstreams.set(u.service, { cfg: u, listener })
    return await listener.start()
  }

  /**
   * SIGHUP with a config file: apply its upstreams without dropping anything.
   * New ones start listening, removed ones stop accepting and drain, and a
   * changed instance list takes effect for new connections. Returns what changed.
   */
  async setUpstreams (list: readonly UpstreamConfig[]): Promise<{ added: string[], removed: string[], updated: string[] }> {
    if (this.#plane === undefined) throw new Error('sidecar not started')
    const next = new Map(list.map(u => [u.service, u]))
    const added: string[] = []
    const removed: string[] = []
    const updated: string[] = []
    for (const [name, cur] of [...this.#upstreams]) {
      const want = next.get(name)
      const sameListener = want !== undefined && want.bind.host === cur.cfg.bind.host && want.bind.port === cur.cfg.bind.port && (want.instances === null) === (cur.cfg.instances === null)
      if (sameListener) {
        if (want.instances !== null && JSON.stringify(want.instances) !== JSON.stringify(cur.cfg.instances)) {
          this.#static.set(name, want.instances)
          this.#upstreams.set(name, { cfg: want, listener: cur.listener })
          updated.push(name)
        }
        continue
      }
      this.#upstreams.delete(name)
      this.#static.delete(name)
      void cur.listener.close() // stops accepting now; live connections drain in the background
      removed.push(name)
    }
    const listening: Record<string, string> = {}
    for (const u of list) {
      if (this.#upstreams.has(u.service)) continue
      const at = await this.#addUpstream(u)
      listening[u.service] = `${at.host}:${at.port}`
      added.push(u.service)
    }
    this.#log.info({ added, removed, updated, listening }, 'upstreams reloaded')
    return { added, removed, updated }
  }

  /** The embedded control plane: mesh dir (or plain files) for certificates, intentions and the catalog. */
  async #startMesh (): Promise<Plane> {
    const cfg = this.#cfg
    const p = cfg.plane
    if (p.kind === 'consul') throw new Error('unreachable')
    const layout = p.meshDir === null ? null : meshLayout(p.meshDir)
    const settings = layout === null ? null : await readMeshSettings(layout)
    this.#certs = new CertManager({
      source: p.kind === 'files' ? { kind: 'files', cert: p.cert, key: p.key, ca: p.ca } : { kind: 'mesh', layout: layout!, settings: settings! },
      service: cfg.service,
      logger: this.#log,
      metrics: this.#metrics,
      leafTtlMs: cfg.leafTtlMs,
      renew: this.#leader,
      ...(this.#rootChangeJitterMs === undefined ? {} : { rootChangeJitterMs: this.#rootChangeJitterMs }),
      onChange: state => {
        this.#tls = state
        this.#inbound?.setTls(state)
      }
    })
    const tls = await this.#certs.start()
    if (layout !== null) this.#catalog = new MeshCatalog(layout.catalog)
    const catalog = this.#catalog
    return {
      tls,
      mode: p.kind,
      resolver: catalog ?? null,
      authorizer: async me => {
        const path = cfg.intentionsFile ?? layout?.intentions
        if (path === undefined) throw new Error('unreachable: config requires --mesh-dir or --intentions with --listen')
        const source = new IntentionsSource(path, me, {
          defaultPolicy: cfg.defaultPolicy,
          onReload: e => {
            if (e.ok) {
              this.#metrics.intentionsVersion(e.doc.index)
              this.#intentionsChanged(e.doc, source.authorize)
            } else this.#log.error({ err: e.error.message }, 'intentions reload failed; keeping the previous table')
          }
        })
        this.#intentions = source
        await source.start()
        this.#metrics.intentionsVersion(source.doc.index)
        this.#log.debug({ intentionsVersion: source.doc.index, defaultDecision: decidedBy(source.authorize({ namespace: '*', name: '*' })) }, 'intentions loaded')
        return () => source.authorize
      },
      ...(catalog === undefined || !this.#leader ? {} : { register: (host: string, port: number) => catalog.register(cfg.service, host, port) })
    }
  }

  /**
   * A new intention table is in force, whichever control plane it came from:
   * with --enforce-on-change, live inbound connections it now denies are closed;
   * one 'intentions reloaded' line, the same fields for every plane.
   */
  #intentionsChanged (doc: IntentionsDoc, authorize: Authorizer): void {
    const enforce = this.#cfg.enforceOnChange
    const closed = enforce ? this.#inbound?.reauthorize(authorize) ?? 0 : 0
    this.#log.info({ version: doc.index, intentions: doc.intentions.length, defaultPolicy: doc.defaultPolicy, ...(enforce ? { closedConnections: closed } : {}) }, 'intentions reloaded')
  }

  /** Consul as the control plane: leaf, roots, intentions and upstream instances from the local agent. */
  async #startConsul (c: PlaneConfig & { kind: 'consul' }): Promise<Plane> {
    const cfg = this.#cfg
    let token = c.token ?? undefined
    if (token === undefined && c.tokenFile !== null) {
      try { token = (await readFile(c.tokenFile, 'utf8')).trim() } catch (err) {
        throw new ConfigError('--consul-token-file', `cannot read ${c.tokenFile}: ${(err as Error).message}`)
      }
    }
    const client = new ConsulClient({ address: c.address, ...(token === undefined ? {} : { token }), ...(c.caCertFile === null ? {} : { caCertFile: c.caCertFile }) })
    const cp = new ConsulControlPlane({
      client,
      service: cfg.service,
      namespace: cfg.namespace,
      upstreams: cfg.upstreams.filter(u => u.instances === null).map(u => u.service),
      intentions: cfg.listen !== null,
      defaultPolicy: cfg.defaultPolicy ?? 'deny',
      logger: this.#log,
      metrics: this.#metrics,
      onTls: state => {
        this.#tls = state
        this.#inbound?.setTls(state)
      },
      onIntentions: (doc, authorize) => this.#intentionsChanged(doc, authorize),
      ...(this.#consulBackoffMs === undefined ? {} : { minBackoffMs: this.#consulBackoffMs })
    })
    this.#consul = cp
    await cp.start()
    if (this.#closing !== undefined) throw new Error('sidecar closed while waiting for the Consul agent')
    return {
      tls: cp.tls!,
      mode: `consul (${c.address})`,
      resolver: cp,
      authorizer: async () => () => cp.authorize
    }
  }

  /** Graceful shutdown (see the order above). Idempotent. */
  close (): Promise<void> {
    this.#closing ??= (async () => {
      this.#state = 'draining'
      await this.#registration?.close()
      const listeners = [...[...this.#upstreams.values()].map(u => u.listener), ...(this.#inbound === undefined ? [] : [this.#inbound])]
      if (this.#destroying) await Promise.all(listeners.map(l => l.destroy()))
      else await Promise.all(listeners.map(l => l.close()))
      this.#intentions?.close()
      this.#certs?.close()
      this.#consul?.close()
      this.#catalog?.close()
      this.#state = 'stopped'
      this.#log.info({ service: this.#cfg.service }, 'sidecar stopped')
    })()
    return this.#closing
  }

  /** Immediate shutdown: live connections are closed now. Idempotent. */
  async destroy (): Promise<void> {
    this.#destroying = true
    await Promise.all([this.#inbound?.destroy(), ...[...this.#upstreams.values()].map(u => u.listener.destroy())])
    await this.close()
  }
}
