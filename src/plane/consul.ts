/**
 * Consul as the control plane: the sidecar's leaf, the CA roots, its
 * intentions and its upstreams' healthy instances, each followed by a
 * blocking query and kept in a local cache, so that a connection's decisions
 * stay local and keep working while the agent is briefly unreachable.
 * A response that fails validation never replaces good state.
 * Beside that, when configured: our registration with the agent
 * (--consul-register, consul-registration.ts) and the agent deciding inbound connections
 * (--authorize-via-agent, consul/authorize.ts).
 */
import { readFile } from 'node:fs/promises'
import { parseOwnSvid } from '../core/identity/svid.js'
import { makeBundle } from '../core/identity/bundle.js'
import { compileAuthorizer, type Decision, type ServiceRef } from '../core/intentions/table.js'
import type { Instance, Registration, Resolver, UpstreamTarget } from '../core/resolver.js'
import { Cell } from '../core/watched.js'
import { ConfigError, ERR, errorCode, toError } from '../core/errors.js'
import type { PlaneConfig } from '../core/config/types.js'
import { buildTlsState, type TlsState } from '../tls/context.js'
import type { PeerIdentity } from '../tls/peer.js'
import { BlockingWatch, ConsulClient } from '../consul/client.js'
import { AgentAuthorizer } from '../consul/authorize.js'
import { parseHealth, parseIntentionsMatch, parseLeaf, parseRoots, type LeafBody, type MatchedIntentions, type Roots } from '../consul/responses.js'
import type { ControlPlane, IntentionsState, PlaneDeps } from './types.js'
import { registerWithAgent } from './consul-registration.js'

/** The Consul agent settings of the config. */
export type ConsulPlaneConfig = PlaneConfig & { kind: 'consul' }

/** The key of an upstream's instances: its name and where it lives. */
function upstreamKey (service: string, where: UpstreamTarget | undefined): string {
  return [service, where?.namespace ?? '', where?.datacenter ?? '', where?.partition ?? ''].join('\n')
}

/** `/v1/health/connect/<name>?passing=true`, with `dc`, `ns` and `partition` when not ours. */
function healthPath (service: string, where: UpstreamTarget | undefined): string {
  const q = new URLSearchParams({ passing: 'true' })
  if (where?.datacenter !== undefined && where.datacenter !== '') q.set('dc', where.datacenter)
  if (where?.namespace !== undefined && where.namespace !== '' && where.namespace !== 'default') q.set('ns', where.namespace)
  if (where?.partition !== undefined && where.partition !== '' && where.partition !== 'default') q.set('partition', where.partition)
  return `/v1/health/connect/${encodeURIComponent(service)}?${q.toString()}`
}

/** Follows the agent; the cached TLS state, intentions and instances are what the sidecar reads. */
export class ConsulPlane implements ControlPlane, Resolver {
  readonly #deps: PlaneDeps
  readonly #agent: ConsulPlaneConfig
  readonly #watches: Array<BlockingWatch<unknown>> = []
  readonly #instances = new Map<string, readonly Instance[]>()
  /** Upstreams followed through /v1/health/connect, by key: settled once their first answer (or error) is in, and the watch. */
  readonly #followed = new Map<string, { settled: Promise<void>, watch: BlockingWatch<unknown> }>()
  /** Upstreams of the config (those given without instances): start() waits for them. */
  readonly #initial: ReadonlyArray<{ service: string, where: UpstreamTarget | undefined }>
  readonly #tls = new Cell<TlsState>('certificates from Consul')
  readonly #intentions: Cell<IntentionsState> | null
  #client: ConsulClient | undefined
  #authorizer: AgentAuthorizer | undefined
  #leaf: LeafBody | undefined
  #roots: Roots | undefined
  #up = false
  #closed = false
  #lastError = 'waiting for the first answer from the Consul agent'
  #readyWaiters: Array<() => void> = []

  constructor (deps: PlaneDeps, agent: ConsulPlaneConfig) {
    this.#deps = deps
    this.#agent = agent
    this.#initial = deps.config.upstreams.filter(u => u.instances === null).map(u => ({ service: u.service, where: u.target }))
    this.#intentions = deps.config.listen === null ? null : new Cell<IntentionsState>('intentions from Consul')
  }

