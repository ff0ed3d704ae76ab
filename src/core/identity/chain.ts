/**
 * Path building for `cert inspect --ca`: from a certificate, through the
 * intermediates that came with it, to a root of a bundle (RFC 5280 §6 in the
 * small: issuer name and signature, validity of every certificate on the path,
 * every issuer a CA with keyCertSign). The verdict says against which root,
 * or why not, in words. The data plane leaves this to OpenSSL; this is for
 * people. Pure: facts in, a verdict out.
 */
import { X509Certificate } from 'node:crypto'
import { parseSpiffeId } from './spiffe-id.js'
import { KeyUsage, type CertFacts } from './x509.js'

/** Why a chain is not trusted: a short label, as the metrics reasons are. */
export type ChainFailure = 'unknown_issuer' | 'bad_signature' | 'expired' | 'not_yet_valid' | 'issuer_not_ca' | 'foreign_trust_domain' | 'too_long'

/** The chain verdict: the root and the path (certificate first, root last), or the failure. */
export type ChainVerdict =
  | { readonly ok: true, readonly root: CertFacts, readonly path: readonly CertFacts[] }
  | { readonly ok: false, readonly failure: ChainFailure, readonly why: string }

const MAX_DEPTH = 8

/**
 * Verify `chain` (the certificate first, then what came with it) against
 * `roots` at `now`. A certificate that is itself in `roots` is trusted as that root.
 */
export function verifyChain (chain: readonly CertFacts[], roots: readonly CertFacts[], now: number): ChainVerdict {
  const path: CertFacts[] = [chain[0]!]
  const pool = chain.slice(1)
  for (let cur = chain[0]!; path.length <= MAX_DEPTH;) {
    const dated = validity(cur, now)
    if (dated !== null) return dated
    const self = roots.find(r => r.fingerprint256 === cur.fingerprint256)
    if (self !== undefined) return trustDomainCheck(chain[0]!, self, path)
    const byRoot = roots.filter(r => r.subject === cur.issuer)
    const root = byRoot.find(r => signedBy(cur, r))
    if (root !== undefined) {
      const bad = validity(root, now) ?? signerCheck(root, cur)
      return bad ?? trustDomainCheck(chain[0]!, root, [...path, root])
    }
    const byPool = pool.filter(p => p.subject === cur.issuer && !path.includes(p))
    const next = byPool.find(p => signedBy(cur, p))
    if (next === undefined) return noIssuer(cur, byRoot.length + byPool.length > 0)
    const bad = signerCheck(next, cur)
    if (bad !== null) return bad
    path.push(next)
    cur = next
  }
  return { ok: false, failure: 'too_long', why: `no root within ${MAX_DEPTH} certificates` }
}

function signedBy (child: CertFacts, issuer: CertFacts): boolean {
  try { return new X509Certificate(child.der).verify(issuer.publicKey) } catch { return false }
}

function validity (c: CertFacts, now: number): ChainVerdict | null {
  if (now < c.notBefore.getTime()) return { ok: false, failure: 'not_yet_valid', why: `${c.subject} is not valid before ${c.notBefore.toISOString()}` }
  if (now > c.notAfter.getTime()) return { ok: false, failure: 'expired', why: `${c.subject} expired at ${c.notAfter.toISOString()}` }
  return null
}

function signerCheck (issuer: CertFacts, child: CertFacts): ChainVerdict | null {
  if (!issuer.isCA) return { ok: false, failure: 'issuer_not_ca', why: `${issuer.subject} signed ${child.subject} but is not a CA (basicConstraints CA:FALSE)` }
  if ((issuer.keyUsage & KeyUsage.keyCertSign) === 0) return { ok: false, failure: 'issuer_not_ca', why: `${issuer.subject} signed ${child.subject} but its keyUsage has no keyCertSign` }
  return null
}

function noIssuer (cur: CertFacts, sameName: boolean): ChainVerdict {
  if (sameName) return { ok: false, failure: 'bad_signature', why: `${cur.subject} names ${cur.issuer} as its issuer, but no certificate of that name in the bundle or the file signed it` }
  if (cur.issuer === cur.subject) return { ok: false, failure: 'unknown_issuer', why: `${cur.subject} is self-signed and not a root of the bundle` }
  return { ok: false, failure: 'unknown_issuer', why: `${cur.issuer} (the issuer of ${cur.subject}) is neither a root of the bundle nor in the file` }
}

/** A root with a SPIFFE ID speaks for its trust domain only (X509-SVID.md §5.2, as tls/peer.ts). */
function trustDomainCheck (cert: CertFacts, root: CertFacts, path: readonly CertFacts[]): ChainVerdict {
  const certTd = tdOf(cert)
  const rootTd = tdOf(root)
  if (certTd !== undefined && rootTd !== undefined && certTd !== rootTd) {
    return { ok: false, failure: 'foreign_trust_domain', why: `${cert.uris.find(u => u.startsWith('spiffe://')) ?? cert.subject} is in trust domain ${certTd} but its chain ends at ${root.subject}, a root of ${rootTd}` }
  }
  return { ok: true, root, path }
}

function tdOf (c: CertFacts): string | undefined {
  const u = c.uris.find(x => x.startsWith('spiffe://'))
  if (u === undefined) return undefined
  try { return parseSpiffeId(u).trustDomain } catch { return undefined }
}
