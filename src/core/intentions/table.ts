/**
 * Intentions: `source -> destination : allow|deny`, Consul's semantics.
 * Names are `name`, `ns/name`, `*` or `ns/*` (`*` alone means namespace
 * `default`, name `*`, as in Consul OSS). The highest-precedence intention that
 * matches decides; none matching means the default policy (deny unless set).
 *
 * Precedence (Consul structs.Intention.UpdatePrecedence): destination exactness
 * gives 9 (ns and name exact), 6 (ns exact, name *), 3 (ns *); the source takes
 * off 0, 1 or 2 for 2, 1 or 0 exact parts.
 *
 * Pure: values in, values out. The store (file, watch) lives in store.ts.
 */
import { IntentionError } from '../errors.js'
import { parseTrustDomain } from '../identity/spiffe-id.js'

/** What an intention does. */
export type Action = 'allow' | 'deny'

/** `*` as in Consul. */
export const WILDCARD = '*'
/** Namespace used when a name has none. */
export const DEFAULT_NAMESPACE = 'default'

/** One intention as stored. */
export interface Intention {
  readonly source: string
  /**
   * Beyond Consul: the source is a service of this federated trust domain
   * (`--federate`), not of ours. Absent: our own trust domain. A peer of a
   * federated trust domain is allowed only by an intention that names its
   * trust domain; the default policy never lets one in.
   */
  readonly sourceTrustDomain?: string
  readonly destination: string
  readonly action: Action
  readonly description?: string
  readonly meta?: Readonly<Record<string, string>>
  /**
   * Beyond Consul: a deny in audit (dry-run) mode decides "allow" but is
   * reported as `audit: true` ("would deny"), so policy can be tightened safely.
   */
  readonly audit?: boolean
  readonly createIndex?: number
  readonly modifyIndex?: number
}

/** The whole intentions document (the file in the mesh dir). */
export interface IntentionsDoc {
  /** Monotonic version, bumped on every write (like Consul's ModifyIndex). */
  readonly index: number
  readonly defaultPolicy: Action
  readonly intentions: readonly Intention[]
}

/** A service reference: namespace and name, either of which may be `*`; `trustDomain` set for a peer of a federated trust domain. */
export interface ServiceRef {
  readonly namespace: string
  readonly name: string
  readonly trustDomain?: string
}

/** The outcome of one decision, used alike by the inbound path, the logs and `intention check --explain`. */
export interface Decision {
  readonly allowed: boolean
  /** The deciding intention, or 'default' when none matched. */
  readonly intention: Intention | 'default'
  /** Precedence of the deciding intention; 0 for the default policy. */
  readonly precedence: number
  /** Plain words: which rule decided and why. */
  readonly reason: string
  /** True when an audit-mode deny matched: allowed now, would be denied if enforced. */
  readonly audit?: boolean
  /** Who decided when it was not this table (`the Consul agent` with --authorize-via-agent). */
  readonly by?: string
}

const NAME = /^[a-zA-Z0-9]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?$/

/**
 * Parse `name`, `ns/name`, `*`, `ns/*`, `* / *` into a ServiceRef. `field` names
 * the place in error messages (e.g. `intentions[2].source`).
 */
export function parseServiceRef (s: string, field: string): ServiceRef {
  if (typeof s !== 'string' || s === '') throw new IntentionError(`${field}: must be a service name, "ns/name" or "*", got ${JSON.stringify(s)}`)
  const parts = s.split('/')
  if (parts.length > 2) throw new IntentionError(`${field}: ${JSON.stringify(s)} has more than one "/"; use "name" or "namespace/name"`)
  const [namespace, name] = parts.length === 2 ? [parts[0]!, parts[1]!] : [DEFAULT_NAMESPACE, parts[0]!]
  for (const [part, label] of [[namespace, 'namespace'], [name, 'name']] as const) {
    if (part === WILDCARD) continue
    if (part.includes(WILDCARD)) throw new IntentionError(`${field}: wildcard character '*' cannot be used with partial values (${JSON.stringify(s)}); use exactly "*"`)
    if (!NAME.test(part)) throw new IntentionError(`${field}: ${label} ${JSON.stringify(part)} is not a valid service name (letters, digits, '-' and '_', 1-63 characters, starting and ending with a letter or digit)`)
  }
  if (namespace === WILDCARD && name !== WILDCARD) throw new IntentionError(`${field}: exact value cannot follow wildcard namespace (${JSON.stringify(s)}); use "*/*" or name a namespace`)
  return { namespace, name }
}

/** Canonical string of a ServiceRef: `name` in the default namespace, else `ns/name`. */
export function formatServiceRef (r: ServiceRef): string {
  const name = r.namespace === DEFAULT_NAMESPACE ? r.name : `${r.namespace}/${r.name}`
  return r.trustDomain === undefined ? name : `${name} (${r.trustDomain})`
}

function exactParts (r: ServiceRef): number {
  return (r.namespace === WILDCARD ? 0 : 1) + (r.name === WILDCARD ? 0 : 1)
}

