/**
 * One TLS attempt at one upstream instance: `open` starts TCP and TLS (SNI,
 * the offer Resumption picked, the server identity check inside the
 * handshake), `handshake` awaits the outcome under the handshake deadline and
 * tells Resumption what it learnt. A wrong server fails closed before a byte
 * of the app is sent.
 *
 * This object lives as long as the connection (the socket keeps
 * checkServerIdentity, and the ticket listener stays registered), so what the
 * handshake needed is dropped once it is over: a held connection must not
 * keep the ticket it was offered (~1.5 KB).
 */
import { connect as tlsConnect, TLSSocket, type PeerCertificate } from 'node:tls'
import type { HostPort } from '../core/config/types.js'
import { PeerIdentityError, toError } from '../core/errors.js'
import type { Metrics } from '../metrics/metrics.js'
import type { TlsState } from '../tls/context.js'
import type { CachedSession } from '../tls/session-cache.js'
import { resumableUntil } from '../tls/session-cache.js'
import { withoutPeerCertificate } from '../tls/ticket-der.js'
import { exportPsk, type Psk } from '../tls/psk.js'
import { trackTlsEnd } from '../tls/end.js'
import { handshakeDeadline } from './handshake.js'
import type { Resumption } from './resumption.js'

/** TLSSocket#setSession: what tls.connect() itself calls, not in @types/node. */
type SettableSession = TLSSocket & { setSession: (session: Buffer) => void }
const hasSetSession = typeof (TLSSocket.prototype as Partial<SettableSession>).setSession === 'function'

/** A connection whose server is verified. */
export interface Upstream {
  readonly tls: TLSSocket
  readonly peerId: string
  readonly resumed: boolean
  /** Resumed with a PSK of ours (not a ticket). */
  readonly psk: boolean
}

/** What an attempt is made with. */
export interface AttemptOptions {
  readonly state: TlsState
  /** SNI and the SPIFFE ID the server must present. */
  readonly names: { readonly sni: string, readonly expected: string }
  /** `host:port` of the instance. */
  readonly key: string
  readonly resumption: Resumption
  readonly handshakeTimeoutMs: number
  readonly metrics: Metrics
  /** ALPN to offer (TUNNEL_ALPN for a pooled tunnel); none for a plain connection. */
  readonly alpn?: readonly string[]
}

/** One attempt; see the module comment. */
export class UpstreamAttempt {
  readonly #o: AttemptOptions
  #offered: CachedSession | undefined
  #psk: Psk | undefined
  #ticket: Buffer | undefined
  /** The PSK of this connection's full handshake, kept with the tickets that follow it. */
  #fresh: Psk | undefined
  #verified: { peerId: string, expiresAt: number } | undefined
  #identityError: PeerIdentityError | undefined

  constructor (o: AttemptOptions) {
    this.#o = o
    const offer = o.resumption.offer(o.state, o.key, Date.now())
    this.#offered = offer.entry
    this.#psk = offer.psk
    this.#ticket = offer.ticket
  }

