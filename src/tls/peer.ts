/**
 * Peer identity on every handshake. OpenSSL has already verified the chain
 * against the union of our roots; here the SVID rules run, and the chain must
 * end at a root of the peer's *own* trust domain. Results are cached by leaf
 * fingerprint, so a known peer costs one Map lookup plus a validity check.
 * One verifier per trust-bundle generation: a new bundle means a new cache.
 */
import { X509Certificate } from 'node:crypto'
import type { DetailedPeerCertificate, PeerCertificate, TLSSocket } from 'node:tls'
import { PeerIdentityError } from '../core/errors.js'
import type { TrustBundle } from '../core/identity/bundle.js'
import { checkLeaf, checkValidity } from '../core/identity/svid.js'
import { toConsulService, type ConsulServiceId, type SpiffeId } from '../core/identity/spiffe-id.js'
import { certFacts, type CertFacts } from '../core/identity/x509.js'
import { tlsCapabilities } from './probe.js'

/** Who the peer is, once its certificate passed every check. */
export interface PeerIdentity {
  readonly id: SpiffeId
  /** Consul's service form of `id`; null when the ID has another shape. */
  readonly service: ConsulServiceId | null
  readonly serial: string
  readonly notAfter: Date
}

type Cached = { ok: true, peer: PeerIdentity, leaf: CertFacts } | { ok: false, error: PeerIdentityError }

const MAX_CACHE = 10_000

/** Verifies peers against one trust bundle. */
export class PeerVerifier {
  readonly #bundle: TrustBundle
  readonly #cache = new Map<string, Cached>()

  constructor (bundle: TrustBundle) {
    this.#bundle = bundle
  }

  /**
   * Verify a peer certificate as Node reports it. `cert` must be the detailed
   * form (issuer chain); `now` is injectable for tests. Throws PeerIdentityError.
   */
  verify (cert: PeerCertificate | DetailedPeerCertificate, now = Date.now()): PeerIdentity {
    if (cert === undefined || cert === null || cert.raw === undefined) throw new PeerIdentityError('no_certificate', 'peer presented no certificate')
    return this.#result(this.#cache.get(cert.fingerprint256) ?? this.#remember(cert.fingerprint256, this.#check(cert as DetailedPeerCertificate)), now)
  }

  /**
   * Verify the peer of an established TLS socket. A known peer costs its leaf's
   * fingerprint only: Node's detailed certificate objects (every certificate of
   * the chain turned into JS, public keys decoded again by OpenSSL: ~7 % of a
   * sidecar's CPU under connection churn) are built on a cache miss alone.
   *
   * A resumed session this verifier has not seen (made by a sibling --workers
   * process, or its entry was evicted) is checked like a full handshake: no
   * chain is sent on resumption (RFC 8446 §2.2), but the session holds the
   * peer's leaf and OpenSSL's verdict on its chain when the session was made,
   * sealed by our ticket keys (Node refuses the connection unless that verdict
   * was OK), and Node rebuilds the issuer path from our trust store. So the
   * SVID rules and the own-trust-domain root check run on every new leaf, and
   * the ticket keys live and die with this TLS generation.
   *
   * On Node 20 and 22, `getPeerX509Certificate()` shortens the issuer chain
   * that a later `getPeerCertificate(true)` reports to the leaf alone, so a
   * chain through an intermediate looked as if it did not reach our roots
   * (`unknown_root`). There (tls-probe.ts finds out) the detailed chain is read
   * first, on every full handshake; `keepsChain` says which path to take.
   */
  verifySocket (sock: TLSSocket, now = Date.now(), keepsChain = tlsCapabilities().x509KeepsChain): PeerIdentity {
    if (!keepsChain) return this.verify(sock.getPeerCertificate(true), now) // (verify names a missing certificate)
    const leaf = sock.getPeerX509Certificate()
    if (leaf === undefined) throw new PeerIdentityError('no_certificate', 'peer presented no certificate')
    const hit = this.#cache.get(leaf.fingerprint256)
    if (hit !== undefined) return this.#result(hit, now)
    return this.#result(this.#remember(leaf.fingerprint256, this.#check(sock.getPeerCertificate(true))), now)
  }

  #remember (fingerprint: string, c: Cached): Cached {
    // Oldest first: a Map iterates in insertion order.
    if (this.#cache.size >= MAX_CACHE) this.#cache.delete(this.#cache.keys().next().value as string)
    this.#cache.set(fingerprint, c)
    return c
  }

  #result (hit: Cached, now: number): PeerIdentity {
    if (!hit.ok) throw hit.error
    checkValidity(hit.leaf, now)
    return hit.peer
  }

  #check (cert: DetailedPeerCertificate): Cached {
    try {
      const leaf = certFacts(cert.raw)
      const id = checkLeaf(leaf)
      const root = chainRoot(cert)
      const rootTd = root === undefined ? undefined : this.#bundle.trustDomainOf(root.fingerprint256) ?? this.#issuingRoot(root)
      if (rootTd === undefined) throw new PeerIdentityError('unknown_root', `certificate chain of ${id.uri} does not end at a root in our trust bundle`)
      if (rootTd !== id.trustDomain) throw new PeerIdentityError('foreign_trust_domain', `${id.uri} is in trust domain ${id.trustDomain} but its chain ends at a root of ${rootTd}`)
      return { ok: true, leaf, peer: { id, service: toConsulService(id), serial: leaf.serial, notAfter: leaf.notAfter } }
    } catch (err) {
      if (err instanceof PeerIdentityError) return { ok: false, error: err }
      return { ok: false, error: new PeerIdentityError('bad_certificate', `peer certificate could not be parsed: ${String(err)}`) }
    }
  }

  /**
   * The trust domain of the bundle root that issued `last`, where Node's chain
   * stops short of it. Node completes the peer's chain from the issuer store of
   * the server's own context, so under an SNICallback context (the terminating
   * gateway) a chain the peer sent whole (a leaf and the cross-signed copy of a
   * rotated root) ends at its last sent certificate, which is no root of ours,
   * though OpenSSL verified it against the bundle.
   */
  #issuingRoot (last: DetailedPeerCertificate): string | undefined {
    const child = new X509Certificate(last.raw)
    return this.#bundle.roots.find(r => {
      const root = new X509Certificate(r.cert.der)
      return child.checkIssued(root) && child.verify(r.cert.publicKey)
    })?.trustDomain
  }
}

/** The last certificate of the issuer chain Node built (self-issued root, or where Node stopped). */
function chainRoot (cert: DetailedPeerCertificate): DetailedPeerCertificate | undefined {
  let cur: DetailedPeerCertificate | undefined = cert
  for (let depth = 0; cur !== undefined && depth < 10; depth++) {
    const next: DetailedPeerCertificate | undefined = cur.issuerCertificate
    if (next === undefined || next === cur || next.fingerprint256 === cur.fingerprint256) return cur
    cur = next
  }
  return undefined
}
