/**
 * Consul as the control plane: the sidecar's leaf, the CA roots, its
 * intentions and its upstreams' healthy instances, each followed by a
 * blocking query and kept in a local cache, so that a connection's decisions
 * stay local and keep working while the agent is briefly unreachable.
 * A response that fails validation never replaces good state.
 */
import type { Logger } from 'pino'
import { parseOwnSvid } from '../core/identity/svid.js'
import { makeBundle, rootsFromPem } from '../core/identity/bundle.js'
import type { CertFacts } from '../core/identity/x509.js'
import { parseTrustDomain } from '../core/identity/spiffe-id.js'
import { compileAuthorizer, validateIntentionsDoc, type Action, type Authorizer, type IntentionsDoc } from '../core/intentions/table.js'
import type { Instance, Resolver } from '../core/resolver.js'
import { buildTlsState, type TlsState } from '../tls/context.js'
import type { Metrics } from '../metrics/metrics.js'
import { BlockingWatch, ConsulClient } from '../consul/client.js'
import { ConsulError, ERR, errorCode } from '../core/errors.js'

/** Options of {@link ConsulControlPlane}. */
export interface ConsulControlPlaneOptions {
  readonly client: ConsulClient
  readonly service: string
  readonly namespace: string
  /** Upstreams to follow through /v1/health/connect. */
  readonly upstreams: readonly string[]
  /** Follow intentions (only a sidecar with an inbound listener needs them). */
  readonly intentions: boolean
  /** Decision when no intention matches (see README: Consul's ACL default policy). */
  readonly defaultPolicy: Action
  readonly logger: Logger
  readonly metrics: Metrics
  readonly onTls: (state: TlsState) => void
  /** Every new intention table after the first (the sidecar re-checks live connections and logs it, as for the mesh dir). */
  readonly onIntentions?: (doc: IntentionsDoc, authorize: Authorizer) => void
  readonly minBackoffMs?: number
}

interface LeafBody { CertPEM: string, PrivateKeyPEM: string, ServiceURI?: string, SerialNumber?: string, ValidBefore?: string }
interface RootsBody { TrustDomain?: string, ActiveRootID?: string, Roots: Array<{ RootCert: string, IntermediateCerts?: string[] | null, Active?: boolean | string }> }
/** A validated roots response: its trust domain (if given) and every root, parsed once. */
interface Roots { trustDomain: string | undefined, certs: CertFacts[] }
interface IntentionBody { SourceNS?: string, SourceName: string, DestinationNS?: string, DestinationName: string, Action: string, Description?: string, Meta?: Record<string, string> }
interface HealthEntry { Node?: { Address?: string }, Service?: { Address?: string, Port?: number, Proxy?: unknown } }

/** Follows the agent; exposes the cached TLS state, authorizer and resolver. */
export class ConsulControlPlane implements Resolver {
  readonly #o: ConsulControlPlaneOptions
  readonly #watches: Array<BlockingWatch<unknown>> = []
  readonly #instances = new Map<string, readonly Instance[]>()
  #leaf: LeafBody | undefined
  #roots: Roots | undefined
  #authorize: Authorizer | undefined
  #doc: IntentionsDoc | undefined
  #tls: TlsState | undefined
  #up = false
  #lastError = 'waiting for the first answer from the Consul agent'
  #readyWaiters: Array<() => void> = []

  constructor (o: ConsulControlPlaneOptions) {
    this.#o = o
  }