  /** Start TCP and TLS towards `to` (net/dial.ts's Opener: one socket for both). */
  readonly open = (to: HostPort): TLSSocket => {
    const ticket = this.#ticket
    this.#ticket = undefined
    const tls = tlsConnect({
      host: to.host,
      port: to.port,
      // (allowHalfOpen stays false, the default, until the handshake is done: a peer's EOF must end it.)
      secureContext: this.#o.state.clientContext,
      servername: this.#o.names.sni,
      ...(this.#o.alpn === undefined ? {} : { ALPNProtocols: [...this.#o.alpn] }),
      // The ticket is set once below, before TCP is up and the ClientHello is
      // written: given as `session` here, Node 20 decodes it twice (in
      // TLSSocket's _init and again in connect()), ~15 % of the outbound's CPU
      // under churn (bench/RESULTS.md). Only if Node lost that method, as an option.
      ...(ticket === undefined || hasSetSession ? {} : { session: ticket }),
      ...(this.#psk === undefined ? {} : { pskCallback: () => this.#psk ?? null }),
      // Runs inside a full handshake, before 'secureConnect': a wrong server fails closed.
      // (Not called for a resumed one: the ticket carries the identity checked here.)
      checkServerIdentity: (_host: string, cert: PeerCertificate) => this.#checkServer(cert)
    }).setNoDelay(true)
    if (ticket !== undefined && hasSetSession) (tls as SettableSession).setSession(ticket)
    return tls
  }

  #checkServer (cert: PeerCertificate): Error | undefined {
    const { state, names } = this.#o
    try {
      const peer = state.verifier.verify(cert)
      if (peer.id.uri !== names.expected) throw new PeerIdentityError('wrong_server_identity', `server presented ${peer.id.uri}, expected ${names.expected}`)
      this.#verified = { peerId: peer.id.uri, expiresAt: resumableUntil(Date.now(), peer.notAfter, state.svid.chain[0]!.notAfter) }
      return undefined
    } catch (err) {
      this.#identityError = err instanceof PeerIdentityError ? err : new PeerIdentityError('bad_certificate', toError(err).message)
      return this.#identityError
    }
  }

  /**
   * TLS 1.3 tickets arrive after the handshake; keep the newest, with what we
   * verified, and without the server's certificate in it (decoded on every
   * resumed connect, never used: ticket-der.ts).
   */
  readonly #onTicket = (session: Buffer): void => {
    const v = this.#verified
    if (v !== undefined) this.#o.resumption.keep(this.#o.state, this.#o.key, { session: withoutPeerCertificate(session), ...(this.#fresh === undefined ? {} : { psk: this.#fresh }), peerId: v.peerId, expiresAt: v.expiresAt })
  }

  /** Once TCP is up: the TLS outcome, within the handshake deadline. */
  handshake (tls: TLSSocket, signal?: AbortSignal): Promise<Upstream> {
    return new Promise((resolve, reject) => {
      // Not when offering a PSK: a mesh-proxy server sends a ticket after every PSK
      // handshake, and Node turns each into DER and an event only if someone listens.
      // (Declined: the full handshake's PSK is kept, and after a second decline the
      // next connection is a full handshake that keeps its ticket.)
      if (this.#psk === undefined) tls.on('session', this.#onTicket)
      const cancel = handshakeDeadline(tls, this.#o.handshakeTimeoutMs, this.#o.key, signal)
      const onError = (err: Error): void => {
        cancel()
        if (this.#offered !== undefined) this.#o.resumption.forget(this.#o.key)
        this.#offered = undefined
        this.#o.metrics.handshakeFailure(this.#identityError?.reason ?? 'tls_error')
        tls.destroy()
        reject(this.#identityError ?? new PeerIdentityError('tls_error', `TLS with ${this.#o.key} failed: ${err.message}`))
      }
      tls.once('error', onError)
      tls.once('secureConnect', () => {
        cancel()
        tls.off('error', onError)
        const up = this.#established(tls)
        if (up === undefined) onError(new Error('server identity was not verified'))
        else resolve(up)
      })
    })
  }

  /** The handshake is done: who the server is, and what to keep for the next one. */
  #established (tls: TLSSocket): Upstream | undefined {
    const resumed = tls.isSessionReused()
    const offered = this.#offered
    // checkServerIdentity did not run: the identity is the ticket's or the PSK's (copied: not the entry itself).
    if (resumed && offered !== undefined) this.#verified = { peerId: offered.peerId, expiresAt: offered.expiresAt }
    const verified = this.#verified
    // (Cannot happen: a full handshake ran checkServerIdentity, a resumed one had a ticket or PSK.)
    if (verified === undefined) return undefined
    const viaPsk = resumed && this.#psk !== undefined
    if (this.#psk !== undefined) this.#o.resumption.pskOutcome(this.#o.key, viaPsk)
    if (!resumed) {
      // Both ends take the same PSK from this verified handshake; a mesh-proxy server keeps it too.
      this.#fresh = exportPsk(tls)
      if (this.#fresh !== undefined) this.#o.resumption.keep(this.#o.state, this.#o.key, { psk: this.#fresh, peerId: verified.peerId, expiresAt: verified.expiresAt })
    }
    this.#offered = undefined
    this.#psk = undefined
    tls.allowHalfOpen = true // independent half-close from here on (see relay.ts)
    trackTlsEnd(tls)
    return { tls, peerId: verified.peerId, resumed, psk: viaPsk }
  }
}