/** Consul's precedence of an intention (1..9). */
export function precedenceOf (source: ServiceRef, destination: ServiceRef): number {
  const dest = [3, 6, 9][exactParts(destination)]!
  return dest - (2 - exactParts(source))
}

function matches (pattern: ServiceRef, s: ServiceRef): boolean {
  return (pattern.namespace === WILDCARD || pattern.namespace === s.namespace) &&
    (pattern.name === WILDCARD || pattern.name === s.name)
}

/** Validate an unknown JSON value as an intentions document; errors name the JSON path. */
export function validateIntentionsDoc (json: unknown, what: string): IntentionsDoc {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new IntentionError(`${what}: expected a JSON object with "intentions", "defaultPolicy" and "index"`)
  const o = json as Record<string, unknown>
  for (const k of Object.keys(o)) {
    if (!['index', 'defaultPolicy', 'intentions'].includes(k)) throw new IntentionError(`${what}: unknown field ${JSON.stringify(k)} (known: index, defaultPolicy, intentions)`)
  }
  const index = o.index ?? 0
  if (typeof index !== 'number' || !Number.isInteger(index) || index < 0) throw new IntentionError(`${what}: index must be a non-negative integer, got ${JSON.stringify(o.index)}`)
  const defaultPolicy = o.defaultPolicy ?? 'deny'
  if (defaultPolicy !== 'allow' && defaultPolicy !== 'deny') throw new IntentionError(`${what}: defaultPolicy must be "allow" or "deny", got ${JSON.stringify(o.defaultPolicy)}`)
  const list = o.intentions ?? []
  if (!Array.isArray(list)) throw new IntentionError(`${what}: intentions must be an array`)
  const seen = new Map<string, number>()
  const intentions = list.map((raw: unknown, i): Intention => {
    const at = `${what}: intentions[${i}]`
    const ixn = validateIntention(raw, at)
    const key = pairKey(ixn.source, ixn.destination, ixn.sourceTrustDomain)
    const prev = seen.get(key)
    if (prev !== undefined) throw new IntentionError(`${at}: duplicate ${key} (also intentions[${prev}]); (source, destination) must be unique`)
    seen.set(key, i)
    return ixn
  })
  return { index, defaultPolicy, intentions }
}

const INTENTION_FIELDS = ['source', 'sourceTrustDomain', 'destination', 'action', 'description', 'meta', 'audit', 'createIndex', 'modifyIndex']

/** Validate one intention; `at` names it in errors. */
export function validateIntention (raw: unknown, at: string): Intention {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new IntentionError(`${at}: expected an object with source, destination and action`)
  const r = raw as Record<string, unknown>
  for (const k of Object.keys(r)) {
    if (!INTENTION_FIELDS.includes(k)) throw new IntentionError(`${at}: unknown field ${JSON.stringify(k)} (known: ${INTENTION_FIELDS.join(', ')})`)
  }
  parseServiceRef(r.source as string, `${at}.source`)
  parseServiceRef(r.destination as string, `${at}.destination`)
  if (r.sourceTrustDomain !== undefined) {
    try { parseTrustDomain(r.sourceTrustDomain as string) } catch (err) {
      throw new IntentionError(`${at}.sourceTrustDomain: ${JSON.stringify(r.sourceTrustDomain)} is not a trust domain name (${(err as Error).message})`)
    }
  }
  if (r.action !== 'allow' && r.action !== 'deny') throw new IntentionError(`${at}.action: must be "allow" or "deny", got ${JSON.stringify(r.action)}`)
  if (r.description !== undefined && typeof r.description !== 'string') throw new IntentionError(`${at}.description: must be a string`)
  if (r.audit !== undefined && typeof r.audit !== 'boolean') throw new IntentionError(`${at}.audit: must be true or false`)
  if (r.audit === true && r.action !== 'deny') throw new IntentionError(`${at}.audit: only a deny can be in audit mode (an audited allow would change nothing)`)
  if (r.meta !== undefined) {
    if (typeof r.meta !== 'object' || r.meta === null || Array.isArray(r.meta) || Object.values(r.meta).some(v => typeof v !== 'string')) {
      throw new IntentionError(`${at}.meta: must be an object of string values`)
    }
  }
  return r as unknown as Intention
}

/** A compiled authorizer for one destination: O(1) per decision. */
export type Authorizer = (source: ServiceRef) => Decision

interface Compiled { ixn: Intention, precedence: number, source: ServiceRef }

/**
 * Compile the intentions that can apply to `destination` into three maps
 * (exact source, namespace wildcard, full wildcard); a decision is at most
 * three lookups, whatever the number of intentions.
 */
