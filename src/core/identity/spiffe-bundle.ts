/**
 * SPIFFE trust bundle format (SPIFFE_Trust_Domain_and_Bundle.md §4): a JWKS
 * whose X.509 authorities are `use: "x509-svid"` keys with one DER certificate
 * in `x5c`, plus `spiffe_sequence` and `spiffe_refresh_hint`. Parsing follows
 * go-spiffe spiffebundle.Parse (strict: exactly one x5c entry). Pure.
 */
import { CertificateError } from '../errors.js'
import { certFacts, type CertFacts } from './x509.js'
import { bundleFromPem, makeBundle, type TrustBundle } from './bundle.js'

/** A parsed SPIFFE bundle. */
export interface SpiffeBundle {
  readonly trustDomain: string
  readonly x509Authorities: readonly CertFacts[]
  /** JWT authorities are kept only as their key IDs (we do not verify JWT-SVIDs). */
  readonly jwtAuthorityKeyIds: readonly string[]
  readonly sequence?: number
  readonly refreshHintSeconds?: number
}

interface Jwk { use?: string, kid?: string, x5c?: string[], [k: string]: unknown }

/** Parse a SPIFFE bundle document for `trustDomain`. Errors read like go-spiffe's. */
export function parseSpiffeBundle (trustDomain: string, json: string): SpiffeBundle {
  let doc: { keys?: Jwk[], spiffe_sequence?: number, spiffe_refresh_hint?: number }
  try {
    doc = JSON.parse(json)
  } catch (err) {
    throw new CertificateError(`spiffebundle: unable to parse JWKS: ${(err as Error).message}`)
  }
  if (!Array.isArray(doc.keys)) throw new CertificateError('spiffebundle: no authorities found')
  const x509: CertFacts[] = []
  const jwt: string[] = []
  doc.keys.forEach((k, i) => {
    if (k.use === 'x509-svid') {
      const n = Array.isArray(k.x5c) ? k.x5c.length : 0
      if (n !== 1) throw new CertificateError(`spiffebundle: expected a single certificate in x509-svid entry ${i}; got ${n}`)
      x509.push(certFacts(Buffer.from(k.x5c![0]!, 'base64')))
    } else if (k.use === 'jwt-svid') {
      if (typeof k.kid !== 'string' || k.kid === '') throw new CertificateError(`spiffebundle: error adding authority ${i} of JWKS: keyID cannot be empty`)
      jwt.push(k.kid)
    }
  })
  if (x509.length === 0 && jwt.length === 0) throw new CertificateError('spiffebundle: no authorities found')
  return {
    trustDomain,
    x509Authorities: x509,
    jwtAuthorityKeyIds: jwt,
    ...(typeof doc.spiffe_sequence === 'number' ? { sequence: doc.spiffe_sequence } : {}),
    ...(typeof doc.spiffe_refresh_hint === 'number' ? { refreshHintSeconds: doc.spiffe_refresh_hint } : {})
  }
}

/** The X.509 part of a SPIFFE bundle as a TrustBundle for TLS. */
export function toTrustBundle (b: SpiffeBundle): TrustBundle {
  return makeBundle(b.x509Authorities.map(cert => ({ trustDomain: b.trustDomain, cert })))
}

/** Write the roots of `trustDomain` as a SPIFFE bundle document. */
export function formatSpiffeBundle (bundle: TrustBundle, trustDomain: string, opts: { sequence?: number, refreshHintSeconds?: number } = {}): string {
  const keys = bundle.roots.filter(r => r.trustDomain === trustDomain).map(r => ({
    use: 'x509-svid',
    ...(r.cert.publicKey.export({ format: 'jwk' }) as Record<string, unknown>),
    x5c: [r.cert.der.toString('base64')]
  }))
  return JSON.stringify({ keys, spiffe_sequence: opts.sequence ?? 1, spiffe_refresh_hint: opts.refreshHintSeconds ?? 300 }, null, 2) + '\n'
}

/**
 * A trust bundle file as --ca and --federate take it: a SPIFFE bundle document
 * (JSON: SPIRE, spiffe-helper, a federation endpoint) or PEM roots, for
 * `trustDomain` (PEM roots carrying a `spiffe://` URI SAN keep theirs).
 */
export function bundleFromText (text: string, trustDomain: string, what: string): TrustBundle {
  return text.trimStart().startsWith('{')
    ? toTrustBundle(parseSpiffeBundle(trustDomain, text))
    : bundleFromPem(text, trustDomain, what)
}
