/**
 * The sidecar's upstream listeners, one per upstream service, and the diff a
 * config-file reload applies to them without dropping anything: new ones start
 * listening, removed ones stop accepting and drain in the background, a
 * changed instance list takes effect for new connections.
 */
import type { Logger } from 'pino'
import type { Config, Endpoint, HostPort, UpstreamConfig } from '../core/config/types.js'
import { formatEndpoint, isUnix } from '../core/config/endpoint.js'
import { ConfigError } from '../core/errors.js'
import { staticResolver, type Resolver } from '../core/resolver.js'
import type { Watched } from '../core/watched.js'
import type { Metrics } from '../metrics/metrics.js'
import type { TlsState } from '../tls/context.js'
import { UpstreamListener } from '../dataplane/outbound.js'
import { gatewayResolver } from '../meshdir/gateways.js'

/** What the set builds its listeners with. */
export interface UpstreamSetOptions {
  readonly config: Config
  readonly datacenter: string
  readonly tls: Watched<TlsState>
  /** The control plane's resolver, for upstreams without explicit instances. */
  readonly resolver: Resolver | null
  /** The mesh dir, whose gateways.json leads to upstreams of other datacenters. */
  readonly meshDir?: string | null
  readonly logger: Logger
  readonly metrics: Metrics
}

/** What a reload changed. */
export interface UpstreamsDiff { added: string[], removed: string[], updated: string[] }

/** Upstream listeners by service. */
export class UpstreamSet {
  readonly #o: UpstreamSetOptions
  readonly #byService = new Map<string, { cfg: UpstreamConfig, listener: UpstreamListener }>()
  /** Explicit upstream instances (`db:9191=h:p,...`), read live by the listeners' resolver. */
  readonly #static = new Map<string, readonly HostPort[]>()
  readonly #staticResolver = staticResolver(this.#static)

  constructor (o: UpstreamSetOptions) {
    this.#o = o
  }

  /** Live connections over every upstream listener. */
  get connections (): number {
    let n = 0
    for (const u of this.#byService.values()) n += u.listener.connections
    return n
  }

  /** Start a listener for `u`; resolves with where it listens. */
  async add (u: UpstreamConfig): Promise<Endpoint> {
    const { config: cfg, tls, logger, metrics, datacenter } = this.#o
    // resolveConfig refuses a service given twice; a second listener here would outlive close().
    if (this.#byService.has(u.service)) throw new ConfigError('--upstream', `${u.service} is given twice; give each upstream service once`)
    const dc = u.target?.datacenter ?? datacenter
    // Another datacenter: through mesh gateways, except with Consul, which resolves instances there (?dc=).
    const viaGateways = dc !== datacenter && cfg.plane.kind !== 'consul'
    const resolver = u.instances !== null ? this.#staticResolver : viaGateways ? this.#gateways(u.service, dc) : this.#o.resolver
    // resolveConfig refuses an upstream without instances when the plane has no catalog.
    if (resolver === null) throw new ConfigError('--upstream', `upstream ${u.service} has no instances and the control plane has no catalog; list them (${u.service}:${isUnix(u.bind) ? formatEndpoint(u.bind) : u.bind.port}=host:port,...)`)
    if (u.instances !== null) this.#static.set(u.service, u.instances)
    const timeouts = u.connectTimeoutMs === undefined ? cfg.timeouts : { ...cfg.timeouts, connectTimeoutMs: u.connectTimeoutMs }
    const listener = new UpstreamListener({ upstream: u.service, namespace: cfg.namespace, identityForm: cfg.identityForm, datacenter, ...(u.target === undefined ? {} : { target: u.target }), bind: u.bind, unixSocketMode: u.socketMode ?? cfg.unixSocketMode, resolver, timeouts, maxConnections: cfg.maxConnections, tls, logger, metrics, tunnel: cfg.tunnelUpstreams.includes('*') || cfg.tunnelUpstreams.includes(u.service) })
    this.#byService.set(u.service, { cfg: u, listener })
    return await listener.start()
  }

  /** The mesh gateways an upstream in datacenter `dc` is reached through (--mesh-gateway-mode). */
  #gateways (service: string, dc: string): Resolver {
    const { config: cfg, datacenter, meshDir } = this.#o
    // resolveConfig refuses --upstream-dc without a mesh dir unless instances are listed.
    if (meshDir == null) throw new ConfigError('--upstream-dc', `${service} is in ${dc}: give --mesh-dir, whose gateways.json lists the mesh gateways`)
    const via = cfg.meshGatewayMode === 'local' ? datacenter : dc
    return gatewayResolver(meshDir, via, `${service} is in ${dc}, --mesh-gateway-mode ${cfg.meshGatewayMode}`)
  }

  /** Apply `list` (SIGHUP with a config file); returns what changed and logs it once. */
  async set (list: readonly UpstreamConfig[]): Promise<UpstreamsDiff> {
    const next = new Map(list.map(u => [u.service, u]))
    const diff: UpstreamsDiff = { added: [], removed: [], updated: [] }
    for (const [name, cur] of [...this.#byService]) {
      const want = next.get(name)
      if (want !== undefined && sameListener(want, cur.cfg)) {
        if (want.instances !== null && JSON.stringify(want.instances) !== JSON.stringify(cur.cfg.instances)) {
          this.#static.set(name, want.instances)
          this.#byService.set(name, { cfg: want, listener: cur.listener })
          diff.updated.push(name)
        }
        continue
      }
      this.#byService.delete(name)
      this.#static.delete(name)
      if (cur.cfg.instances === null) this.#o.resolver?.forget?.(name, cur.cfg.target)
      void cur.listener.close() // stops accepting now; live connections drain in the background
      diff.removed.push(name)
    }
    const listening: Record<string, string> = {}
    for (const u of list) {
      if (this.#byService.has(u.service)) continue
      const at = await this.add(u)
      listening[u.service] = formatEndpoint(at)
      diff.added.push(u.service)
    }
    this.#o.logger.info({ ...diff, listening }, 'upstreams reloaded')
    return diff
  }

  /** Drain every listener (close) or end them now (destroy). */
  async close (now: boolean): Promise<void> {
    await Promise.all([...this.#byService.values()].map(u => now ? u.listener.destroy() : u.listener.close()))
  }
}

/** Same address, same target and timeout, and both explicit or both resolved: the listener can stay. */
function sameListener (a: UpstreamConfig, b: UpstreamConfig): boolean {
  return formatEndpoint(a.bind) === formatEndpoint(b.bind) && (a.instances === null) === (b.instances === null) &&
    JSON.stringify(a.target ?? {}) === JSON.stringify(b.target ?? {}) && a.connectTimeoutMs === b.connectTimeoutMs
}