export function compileAuthorizer (doc: IntentionsDoc, destination: ServiceRef): Authorizer {
  // One group of maps per source trust domain ('' for ours).
  const groups = new Map<string, Group>()
  for (const ixn of doc.intentions) {
    const dst = parseServiceRef(ixn.destination, 'destination')
    if (!matches(dst, destination)) continue
    const source = parseServiceRef(ixn.source, 'source')
    const td = ixn.sourceTrustDomain ?? ''
    let g = groups.get(td)
    if (g === undefined) groups.set(td, g = { exact: new Map(), byNs: new Map(), any: undefined })
    addTo(g, { ixn, precedence: precedenceOf(source, dst), source })
  }
  const dest = formatServiceRef(destination)
  const fallback: Decision = {
    allowed: doc.defaultPolicy === 'allow',
    intention: 'default',
    precedence: 0,
    reason: `no intention matched; default policy is ${doc.defaultPolicy}`
  }
  const local = groups.get('')
  return (source: ServiceRef): Decision => {
    const td = source.trustDomain
    const best = lookup(td === undefined ? local : groups.get(td), source)
    if (best === undefined) return td === undefined ? fallback : foreignFallback(td)
    const { ixn, precedence } = best
    const rule = `intention ${ixn.source}${ixn.sourceTrustDomain === undefined ? '' : ` (${ixn.sourceTrustDomain})`} => ${ixn.destination} (${ixn.action}${ixn.audit === true ? ', audit' : ''}, precedence ${precedence}) matched ${formatServiceRef(source)} => ${dest}`
    if (ixn.audit === true) return { allowed: true, intention: ixn, precedence, reason: `would deny: ${rule}; allowed because the intention is in audit mode`, audit: true }
    return { allowed: ixn.action === 'allow', intention: ixn, precedence, reason: rule }
  }
}

/** The intentions of one source trust domain that apply to the destination: exact source, namespace wildcard, full wildcard. */
interface Group { exact: Map<string, Compiled>, byNs: Map<string, Compiled>, any: Compiled | undefined }

function addTo (g: Group, c: Compiled): void {
  const better = (cur: Compiled | undefined): boolean => cur === undefined || c.precedence > cur.precedence
  if (c.source.namespace === WILDCARD) {
    if (better(g.any)) g.any = c
  } else if (c.source.name === WILDCARD) {
    if (better(g.byNs.get(c.source.namespace))) g.byNs.set(c.source.namespace, c)
  } else {
    const key = c.source.namespace + '/' + c.source.name
    if (better(g.exact.get(key))) g.exact.set(key, c)
  }
}

/** At most three lookups, whatever the number of intentions. */
function lookup (g: Group | undefined, source: ServiceRef): Compiled | undefined {
  if (g === undefined) return undefined
  let best = g.exact.get(source.namespace + '/' + source.name)
  const ns = g.byNs.get(source.namespace)
  if (ns !== undefined && (best === undefined || ns.precedence > best.precedence)) best = ns
  if (g.any !== undefined && (best === undefined || g.any.precedence > best.precedence)) best = g.any
  return best
}

/** A federated peer that no intention names: denied whatever the default policy (federation opens nothing by itself). */
function foreignFallback (trustDomain: string): Decision {
  return { allowed: false, intention: 'default', precedence: 0, reason: `no intention names a source of trust domain ${trustDomain}; a federated peer needs one (sourceTrustDomain), the default policy does not apply to it` }
}

/** One-off decision (CLI `intention check`); the sidecar compiles once instead. */
export function decide (doc: IntentionsDoc, source: string, destination: string): Decision {
  return compileAuthorizer(doc, parseServiceRef(destination, 'destination'))(parseServiceRef(source, 'source'))
}

/** Describe a decision's deciding rule in a few words, for log fields. */
export function decidedBy (d: Decision): string {
  if (d.by !== undefined) return d.by
  if (d.intention === 'default') return 'default policy'
  const td = d.intention.sourceTrustDomain
  return `${d.intention.source}${td === undefined ? '' : ` (${td})`} => ${d.intention.destination}`
}

/** The canonical (source, destination) key of an intention, e.g. `web -> db`. */
export function pairKey (source: string, destination: string, sourceTrustDomain?: string): string {
  const src = { ...parseServiceRef(source, 'source'), ...(sourceTrustDomain === undefined ? {} : { trustDomain: sourceTrustDomain }) }
  return `${formatServiceRef(src)} -> ${formatServiceRef(parseServiceRef(destination, 'destination'))}`
}

/** An intention with its precedence, for listings. */
export interface RankedIntention {
  readonly intention: Intention
  readonly precedence: number
}

/**
 * Intentions that apply to `name` as destination (`by: 'destination'`) or as
 * source (`by: 'source'`), highest precedence first, as `consul intention match`.
 */
export function matchIntentions (doc: IntentionsDoc, by: 'source' | 'destination', name: string): RankedIntention[] {
  const target = parseServiceRef(name, by)
  return doc.intentions
    .map(intention => {
      const src = parseServiceRef(intention.source, 'source')
      const dst = parseServiceRef(intention.destination, 'destination')
      return { intention, precedence: precedenceOf(src, dst), applies: matches(by === 'destination' ? dst : src, target) }
    })
    .filter(x => x.applies)
    .sort((a, b) => b.precedence - a.precedence || pairKey(a.intention.source, a.intention.destination).localeCompare(pairKey(b.intention.source, b.intention.destination)))
    .map(({ intention, precedence }) => ({ intention, precedence }))
}