  /** Why the sidecar is not ready yet (agent unreachable, data missing). */
  get notReadyReason (): string | undefined { return this.ready ? undefined : this.#lastError }
  /** True once leaf, roots and intentions have all been loaded. */
  get ready (): boolean {
    return this.#tls !== undefined && (!this.#o.intentions || this.#authorize !== undefined) && this.#o.upstreams.every(u => this.#instances.has(u))
  }
  get tls (): TlsState | undefined { return this.#tls }
  get authorize (): Authorizer { return this.#authorize ?? (() => ({ allowed: false, intention: 'default', precedence: 0, reason: 'intentions not loaded from Consul yet' })) }
  get intentions (): IntentionsDoc | undefined { return this.#doc }

  /** Start following; resolves once everything has been loaded (retrying until then). */
  start (): Promise<void> {
    const svc = encodeURIComponent(this.#o.service)
    this.#watch(`/v1/agent/connect/ca/leaf/${svc}`, parseLeaf, v => { this.#leaf = v; this.#rebuildTls() })
    this.#watch('/v1/agent/connect/ca/roots', parseRoots, v => { this.#roots = v; this.#rebuildTls() })
    if (this.#o.intentions) this.#watch(`/v1/connect/intentions/match?by=destination&name=${svc}`, (b, index) => this.#parseIntentions(b, index), doc => {
      const first = this.#authorize === undefined
      this.#doc = doc
      const authorize = compileAuthorizer(doc, { namespace: this.#o.namespace, name: this.#o.service })
      this.#authorize = authorize
      this.#o.metrics.intentionsVersion(doc.index)
      if (!first) this.#o.onIntentions?.(doc, authorize)
    })
    for (const u of this.#o.upstreams) {
      this.#watch(`/v1/health/connect/${encodeURIComponent(u)}?passing=true`, parseHealth, list => {
        this.#instances.set(u, list)
        this.#o.logger.info({ upstream: u, instances: list.map(i => `${i.host}:${i.port}`) }, 'upstream instances changed')
      })
    }
    return new Promise(resolve => {
      if (this.ready) resolve()
      else this.#readyWaiters.push(resolve)
    })
  }

  #watch<T> (path: string, parse: (body: unknown, index: number) => T, apply: (v: T) => void): void {
    this.#watches.push(new BlockingWatch<T>({
      client: this.#o.client,
      path,
      parse,
      ...(this.#o.minBackoffMs === undefined ? {} : { minBackoffMs: this.#o.minBackoffMs }),
      onChange: v => {
        this.#setUp(true)
        apply(v)
        if (this.ready) for (const w of this.#readyWaiters.splice(0)) w()
      },
      onError: (err, attempt) => {
        this.#lastError = err.message
        const reachable = errorCode(err) !== ERR.CONSUL_UNREACHABLE
        this.#setUp(reachable)
        this.#o.logger[attempt === 1 ? 'warn' : 'debug']({ path, attempt, err: err.message }, reachable ? 'consul response rejected; keeping the previous state' : 'consul agent unreachable; serving from the cache')
      }
    }) as BlockingWatch<unknown>)
  }

  #setUp (up: boolean): void {
    if (up === this.#up) return
    this.#up = up
    this.#o.metrics.controlPlaneUp(up)
  }

  #rebuildTls (): void {
    if (this.#leaf === undefined || this.#roots === undefined) return
    try {
      const svid = parseOwnSvid(this.#leaf.CertPEM, this.#leaf.PrivateKeyPEM, { cert: 'Consul leaf CertPEM', key: 'Consul leaf PrivateKeyPEM' })
      const td = this.#roots.trustDomain ?? svid.id.trustDomain
      // Every listed root is trusted (root rotation); the bundle's trust domain is configuration, not read from the roots.
      const bundle = makeBundle(this.#roots.certs.map(cert => ({ trustDomain: td, cert })))
      this.#tls = buildTlsState(svid, bundle)
      this.#o.metrics.certExpiry(svid.id.uri, Math.floor(svid.chain[0]!.notAfter.getTime() / 1000))
      this.#o.logger.info({ spiffeId: svid.id.uri, serial: svid.chain[0]!.serial, notAfter: svid.chain[0]!.notAfter.toISOString(), roots: bundle.roots.length }, 'certificates reloaded')
      this.#o.onTls(this.#tls)
    } catch (err) {
      this.#lastError = `Consul leaf or roots rejected: ${(err as Error).message}`
      this.#o.logger.error({ err: (err as Error).message }, 'consul leaf or roots rejected; keeping the previous certificates')
    }
  }

  #parseIntentions (body: unknown, index: number): IntentionsDoc {
    const list = (body as Record<string, IntentionBody[] | undefined> | null)?.[this.#o.service]
    if (!Array.isArray(list)) throw new ConsulError(`intentions match response has no list for ${this.#o.service}`)
    const ns = (x: string | undefined): string => x === undefined || x === '' || x === 'default' ? '' : `${x}/`
    return validateIntentionsDoc({
      index,
      defaultPolicy: this.#o.defaultPolicy,
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
    for (const w of this.#watches) w.close()
    this.#o.client.close()
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
