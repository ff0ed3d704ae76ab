/**
 * SPIFFE IDs and trust domains, exactly per the SPIFFE standard as go-spiffe
 * implements it (spiffeid/id.go, trustdomain.go, path.go): one error per rule,
 * byte-wise character classes, no percent-decoding, no length limits.
 * Pure: strings in, values or SpiffeIdError out.
 */
import { SpiffeIdError } from '../errors.js'

/** The exact go-spiffe error strings (spiffeid/errors.go); tests compare against them. */
export const SPIFFE_ERRORS = {
  badTrustDomainChar: 'trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores',
  badPathSegmentChar: 'path segment characters are limited to letters, numbers, dots, dashes, and underscores',
  dotSegment: 'path cannot contain dot segments',
  noLeadingSlash: 'path must have a leading slash',
  empty: 'cannot be empty',
  emptySegment: 'path cannot contain empty segments',
  missingTrustDomain: 'trust domain is missing',
  trailingSlash: 'path cannot have a trailing slash',
  wrongScheme: 'scheme is missing or invalid'
} as const

const SCHEME = 'spiffe://'

/** A parsed SPIFFE ID. `path` is '' or starts with '/'. */
export interface SpiffeId {
  readonly trustDomain: string
  readonly path: string
  /** The canonical string form, `spiffe://<td><path>`. */
  readonly uri: string
}

function isTrustDomainChar (c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x2d || c === 0x5f
}

function isPathSegmentChar (c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) ||
    c === 0x2e || c === 0x2d || c === 0x5f
}

/** Return the error message for an invalid trust domain name, or null when valid. */
function trustDomainNameError (name: string): string | null {
  if (name === '') return SPIFFE_ERRORS.missingTrustDomain
  for (let i = 0; i < name.length; i++) {
    if (!isTrustDomainChar(name.charCodeAt(i))) return SPIFFE_ERRORS.badTrustDomainChar
  }
  return null
}

/** Return the error message for an invalid path ('' is valid), or null when valid. */
export function pathError (path: string): string | null {
  if (path === '') return null
  if (path.charCodeAt(0) !== 0x2f) return SPIFFE_ERRORS.noLeadingSlash
  let segStart = 0
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i)
    if (c === 0x2f) {
      const seg = path.slice(segStart, i)
      if (seg === '/') return SPIFFE_ERRORS.emptySegment
      if (seg === '/.' || seg === '/..') return SPIFFE_ERRORS.dotSegment
      segStart = i
      continue
    }
    if (!isPathSegmentChar(c)) return SPIFFE_ERRORS.badPathSegmentChar
  }
  const last = path.slice(segStart)
  if (last === '/') return SPIFFE_ERRORS.trailingSlash
  if (last === '/.' || last === '/..') return SPIFFE_ERRORS.dotSegment
  return null
}

/** Parse a SPIFFE ID string. Throws SpiffeIdError naming the first rule broken. */
export function parseSpiffeId (id: string): SpiffeId {
  if (id === '') throw new SpiffeIdError(SPIFFE_ERRORS.empty)
  if (!id.startsWith(SCHEME)) throw new SpiffeIdError(SPIFFE_ERRORS.wrongScheme)
  const rest = id.slice(SCHEME.length)
  let pos = 0
  for (; pos < rest.length; pos++) {
    const c = rest.charCodeAt(pos)
    if (c === 0x2f) break
    if (!isTrustDomainChar(c)) throw new SpiffeIdError(SPIFFE_ERRORS.badTrustDomainChar)
  }
  if (pos === 0) throw new SpiffeIdError(SPIFFE_ERRORS.missingTrustDomain)
  const trustDomain = rest.slice(0, pos)
  const path = rest.slice(pos)
  const err = pathError(path)
  if (err !== null) throw new SpiffeIdError(err)
  return { trustDomain, path, uri: id }
}

/**
 * Parse a trust domain from a bare name (`example.org`) or from a SPIFFE ID
 * (anything containing ':/'), like go-spiffe TrustDomainFromString.
 */
export function parseTrustDomain (idOrName: string): string {
  if (idOrName.includes(':/')) return parseSpiffeId(idOrName).trustDomain
  const err = trustDomainNameError(idOrName)
  if (err !== null) throw new SpiffeIdError(err)
  return idOrName
}

/** Build an ID from a trust domain and path segments, validating each segment. */
export function spiffeIdFromSegments (trustDomain: string, segments: readonly string[]): SpiffeId {
  const td = parseTrustDomain(trustDomain)
  let path = ''
  for (const seg of segments) {
    if (seg === '') throw new SpiffeIdError(SPIFFE_ERRORS.emptySegment)
    if (seg === '.' || seg === '..') throw new SpiffeIdError(SPIFFE_ERRORS.dotSegment)
    for (let i = 0; i < seg.length; i++) {
      if (!isPathSegmentChar(seg.charCodeAt(i))) throw new SpiffeIdError(SPIFFE_ERRORS.badPathSegmentChar)
    }
    path += '/' + seg
  }
  return { trustDomain: td, path, uri: SCHEME + td + path }
}

/** Consul's service identity `spiffe://<td>/ns/<ns>/dc/<dc>/svc/<service>`. */
export interface ConsulServiceId {
  readonly trustDomain: string
  readonly namespace: string
  readonly datacenter: string
  readonly service: string
  readonly uri: string
}

/** The signing CA's identity in Consul: `spiffe://<td>`. */
export function trustDomainUri (trustDomain: string): string {
  return SCHEME + trustDomain
}

/** Parse Consul's service form; null if the ID is valid SPIFFE but not that form. */
export function toConsulService (id: SpiffeId): ConsulServiceId | null {
  const parts = id.path.split('/')
  // ['', 'ns', ns, 'dc', dc, 'svc', name]
  if (parts.length !== 7 || parts[1] !== 'ns' || parts[3] !== 'dc' || parts[5] !== 'svc') return null
  return {
    trustDomain: id.trustDomain,
    namespace: parts[2]!,
    datacenter: parts[4]!,
    service: parts[6]!,
    uri: id.uri
  }
}

/** Format Consul's service identity (validates every part). */
export function consulServiceId (p: { trustDomain: string, namespace?: string, datacenter: string, service: string }): ConsulServiceId {
  const ns = p.namespace ?? 'default'
  const id = spiffeIdFromSegments(p.trustDomain, ['ns', ns, 'dc', p.datacenter, 'svc', p.service])
  return { trustDomain: id.trustDomain, namespace: ns, datacenter: p.datacenter, service: p.service, uri: id.uri }
}
