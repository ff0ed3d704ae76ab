/**
 * Consul as the control plane: the sidecar's leaf, the CA roots, its
 * intentions and its upstreams' healthy instances, each followed by a
 * blocking query and kept in a local cache, so that a connection's decisions
 * stay local and keep working while the agent is briefly unreachable.
 * A response that fails validation never replaces good state.
 */
import { readFile } from 'node:fs/promises'
import { parseOwnSvid } from '../core/identity/svid.js'
import { makeBundle, rootsFromPem } from '../core/identity/bundle.js'
import type { CertFacts } from '../core/identity/x509.js'
import { parseTrustDomain } from '../core/identity/spiffe-id.js'
import { compileAuthorizer, validateIntentionsDoc, type IntentionsDoc } from '../core/intentions/table.js'
import type { Instance, Resolver } from '../core/resolver.js'
import { Cell } from '../core/watched.js'
import { ConfigError, ConsulError, ERR, errorCode, toError } from '../core/errors.js'
import type { PlaneConfig } from '../core/config/types.js'
import { buildTlsState, type TlsState } from '../tls/context.js'
import { BlockingWatch, ConsulClient } from '../consul/client.js'
import type { ControlPlane, IntentionsState, PlaneDeps } from './types.js'

/** The Consul agent settings of the config. */
export type ConsulPlaneConfig = PlaneConfig & { kind: 'consul' }

interface LeafBody { CertPEM: string, PrivateKeyPEM: string, ServiceURI?: string, SerialNumber?: string, ValidBefore?: string }
interface RootsBody { TrustDomain?: string, ActiveRootID?: string, Roots: Array<{ RootCert: string, IntermediateCerts?: string[] | null, Active?: boolean | string }> }
/** A validated roots response: its trust domain (if given) and every root, parsed once. */
interface Roots { trustDomain: string | undefined, certs: CertFacts[] }
interface IntentionBody { SourceNS?: string, SourceName: string, DestinationNS?: string, DestinationName: string, Action: string, Description?: string, Meta?: Record<string, string> }
interface HealthEntry { Node?: { Address?: string }, Service?: { Address?: string, Port?: number, Proxy?: unknown } }

/** Follows the agent; the cached TLS state, intentions and instances are what the sidecar reads. */
export class ConsulPlane implements ControlPlane, Resolver {
  readonly #deps: PlaneDeps
  readonly #agent: ConsulPlaneConfig
  readonly #watches: Array<BlockingWatch<unknown>> = []
  readonly #instances = new Map<string, readonly Instance[]>()
  /** Upstreams to follow through /v1/health/connect (those given without instances). */
  readonly #upstreams: readonly string[]
  readonly #tls = new Cell<TlsState>('certificates from Consul')
  readonly #intentions: Cell<IntentionsState> | null
  #client: ConsulClient | undefined
  #leaf: LeafBody | undefined
  #roots: Roots | undefined
  #up = false
  #closed = false
  #lastError = 'waiting for the first answer from the Consul agent'
  #readyWaiters: Array<() => void> = []

  constructor (deps: PlaneDeps, agent: ConsulPlaneConfig) {
    this.#deps = deps
    this.#agent = agent
    this.#upstreams = deps.config.upstreams.filter(u => u.instances === null).map(u => u.service)
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
    return this.#tls.isSet && (this.#intentions?.isSet ?? true) && this.#upstreams.every(u => this.#instances.has(u))
  }

