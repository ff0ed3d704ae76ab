/**
 * The public listener (consul NewPublicListener): terminate mTLS from other
 * sidecars, check the peer's SVID, ask the intention table once, and only then
 * connect to the local app and relay. Deny means the app never sees a byte.
 * A peer that negotiated a tunnel (tls/alpn.ts) is handed to tunnel-inbound.ts,
 * whose streams come back here, one connection each, through #serve.
 */
import { createServer, type TLSSocket } from 'node:tls'
import type { Socket } from 'node:net'
import type { Logger } from 'pino'
import type { Endpoint, HostPort, Timeouts } from '../core/config/types.js'
import { formatEndpoint } from '../core/config/endpoint.js'
import { PeerIdentityError, ignoreError, toError } from '../core/errors.js'
import { decidedBy, formatServiceRef, type Authorizer, type Decision, type ServiceRef } from '../core/intentions/table.js'
import { noopMetrics, type Metrics } from '../metrics/metrics.js'
import { Listener } from './listener.js'
import type { Watched } from '../core/watched.js'
import { SourceRateLimiter, type RateLimit } from './rate-limit.js'
import { dial } from '../net/dial.js'
import { PendingHandshakes } from './handshake.js'
import { cut, isStream, relay } from './relay.js'
import { trackTlsEnd } from '../tls/end.js'
import { connBug, logClosed } from './finish.js'
import { proxyHeaderFor } from './app-header.js'
import type { TlsState } from '../tls/context.js'
import { SESSION_LIFETIME_MS } from '../tls/session-cache.js'
import type { ServerPsk, SharedPsk } from '../tls/psk.js'
import type { PeerIdentity } from '../tls/peer.js'
import type { IdentityForm } from '../core/identity/forms.js'
import { PeerChecker, rememberPsk, tlsClientError } from './inbound-peer.js'
import { PendingAsks, remoteOf, type Asked, type InboundConn } from './inbound-conn.js'
import { selectAlpn, TUNNEL_ALPN } from '../tls/alpn.js'
import type { ServerHttp2Stream } from 'node:http2'
import { TunnelAcceptor } from './tunnel-inbound.js'

/** What an inbound listener needs. */
export interface InboundOptions {
  /** This sidecar's service (the intention destination). */
  readonly service: ServiceRef
  /** How a peer's SPIFFE ID names its service (core/identity/forms.ts). */
  readonly identityForm: IdentityForm
  readonly listen: HostPort
  /** The local app: TCP or a UNIX socket. */
  readonly app: Endpoint
  /** `v2`: the app gets a PROXY v2 header before the first byte (app-header.ts). */
  readonly proxyProtocol?: 'off' | 'v2'
  readonly timeouts: Timeouts
  /** 0 = unlimited; counts connections in the handshake too. */
  readonly maxConnections?: number
  /** New connections per source address; null = unlimited. */
  readonly sourceRateLimit?: RateLimit | null
  /** Our TLS generations: the current one is read per connection, a new one swaps the server's context. */
  readonly tls: Watched<TlsState>
  /** Current authorizer (read per connection). */
  readonly authorize: () => Authorizer
  /**
   * When given, each verified peer is decided by this instead of the table
   * (`--authorize-via-agent`: the Consul agent's authorize endpoint). It must
   * not reject: a failure is a deny (fail closed).
   */
  readonly ask?: (source: ServiceRef, peer: PeerIdentity) => Promise<Decision>
  readonly logger: Logger
  readonly metrics?: Metrics
  /** Hands each PSK made here to sibling --workers processes (psk.ts); absent for one process. */
  readonly sharePsk?: (m: SharedPsk) => void
}

let nextConnId = 0

