/**
 * Trust bundles: root certificates grouped by the trust domain they belong to.
 * A peer's chain must end at a root of the peer's own trust domain (SPIFFE
 * X509-SVID.md §5.2), not merely at any root we trust.
 * Pure: PEM text in, an immutable value out.
 */
import { CertificateError } from '../errors.js'
import { parseSpiffeId } from './spiffe-id.js'
import { certsFromPem, toPem, type CertFacts } from './x509.js'

/** An immutable set of roots, by trust domain. */
export interface TrustBundle {
  /** Trust domains that have at least one root. */
  readonly trustDomains: readonly string[]
  /** All roots (for the TLS `ca` option), PEM, concatenated. */
  readonly pem: string
  readonly roots: readonly RootCert[]
  /** The trust domain a root belongs to, by its SHA-256 fingerprint; undefined if not in the bundle. */
  trustDomainOf (fingerprint256: string): string | undefined
}

/** One root and the trust domain it speaks for. */
export interface RootCert {
  readonly trustDomain: string
  readonly cert: CertFacts
}

/**
 * Parse the CA certificates of a bundle; every one must be a CA. `what` names
 * the source in errors.
 */
export function rootsFromPem (pem: string, what: string): CertFacts[] {
  const certs = certsFromPem(pem, what)
  certs.forEach((cert, i) => {
    if (!cert.isCA) throw new CertificateError(`${what}: certificate ${i + 1} (${cert.subject}) is not a CA (basicConstraints CA:FALSE); a trust bundle holds CA certificates only`)
  })
  return certs
}

/**
 * Build a bundle from PEM text. A root whose URI SAN is `spiffe://<td>` (Consul's
 * and SPIRE's CAs) belongs to that trust domain; a root without one belongs to
 * `defaultTrustDomain` (plain PKI roots given with --ca).
 */
export function bundleFromPem (pem: string, defaultTrustDomain: string, what: string): TrustBundle {
  const roots: RootCert[] = rootsFromPem(pem, what).map((cert, i) => {
    const spiffe = cert.uris.find(u => u.startsWith('spiffe://'))
    let trustDomain = defaultTrustDomain
    if (spiffe !== undefined) {
      try {
        trustDomain = parseSpiffeId(spiffe).trustDomain
      } catch (err) {
        throw new CertificateError(`${what}: certificate ${i + 1} has an invalid SPIFFE URI SAN ${JSON.stringify(spiffe)}`, { cause: err })
      }
    }
    return { trustDomain, cert }
  })
  return makeBundle(roots)
}

/** Assemble a bundle from roots (deduplicated by fingerprint). */
export function makeBundle (roots: readonly RootCert[]): TrustBundle {
  const byFp = new Map<string, RootCert>()
  for (const r of roots) byFp.set(r.cert.fingerprint256, r)
  const unique = [...byFp.values()]
  const pem = unique.map(r => toPem('CERTIFICATE', r.cert.der)).join('')
  return {
    trustDomains: [...new Set(unique.map(r => r.trustDomain))],
    pem,
    roots: unique,
    trustDomainOf: (fp: string) => byFp.get(fp)?.trustDomain
  }
}