  /** Start following; resolves once everything has been loaded (retrying until then). */
  async start (): Promise<void> {
    const client = new ConsulClient({ address: this.#agent.address, ...await this.#token(), ...(this.#agent.caCertFile === null ? {} : { caCertFile: this.#agent.caCertFile }) })
    this.#client = client
    const svc = encodeURIComponent(this.#deps.config.service)
    this.#watch(client, `/v1/agent/connect/ca/leaf/${svc}`, parseLeaf, v => { this.#leaf = v; this.#rebuildTls() })
    this.#watch(client, '/v1/agent/connect/ca/roots', parseRoots, v => { this.#roots = v; this.#rebuildTls() })
    const intentions = this.#intentions
    if (intentions !== null) {
      this.#watch(client, `/v1/connect/intentions/match?by=destination&name=${svc}`, (b, index) => this.#parseIntentions(b, index), doc => {
        const cfg = this.#deps.config
        this.#deps.metrics.intentionsVersion(doc.index)
        intentions.set({ doc, authorize: compileAuthorizer(doc, { namespace: cfg.namespace, name: cfg.service }) })
      })
    }
    for (const u of this.#upstreams) {
      this.#watch(client, `/v1/health/connect/${encodeURIComponent(u)}?passing=true`, parseHealth, list => {
        this.#instances.set(u, list)
        this.#deps.logger.info({ upstream: u, instances: list.map(i => `${i.host}:${i.port}`) }, 'upstream instances changed')
      })
    }
    await new Promise<void>(resolve => {
      if (this.#ready) resolve()
      else this.#readyWaiters.push(resolve)
    })
    if (this.#closed) throw new Error('sidecar closed while waiting for the Consul agent')
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

  #watch<T> (client: ConsulClient, path: string, parse: (body: unknown, index: number) => T, apply: (v: T) => void): void {
    this.#watches.push(new BlockingWatch<T>({
      client,
      path,
      parse,
      ...(this.#deps.consulBackoffMs === undefined ? {} : { minBackoffMs: this.#deps.consulBackoffMs }),
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
      }
    }) as BlockingWatch<unknown>)
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

  #parseIntentions (body: unknown, index: number): IntentionsDoc {
    const service = this.#deps.config.service
    const list = (body as Record<string, IntentionBody[] | undefined> | null)?.[service]
    if (!Array.isArray(list)) throw new ConsulError(`intentions match response has no list for ${service}`)
    const ns = (x: string | undefined): string => x === undefined || x === '' || x === 'default' ? '' : `${x}/`
    return validateIntentionsDoc({
      index,
      defaultPolicy: this.#deps.config.defaultPolicy ?? 'deny',
      intentions: list.map(i => ({
        source: `${ns(i.SourceNS)}${i.SourceName}`,
        destination: `${ns(i.DestinationNS)}${i.DestinationName}`,
        action: i.Action,
        ...(i.Description !== undefined && i.Description !== '' ? { description: i.Description } : {}),
        ...(i.Meta !== undefined && Object.keys(i.Meta).length > 0 ? { meta: i.Meta } : {})
      }))
    }, 'Consul intentions')
  }

  /** Resolver: the healthy instances last reported by Consul. */
  async instances (service: string): Promise<readonly Instance[]> {
    return this.#instances.get(service) ?? []
  }

  /** Stop every watch. Idempotent. */
  close (): void {
    this.#closed = true
    for (const w of this.#watches) w.close()
    this.#client?.close()
    for (const w of this.#readyWaiters.splice(0)) w()
  }
}

function parseLeaf (body: unknown): LeafBody {
  const b = body as Partial<LeafBody> | null
  if (typeof b?.CertPEM !== 'string' || typeof b.PrivateKeyPEM !== 'string') throw new ConsulError('leaf response lacks CertPEM or PrivateKeyPEM')
  return b as LeafBody
}

/** Validate and parse now, so that a bad root never replaces good ones. */
function parseRoots (body: unknown): Roots {
  const b = body as Partial<RootsBody> | null
  if (!Array.isArray(b?.Roots) || b.Roots.length === 0 || b.Roots.some(r => typeof r?.RootCert !== 'string')) throw new ConsulError('roots response has no Roots[].RootCert')
  const td = b.TrustDomain
  return {
    trustDomain: typeof td === 'string' && td !== '' ? parseTrustDomain(td) : undefined,
    certs: rootsFromPem(b.Roots.map(r => r.RootCert).join('\n'), 'Consul CA roots')
  }
}

function parseHealth (body: unknown): Instance[] {
  if (!Array.isArray(body)) throw new ConsulError('health response is not a list')
  return (body as HealthEntry[]).map(e => {
    const host = e.Service?.Address !== undefined && e.Service.Address !== '' ? e.Service.Address : e.Node?.Address
    const port = e.Service?.Port
    if (typeof host !== 'string' || typeof port !== 'number') throw new ConsulError('health entry lacks an address or port')
    return { host, port }
  })
}