/** Accepts mTLS connections and relays allowed ones to the local app. */
export class InboundListener extends Listener<InboundConn> {
  readonly #opts: InboundOptions
  readonly #metrics: Metrics
  /** TCP sockets still in the TLS handshake, under their deadline. */
  readonly #handshakes: PendingHandshakes
  #unsubscribe: (() => void) | undefined
  readonly #rate: SourceRateLimiter | null
  /** Log strings shared by every connection's access fields (not rebuilt per connection). */
  readonly #destination: string
  readonly #appAddr: string
  /** The PSK each socket's handshake was offered and we knew, until its 'secureConnection' (psk.ts). */
  readonly #pskOffered = new WeakMap<TLSSocket, ServerPsk>()
  readonly #peers: PeerChecker
  readonly #tunnels: TunnelAcceptor
  readonly #asking = new PendingAsks()

  constructor (opts: InboundOptions) {
    const metrics = opts.metrics ?? noopMetrics
    super({ kind: 'inbound', timeouts: opts.timeouts, maxConnections: opts.maxConnections ?? 0, logger: opts.logger, metrics })
    this.#opts = opts
    this.#metrics = metrics
    this.#rate = opts.sourceRateLimit == null ? null : new SourceRateLimiter(opts.sourceRateLimit)
    this.#handshakes = new PendingHandshakes(opts.timeouts.handshakeTimeoutMs)
    this.#destination = formatServiceRef(opts.service)
    this.#appAddr = formatEndpoint(opts.app)
    this.#peers = new PeerChecker(opts.identityForm)
    this.#tunnels = new TunnelAcceptor({
      logger: opts.logger,
      metrics,
      destination: this.#destination,
      decide: peer => this.#opts.ask?.(peer.source, peer.identity) ?? this.#opts.authorize()(peer.source),
      serve: (stream, access, peer) => this.#serve(stream, { ...access, app: this.#appAddr }, peer.source, peer.peerId, peer.tls)
    })
  }

  /** Bind and start accepting; resolves with the bound address. Rejects (e.g. EADDRINUSE) with a clear error. */
  async start (): Promise<HostPort> {
    const { timeouts } = this.#opts
    const server = createServer({
      ...this.#opts.tls.current.serverOptions,
      requestCert: true,
      // The chain verdict is read in #onSecure, not enforced by Node: Node 24 reports
      // UNABLE_TO_GET_ISSUER_CERT for a connection resumed with our PSK (it has no
      // certificate), and with rejectUnauthorized it dropped every one of them. A
      // full handshake is still refused unless OpenSSL verified the chain (authorized).
      rejectUnauthorized: false,
      // Not allowHalfOpen here: during the handshake a peer's EOF must end the
      // attempt at once (with allowHalfOpen Node ignores it until our deadline).
      // Half-close is switched on per socket once the handshake is done.
      // Node's own inactivity-based handshake timer stays a backstop behind ours (handshake.ts).
      handshakeTimeout: timeouts.handshakeTimeoutMs + 1000,
      // Resumption tickets (session-cache.ts): valid this long, and only under
      // the TLS generation that issued them: each has its own ticket keys
      // (tls/context.ts), so a new leaf invalidates every ticket.
      sessionTimeout: SESSION_LIFETIME_MS / 1000,
      // A PSK made with a client of ours on an earlier, fully verified handshake (psk.ts);
      // an identity we do not know means a full certificate handshake.
      pskCallback: (sock: TLSSocket, identity: string) => this.#onPsk(sock, identity),
      // A mesh-proxy outbound asks for a tunnel; anyone else keeps a connection per session.
      ALPNCallback: selectAlpn
    })
    server.on('connection', (raw: Socket) => this.#onTcp(raw))
    server.on('secureConnection', (sock: TLSSocket) => { this.#onSecure(sock) })
    server.on('tlsClientError', (err: Error, sock: TLSSocket) => this.#onTlsError(err, sock))
    const at = await this.bind(server, this.#opts.listen, '--listen')
    // A new TLS generation is used by new handshakes; live connections keep theirs.
    // Tunnels of the old one are closed gracefully: their streams finish, new streams need a new tunnel.
    this.#unsubscribe = this.#opts.tls.onChange(state => { server.setSecureContext(state.serverOptions); this.#tunnels.closeAll() })
    return at
  }

  #onTcp (raw: Socket): void {
    if (!this.admit(this.#handshakes.size, { remote: `${raw.remoteAddress}:${raw.remotePort}` })) {
      raw.destroy()
      return
    }
    if (this.#rate !== null && !this.#rate.allow(raw.remoteAddress ?? '')) {
      this.#metrics.connection('inbound', 'rate_limited')
      this.#opts.logger.warn({ listener: 'inbound', reason: 'rate_limited', remote: `${raw.remoteAddress}:${raw.remotePort}` }, 'conn rejected')
      raw.destroy()
      return
    }
    raw.setNoDelay(true)
    this.#handshakes.add(raw)
  }

  #onTlsError (err: Error, sock: TLSSocket): void {
    // When our own leaf has expired, every peer hangs up on us: say so, loudly.
    const ownExpired = this.#opts.tls.current.svid.chain[0]!.notAfter.getTime() < Date.now()
    const { reason, level } = tlsClientError(err, sock, ownExpired)
    this.#metrics.handshakeFailure(reason)
    this.#metrics.connection('inbound', 'tls_error')
    this.#opts.logger[level]({ listener: 'inbound', remote: remoteOf(sock), reason, err: err.message }, 'conn rejected')
  }

  #onPsk (sock: TLSSocket, identity: string): Buffer | null {
    const known = this.#opts.tls.current.psks.get(identity, Date.now())
    if (known === undefined) return null
    this.#pskOffered.set(sock, known)
    return known.psk
  }

  #onSecure (sock: TLSSocket): void {
    this.#handshakes.settle(sock)
    // Until the relay owns the socket, a peer reset must not become an uncaught 'error'.
    sock.on('error', ignoreError)
    sock.allowHalfOpen = true
    const state = this.#opts.tls.current
    // Plain field objects, not pino child loggers: a child per connection cost ~1 KB of
    // heap for as long as the connection lives (bench/RESULTS.md, memory).
    const log = this.#opts.logger
    const id = { conn: `in-${++nextConnId}`, listener: 'inbound' }
    const resumed = sock.isSessionReused()
    // Resumed with one of our PSKs: the peer is the one verified when it was made.
    const psk = resumed ? this.#pskOffered.get(sock) : undefined
    this.#pskOffered.delete(sock) // not kept for the connection's life
    let source: ServiceRef
    let peer: PeerIdentity
    try {
      ({ peer, source } = this.#peers.check(sock, state, psk?.peer))
    } catch (err) {
      const reason = err instanceof PeerIdentityError ? err.reason : 'bad_certificate'
      this.#metrics.handshakeFailure(reason)
      this.#metrics.connection('inbound', 'tls_error')
      log.warn({ ...id, remote: remoteOf(sock), reason, err: toError(err).message }, 'conn rejected')
      cut(sock) // a reset, on every Node: the caller's app sees one too
      return
    }
    const peerId = peer.id.uri
    if (!resumed) rememberPsk(sock, state, peer, this.#opts.sharePsk)
    if (sock.alpnProtocol === TUNNEL_ALPN) {
      this.#tunnels.adopt(sock, { id, peerId, identity: peer, source, resumed, psk: psk !== undefined, remote: remoteOf(sock), tls: sock })
      return
    }
    trackTlsEnd(sock)
    const ctx: Asked = { id, peerId, source, resumed, viaPsk: psk !== undefined }
    const ask = this.#opts.ask
    if (ask === undefined) {
      this.#decided(sock, this.#opts.authorize()(source), ctx)
      return
    }
    // --authorize-via-agent: the agent decides; the peer's bytes wait unread until it has.
    this.#asking.wait(sock, ask(source, peer), d => { this.#decided(sock, d, ctx) }, log, id)
  }

  /** The decision is in: deny (a reset, the app sees nothing) or serve. */
  #decided (sock: TLSSocket, decision: Decision, { id, peerId, source, resumed, viaPsk }: Asked): void {
    const log = this.#opts.logger
    if (!decision.allowed) {
      this.#metrics.connection('inbound', 'denied_intention')
      log.info({ ...id, peer: peerId, source: formatServiceRef(source), destination: this.#destination, intention: decidedBy(decision), precedence: decision.precedence, reason: decision.reason, resumed, psk: viaPsk }, 'conn denied')
      cut(sock) // a reset, on every Node: the caller's app sees one too
      return
    }
    // The access log: who, to what, by which rule, on every later line of this connection.
    const access = { ...id, peer: peerId, source: formatServiceRef(source), destination: this.#destination, intention: decidedBy(decision), app: this.#appAddr, resumed, psk: viaPsk }
    if (decision.audit === true) {
      this.#metrics.auditDenial()
      log.warn({ ...access, precedence: decision.precedence, reason: decision.reason, audit: true }, 'conn opened')
    } else if (log.isLevelEnabled('debug')) {
      log.debug({ ...access, precedence: decision.precedence, decision: decision.reason }, 'conn opened')
    }
    this.#serve(sock, access, source, peerId, sock)
  }

  /**
   * Connect to the app and relay; `sock` is the peer's TLS connection `tls`, or
   * a stream of its tunnel on `tls` (answered 200 once the app is connected,
   * 503 if it cannot be).
   */
  #serve (sock: TLSSocket | ServerHttp2Stream, access: Record<string, unknown>, source: ServiceRef, peerId: string, tls: TLSSocket): void {
    const log = this.#opts.logger
    let abort = (): void => { cut(sock) }
    let revokedBy: Decision | undefined
    const conn: InboundConn = {
      source,
      abort: () => abort(),
      revoke: (by: Decision) => { revokedBy = by; abort() }
    }
    // Callbacks, not an async function awaiting the relay: a suspended one (and
    // its promises) would be held for the connection's whole life.
    const finish = this.track(conn)
    dial(this.#opts.app, this.#opts.timeouts.connectTimeoutMs).then(app => {
      if (sock.destroyed) { cut(app); log.info({ ...access, reason: 'peer_gone' }, 'conn closed'); this.#metrics.connection('inbound', 'aborted'); finish(); return }
      // Once, before the relay owns the sockets: the app reads it before any byte of the peer's.
      if (this.#opts.proxyProtocol === 'v2') app.write(proxyHeaderFor(tls, peerId))
      if (isStream(sock)) sock.respond({ ':status': 200 })
      const r = relay(sock, app, this.#opts.timeouts, result => {
        logClosed(log, result, this.#metrics, 'inbound', 'peer', revokedBy === undefined ? access : { ...access, intention: decidedBy(revokedBy), decision: revokedBy.reason })
        finish()
      })
      abort = () => r.abort(revokedBy === undefined ? 'aborted' : 'revoked')
    }, (err: unknown) => {
      this.#metrics.upstreamConnectError('local_app')
      this.#metrics.connection('inbound', 'upstream_error')
      log.warn({ ...access, reason: 'app_connect_failed', err: toError(err).message }, 'conn closed')
      if (isStream(sock) && !sock.destroyed && !sock.headersSent) sock.respond({ ':status': 503 }, { endStream: true })
      else cut(sock)
      finish()
    }).catch(connBug(log, access, () => { abort(); finish() }))
  }

  /**
   * Enforce-on-change (beyond Consul, off by default): re-decide every live
   * connection with `authorize` and close those it now denies; the 'conn
   * closed' line names the intention that caused it. Returns how many closed.
   */
  reauthorize (authorize: Authorizer): number {
    let n = 0
    this.registry.forEach(c => {
      const d = authorize(c.source)
      if (!d.allowed) { n++; c.revoke(d) }
    })
    return n
  }

  protected override beforeDrain (): void {
    this.#unsubscribe?.()
    // Peers still in the handshake, or waiting for the agent's answer, were never admitted: nothing to drain.
    this.#handshakes.destroyAll()
    this.#asking.destroyAll()
    this.#tunnels.closeAll()
  }

  protected override async afterClose (): Promise<void> {
    await this.#tunnels.destroy()
  }
}
