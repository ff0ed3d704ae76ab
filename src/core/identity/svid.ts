/**
 * X.509-SVID rules (SPIFFE X509-SVID.md §4, §5; go-spiffe x509svid/svid.go order):
 * exactly one URI SAN, a valid SPIFFE ID with a non-root path, leaf not a CA,
 * digitalSignature set, keyCertSign and cRLSign clear; signing certificates are
 * CAs with keyCertSign. Pure: facts in, an ID or a PeerIdentityError out.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto'
import { CertificateError, PeerIdentityError, SpiffeIdError } from '../errors.js'
import { parseSpiffeId, type SpiffeId } from './spiffe-id.js'
import { KeyUsage, certsFromPem, pemBlocks, type CertFacts } from './x509.js'

/** One X.509-SVID leaf rule: a metric-friendly reason and a check returning the failure text or null. */
export interface LeafRule {
  readonly reason: string
  readonly describe: string
  readonly check: (leaf: CertFacts) => string | null
}

/** The leaf rules in go-spiffe's order; checkLeaf stops at the first failure, `cert inspect` shows them all. */
export const LEAF_RULES: readonly LeafRule[] = [
  { reason: 'no_uri_san', describe: 'has a URI SAN', check: l => l.uris.length === 0 ? 'certificate contains no URI SAN' : null },
  { reason: 'multiple_uri_san', describe: 'exactly one URI SAN', check: l => l.uris.length > 1 ? `certificate contains more than one URI SAN (${l.uris.length})` : null },
  {
    reason: 'bad_spiffe_id',
    describe: 'URI SAN is a valid SPIFFE ID',
    check: l => {
      if (l.uris.length !== 1) return null
      try { parseSpiffeId(l.uris[0]!); return null } catch (err) {
        return `URI SAN is not a valid SPIFFE ID: ${err instanceof SpiffeIdError ? err.message : String(err)}`
      }
    }
  },
  {
    reason: 'root_path',
    describe: 'SPIFFE ID has a non-root path',
    check: l => {
      if (l.uris.length !== 1) return null
      try { return parseSpiffeId(l.uris[0]!).path === '' ? `leaf certificate SPIFFE ID ${l.uris[0]!} must have a non-root path` : null } catch { return null }
    }
  },
  { reason: 'leaf_is_ca', describe: 'not a CA (basicConstraints CA:FALSE)', check: l => l.isCA ? 'leaf certificate must not have CA flag set to true' : null },
  { reason: 'no_digital_signature', describe: 'keyUsage has digitalSignature', check: l => (l.keyUsage & KeyUsage.digitalSignature) === 0 ? "leaf certificate must have 'digitalSignature' set as key usage" : null },
  { reason: 'key_cert_sign', describe: 'keyUsage has no keyCertSign', check: l => (l.keyUsage & KeyUsage.keyCertSign) !== 0 ? "leaf certificate must not have 'keyCertSign' set as key usage" : null },
  { reason: 'crl_sign', describe: 'keyUsage has no cRLSign', check: l => (l.keyUsage & KeyUsage.cRLSign) !== 0 ? "leaf certificate must not have 'cRLSign' set as key usage" : null }
]

/**
 * The signing-certificate rules (X509-SVID.md §3.2, §4.1, §4.3): a CA with
 * keyCertSign; a SPIFFE ID, if it has one, names a trust domain (no path).
 * No leaf rule applies. `cert inspect` judges CA certificates by these.
 */
export const SIGNING_RULES: readonly LeafRule[] = [
  { reason: 'signer_not_ca', describe: 'a CA (basicConstraints CA:TRUE)', check: c => c.isCA ? null : 'signing certificate must have CA flag set to true' },
  { reason: 'signer_no_key_cert_sign', describe: 'keyUsage has keyCertSign', check: c => (c.keyUsage & KeyUsage.keyCertSign) === 0 ? "signing certificate must have 'keyCertSign' set as key usage" : null },
  {
    reason: 'signer_bad_spiffe_id',
    describe: 'a SPIFFE ID, if any, is a trust domain (no path)',
    check: c => {
      const spiffe = c.uris.filter(u => u.toLowerCase().startsWith('spiffe:'))
      if (spiffe.length === 0) return null
      if (spiffe.length > 1) return `signing certificate has more than one SPIFFE ID (${spiffe.length})`
      try {
        const id = parseSpiffeId(spiffe[0]!)
        return id.path === '' ? null : `signing certificate SPIFFE ID ${spiffe[0]!} must not have a path`
      } catch (err) {
        return `URI SAN is not a valid SPIFFE ID: ${err instanceof SpiffeIdError ? err.message : String(err)}`
      }
    }
  }
]

