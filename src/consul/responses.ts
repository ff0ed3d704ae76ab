/**
 * The agent's answers the control plane follows, validated: a response that
 * does not have the documented shape is a ConsulError, so that it never
 * replaces good state. Consul API docs followed: v1.15–1.20
 * (agent/connect/ca/leaf, agent/connect/ca/roots, connect/intentions/match,
 * health/connect).
 */
import { rootsFromPem } from '../core/identity/bundle.js'
import type { CertFacts } from '../core/identity/x509.js'
import { parseTrustDomain } from '../core/identity/spiffe-id.js'
import { validateIntentionsDoc, type IntentionsDoc } from '../core/intentions/table.js'
import type { Instance } from '../core/resolver.js'
import { ConsulError } from '../core/errors.js'

/** GET /v1/agent/connect/ca/leaf/<service>: the fields we read. */
export interface LeafBody { CertPEM: string, PrivateKeyPEM: string, ServiceURI?: string, SerialNumber?: string, ValidBefore?: string }
interface RootsBody { TrustDomain?: string, ActiveRootID?: string, Roots: Array<{ RootCert: string, IntermediateCerts?: string[] | null, Active?: boolean | string }> }
/** A validated roots response: its trust domain (if given) and every root, parsed once. */
export interface Roots { trustDomain: string | undefined, certs: CertFacts[] }
interface IntentionBody { SourceNS?: string, SourceName: string, DestinationNS?: string, DestinationName: string, Action?: string, Permissions?: unknown[] | null, Description?: string, Meta?: Record<string, string> }
interface HealthEntry { Node?: { Address?: string }, Service?: { Address?: string, Port?: number, Proxy?: unknown } }

/** A leaf response with its PEMs (parsed and checked as an SVID by the plane). */
export function parseLeaf (body: unknown): LeafBody {
  const b = body as Partial<LeafBody> | null
  if (typeof b?.CertPEM !== 'string' || typeof b.PrivateKeyPEM !== 'string') throw new ConsulError('leaf response lacks CertPEM or PrivateKeyPEM')
  return b as LeafBody
}

/** Validate and parse now, so that a bad root never replaces good ones. */
export function parseRoots (body: unknown): Roots {
  const b = body as Partial<RootsBody> | null
  if (!Array.isArray(b?.Roots) || b.Roots.length === 0 || b.Roots.some(r => typeof r?.RootCert !== 'string')) throw new ConsulError('roots response has no Roots[].RootCert')
  const td = b.TrustDomain
  return {
    trustDomain: typeof td === 'string' && td !== '' ? parseTrustDomain(td) : undefined,
    certs: rootsFromPem(b.Roots.map(r => r.RootCert).join('\n'), 'Consul CA roots')
  }
}

/** GET /v1/health/connect/<service>: each instance's sidecar address (its Service.Address, else its node's) and port. */
export function parseHealth (body: unknown): Instance[] {
  if (!Array.isArray(body)) throw new ConsulError('health response is not a list')
  return (body as HealthEntry[]).map(e => {
    const host = e.Service?.Address !== undefined && e.Service.Address !== '' ? e.Service.Address : e.Node?.Address
    const port = e.Service?.Port
    if (typeof host !== 'string' || typeof port !== 'number') throw new ConsulError('health entry lacks an address or port')
    return { host, port }
  })
}

/** The intention table, and the sources whose L7 intentions (Permissions) were taken as deny. */
export interface MatchedIntentions { doc: IntentionsDoc, l7: string[] }

/**
 * `/v1/connect/intentions/match?by=destination&name=<service>` as our table.
 * An intention with `Permissions` (L7: paths, methods, headers) cannot be
 * enforced at L4: it is a deny, as the agent's authorize endpoint treats it.
 */
export function parseIntentionsMatch (body: unknown, index: number, service: string, defaultPolicy: 'allow' | 'deny'): MatchedIntentions {
  const list = (body as Record<string, IntentionBody[] | undefined> | null)?.[service]
  if (!Array.isArray(list)) throw new ConsulError(`intentions match response has no list for ${service}`)
  const ns = (x: string | undefined): string => x === undefined || x === '' || x === 'default' ? '' : `${x}/`
  const l7: string[] = []
  const doc = validateIntentionsDoc({
    index,
    defaultPolicy,
    intentions: list.map(i => {
      const isL7 = Array.isArray(i.Permissions) && i.Permissions.length > 0
      if (isL7) l7.push(`${ns(i.SourceNS)}${i.SourceName}`)
      const description = isL7 ? `L7 permissions: denied at L4${i.Description === undefined || i.Description === '' ? '' : ` (${i.Description})`}` : i.Description
      return {
        source: `${ns(i.SourceNS)}${i.SourceName}`,
        destination: `${ns(i.DestinationNS)}${i.DestinationName}`,
        action: isL7 ? 'deny' : i.Action,
        ...(description !== undefined && description !== '' ? { description } : {}),
        ...(i.Meta !== undefined && i.Meta !== null && Object.keys(i.Meta).length > 0 ? { meta: i.Meta } : {})
      }
    })
  }, 'Consul intentions')
  return { doc, l7 }
}
