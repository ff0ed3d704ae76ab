/**
 * Who an inbound peer is, once its handshake is done: its chain verified by
 * OpenSSL (or one of our PSKs standing in for it), its SPIFFE ID read, mapped
 * to a service under our identity form, and its trust domain ours or one this
 * TLS generation federates. Refusals are PeerIdentityErrors whose `reason` is
 * the log's and the metric's.
 */
import type { TLSSocket } from 'node:tls'
import { PeerIdentityError, errorCode, isRoutineCloseError } from '../core/errors.js'
import { resumableUntil } from '../tls/session-cache.js'
import { exportPsk, sharedPsk, type SharedPsk } from '../tls/psk.js'
import { notOfForm, workloadOf, type IdentityForm, type Workload } from '../core/identity/forms.js'
import type { ServiceRef } from '../core/intentions/table.js'
import type { TlsState } from '../tls/context.js'
import type { PeerIdentity } from '../tls/peer.js'

/** Checks peers; caches each verified peer's service (the verifier caches PeerIdentity objects). */
export class PeerChecker {
  readonly #form: IdentityForm
  readonly #workloads = new WeakMap<PeerIdentity, Workload | null>()

  constructor (form: IdentityForm) {
    this.#form = form
  }

  /** The peer of `sock` and the intention source it is; `viaPsk` is the peer a PSK of ours was made with. */
  check (sock: TLSSocket, state: TlsState, viaPsk: PeerIdentity | undefined): { peer: PeerIdentity, source: ServiceRef } {
    // Only a PSK of ours stands in for the certificate check (the peer was verified when it was made).
    if (viaPsk === undefined && !sock.authorized) {
      if (sock.getPeerX509Certificate() === undefined) throw new PeerIdentityError('no_certificate', 'peer presented no certificate')
      const verdict = sock.authorizationError?.toString() ?? 'unverified'
      throw new PeerIdentityError(verdict, `peer certificate chain was not verified against our trust bundle: ${verdict}`)
    }
    const peer = viaPsk ?? state.verifier.verifySocket(sock)
    let w = this.#workloads.get(peer)
    if (w === undefined) this.#workloads.set(peer, w = workloadOf(this.#form, peer.id))
    if (w === null) throw new PeerIdentityError('not_a_service', notOfForm(this.#form, peer.id.uri))
    const td = peer.id.trustDomain
    const foreign = td !== state.svid.id.trustDomain
    if (foreign && !state.federated.has(td)) throw new PeerIdentityError('foreign_trust_domain', `${peer.id.uri} is not in our trust domain ${state.svid.id.trustDomain} (to accept its peers, federate it: --federate ${td}=<its bundle>)`)
    return { peer, source: foreign ? { namespace: w.namespace, name: w.service, trustDomain: td } : { namespace: w.namespace, name: w.service } }
  }
}

/** Why a handshake failed, for the log and the metric, and how loud: a peer hanging up mid-handshake is routine. */
export function tlsClientError (err: Error, sock: TLSSocket, ownExpired: boolean): { reason: string, level: 'debug' | 'warn' } {
  // (null, not undefined, on a socket whose handshake never got to the chain: a hang-up is routine.)
  const authz = (sock as TLSSocket & { authorizationError?: string | null }).authorizationError ?? undefined
  const cause = (err as Error & { cause?: unknown }).cause
  const reason = ownExpired ? 'own_certificate_expired' : authz ?? errorCode(cause) ?? errorCode(err) ?? 'tls_error'
  return { reason, level: isRoutineCloseError(err) && authz === undefined && !ownExpired ? 'debug' : 'warn' }
}

/** After a full handshake whose peer passed every check: keep the connection's PSK with that peer (and hand it to --workers siblings). */
export function rememberPsk (sock: TLSSocket, state: TlsState, peer: PeerIdentity, share: ((m: SharedPsk) => void) | undefined): void {
  const made = exportPsk(sock)
  if (made === undefined) return
  const e = { psk: made.psk, peer, expiresAt: resumableUntil(Date.now(), peer.notAfter, state.svid.chain[0]!.notAfter) }
  state.psks.set(made.identity, e)
  share?.(sharedPsk(state.generation, made.identity, e))
}