/**
 * Check a leaf certificate against the SVID leaf rules; return its SPIFFE ID.
 * The error's `reason` is a short label for metrics and logs.
 */
export function checkLeaf (leaf: CertFacts): SpiffeId {
  for (const rule of LEAF_RULES) {
    const failure = rule.check(leaf)
    if (failure !== null) throw new PeerIdentityError(rule.reason, failure)
  }
  return parseSpiffeId(leaf.uris[0]!)
}

/** Check a certificate that signs others (intermediate) in an SVID chain. */
export function checkSigningCert (cert: CertFacts): void {
  if (!cert.isCA) throw new PeerIdentityError('signer_not_ca', 'signing certificate must have CA flag set to true')
  if ((cert.keyUsage & KeyUsage.keyCertSign) === 0) throw new PeerIdentityError('signer_no_key_cert_sign', "signing certificate must have 'keyCertSign' set as key usage")
}

/** Check validity at `now`; reason `expired` or `not_yet_valid`. */
export function checkValidity (cert: CertFacts, now: number): void {
  if (now < cert.notBefore.getTime()) throw new PeerIdentityError('not_yet_valid', `certificate is not valid before ${cert.notBefore.toISOString()}`)
  if (now > cert.notAfter.getTime()) throw new PeerIdentityError('expired', `certificate expired at ${cert.notAfter.toISOString()}`)
}

/** An SVID a workload holds for itself: chain (leaf first), key and ID. */
export interface OwnSvid {
  readonly id: SpiffeId
  readonly chain: readonly CertFacts[]
  readonly key: KeyObject
  /** The PEM texts as given, for building a TLS secure context. */
  readonly certPem: string
  readonly keyPem: string
}

/**
 * Load our own SVID from PEM (go-spiffe x509svid.Parse): leaf and signing-cert
 * rules, then the key must match the leaf. Errors name `what` (the file or flag)
 * and never include key material.
 */
export function parseOwnSvid (certPem: string, keyPem: string, what: { cert: string, key: string }): OwnSvid {
  const chain = certsFromPem(certPem, what.cert)
  const keyBlocks = pemBlocks(keyPem)
  if (keyBlocks.length === 0) throw new CertificateError(`${what.key}: cannot parse PEM encoded private key: no PEM blocks found`)
  const keyBlock = keyBlocks.find(b => b.type.endsWith('PRIVATE KEY'))
  if (keyBlock === undefined) throw new CertificateError(`${what.key}: private key validation failed: no private key found`)
  let id: SpiffeId
  try {
    id = checkLeaf(chain[0]!)
    for (const c of chain.slice(1)) checkSigningCert(c)
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err)
    throw new CertificateError(`${what.cert}: certificate validation failed: ${msg}`)
  }
  let key: KeyObject
  try {
    key = createPrivateKey({ key: keyBlock.der, format: 'der', type: keyBlock.type === 'EC PRIVATE KEY' ? 'sec1' : keyBlock.type === 'RSA PRIVATE KEY' ? 'pkcs1' : 'pkcs8' })
  } catch {
    throw new CertificateError(`${what.key}: cannot parse PEM encoded private key (malformed ${keyBlock.type} block)`)
  }
  if (!publicKeysEqual(key, chain[0]!.publicKey)) {
    throw new CertificateError(`${what.key}: private key validation failed: leaf certificate does not match private key (is ${what.key} the key for ${what.cert}?)`)
  }
  return { id, chain, key, certPem, keyPem }
}

function publicKeysEqual (priv: KeyObject, pub: KeyObject): boolean {
  // createPublicKey derives the public half of a private KeyObject.
  const a = createPublicKey(priv).export({ type: 'spki', format: 'der' })
  const b = pub.export({ type: 'spki', format: 'der' })
  return a.equals(b)
}