  get mode (): string { return `consul (${this.#agent.address})` }
  get tls (): Cell<TlsState> { return this.#tls }
  get intentions (): Cell<IntentionsState> | null { return this.#intentions }
  get resolver (): Resolver { return this }
  /** Why the sidecar is not ready yet (agent unreachable, data missing). */
  get notReadyReason (): string | undefined { return this.#ready ? undefined : this.#lastError }

  /** True once leaf, roots, intentions (if needed) and every upstream's instances have been loaded. */
  get #ready (): boolean {
    return this.#tls.isSet && (this.#intentions?.isSet ?? true) && this.#initial.every(u => this.#instances.has(upstreamKey(u.service, u.where)))
  }

  /** Start following; resolves once everything has been loaded (retrying until then). */
  async start (): Promise<void> {
    const client = new ConsulClient({ address: this.#agent.address, ...await this.#token(), ...(this.#agent.caCertFile === null ? {} : { caCertFile: this.#agent.caCertFile }) })
    this.#client = client
    const cfg = this.#deps.config
    if (this.#agent.authorizeViaAgent) this.#authorizer = new AgentAuthorizer(client, cfg.service)
    const svc = encodeURIComponent(cfg.service)
    this.#watch(client, `/v1/agent/connect/ca/leaf/${svc}`, parseLeaf, v => { this.#leaf = v; this.#rebuildTls() })
    this.#watch(client, '/v1/agent/connect/ca/roots', parseRoots, v => { this.#roots = v; this.#rebuildTls() })
    const intentions = this.#intentions
    if (intentions !== null) {
      const parse = (b: unknown, index: number): MatchedIntentions => parseIntentionsMatch(b, index, cfg.service, cfg.defaultPolicy ?? 'deny')
      this.#watch(client, `/v1/connect/intentions/match?by=destination&name=${svc}`, parse, ({ doc, l7 }) => {
        // Consul's authorize endpoint does the same: a rule on paths or headers cannot be kept at L4.
        if (l7.length > 0) this.#deps.logger.warn({ sources: l7 }, 'intentions with L7 permissions are treated as deny at L4')
        this.#deps.metrics.intentionsVersion(doc.index)
        intentions.set({ doc, authorize: compileAuthorizer(doc, { namespace: cfg.namespace, name: cfg.service }) })
      })
    }
    for (const u of this.#initial) void this.#follow(client, u.service, u.where)
    await new Promise<void>(resolve => {
      if (this.#ready) resolve()
      else this.#readyWaiters.push(resolve)
    })
    if (this.#closed) throw new Error('sidecar closed while waiting for the Consul agent')
  }

  /** Follow one upstream's healthy instances; settles at its first answer or error. */
  #follow (client: ConsulClient, service: string, where: UpstreamTarget | undefined): Promise<void> {
    const key = upstreamKey(service, where)
    const known = this.#followed.get(key)
    if (known !== undefined) return known.settled
    let watch!: BlockingWatch<unknown>
    const settled = new Promise<void>(resolve => {
      watch = this.#watch(client, healthPath(service, where), parseHealth, list => {
        this.#instances.set(key, list)
        this.#deps.logger.info({ upstream: service, ...(where === undefined ? {} : where), instances: list.map(i => `${i.host}:${i.port}`) }, 'upstream instances changed')
        resolve()
      }, resolve)
    })
    this.#followed.set(key, { settled, watch })
    return settled
  }

  /** Resolver: a reload removed this upstream; its instances are no longer followed. */
  forget (service: string, where?: UpstreamTarget): void {
    const key = upstreamKey(service, where)
    const f = this.#followed.get(key)
    if (f === undefined) return
    f.watch.close()
    this.#followed.delete(key)
    this.#instances.delete(key)
    this.#deps.logger.debug({ upstream: service, ...(where === undefined ? {} : where) }, 'upstream no longer followed')
  }

  /** The ACL token: --consul-token / CONSUL_HTTP_TOKEN, else read from the token file. */
  async #token (): Promise<{ token?: string }> {
    const { token, tokenFile } = this.#agent
    if (token !== null) return { token }
    if (tokenFile === null) return {}
    try {
      return { token: (await readFile(tokenFile, 'utf8')).trim() }
    } catch (err) {
      throw new ConfigError('--consul-token-file', `cannot read ${tokenFile}: ${toError(err).message}`)
    }
  }

  /** Blocking queries follow the agent already: nothing to re-read on SIGHUP. */
  async reload (): Promise<void> {}

  #watch<T> (client: ConsulClient, path: string, parse: (body: unknown, index: number) => T, apply: (v: T) => void, failed?: () => void): BlockingWatch<unknown> {
    const watch = new BlockingWatch<T>({
      client,
      path,
      parse,
      ...(this.#deps.agentBackoffMs === undefined ? {} : { minBackoffMs: this.#deps.agentBackoffMs }),
      onChange: v => {
        this.#setUp(true)
        apply(v)
        if (this.#ready) for (const w of this.#readyWaiters.splice(0)) w()
      },
      onError: (err, attempt) => {
        this.#lastError = err.message
        const reachable = errorCode(err) !== ERR.CONSUL_UNREACHABLE
        this.#setUp(reachable)
        this.#deps.logger[attempt === 1 ? 'warn' : 'debug']({ path, attempt, err: err.message }, reachable ? 'consul response rejected; keeping the previous state' : 'consul agent unreachable; serving from the cache')
        failed?.()
      }
    }) as BlockingWatch<unknown>
    this.#watches.push(watch)
    return watch
  }

  #setUp (up: boolean): void {
    if (up === this.#up) return
    this.#up = up
    this.#deps.metrics.controlPlaneUp(up)
  }

  #rebuildTls (): void {
    if (this.#leaf === undefined || this.#roots === undefined) return
    try {
      const svid = parseOwnSvid(this.#leaf.CertPEM, this.#leaf.PrivateKeyPEM, { cert: 'Consul leaf CertPEM', key: 'Consul leaf PrivateKeyPEM' })
      const td = this.#roots.trustDomain ?? svid.id.trustDomain
      // Every listed root is trusted (root rotation); the bundle's trust domain is configuration, not read from the roots.
      const bundle = makeBundle(this.#roots.certs.map(cert => ({ trustDomain: td, cert })))
      const state = buildTlsState(svid, bundle)
      this.#deps.metrics.certExpiry(svid.id.uri, Math.floor(svid.chain[0]!.notAfter.getTime() / 1000))
      this.#deps.logger.info({ spiffeId: svid.id.uri, serial: svid.chain[0]!.serial, notAfter: svid.chain[0]!.notAfter.toISOString(), roots: bundle.roots.length }, 'certificates reloaded')
      this.#tls.set(state)
    } catch (err) {
      this.#lastError = `Consul leaf or roots rejected: ${(err as Error).message}`
      this.#deps.logger.error({ err: (err as Error).message }, 'consul leaf or roots rejected; keeping the previous certificates')
    }
  }

  /** Resolver: the healthy instances last reported by Consul (an upstream added by a reload is followed from its first use). */
  async instances (service: string, where?: UpstreamTarget): Promise<readonly Instance[]> {
    const key = upstreamKey(service, where)
    if (!this.#instances.has(key) && this.#client !== undefined && !this.#closed) await this.#follow(this.#client, service, where)
    return this.#instances.get(key) ?? []
  }

  /** --consul-register: our public listener as a connect-proxy service of the agent, with a TCP check; close() deregisters. */
  get register (): ((host: string, port: number) => Promise<Registration>) | undefined {
    const reg = this.#agent.register
    // With --workers, one registration: the leader's (the others share its listener).
    if (reg === null || !this.#deps.leader) return undefined
    return async (host, port) => {
      const cfg = this.#deps.config
      return await registerWithAgent(this.#client!, { id: reg.id, service: cfg.service, host, port, app: cfg.to }, { logger: this.#deps.logger, ...(this.#deps.agentBackoffMs === undefined ? {} : { backoffMs: this.#deps.agentBackoffMs }) })
    }
  }

  /** --authorize-via-agent: the agent decides each new inbound connection (fail closed). */
  get ask (): ((source: ServiceRef, peer: PeerIdentity) => Promise<Decision>) | undefined {
    const a = this.#authorizer
    if (a === undefined) return undefined
    return async (_source, peer) => {
      const v = await a.authorize(peer.id.uri, peer.serial)
      return { allowed: v.allowed, intention: 'default', precedence: 0, reason: v.reason, by: v.failed === true ? 'the Consul agent (no answer: fail closed)' : 'the Consul agent' }
    }
  }

  /** Stop every watch. Idempotent. */
  close (): void {
    this.#closed = true
    for (const w of this.#watches) w.close()
    this.#client?.close()
    for (const w of this.#readyWaiters.splice(0)) w()
  }
}
