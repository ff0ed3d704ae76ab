/**
 * The inbound end of pooled tunnels: a verified mTLS connection that
 * negotiated TUNNEL_ALPN (tls/alpn.ts) becomes one HTTP/2 session, and each
 * CONNECT stream on it is one connection to the app, as a plain mTLS
 * connection would be: the peer is the tunnel's (verified once, at the
 * handshake), the intention is asked per stream, and the app sees a stream
 * only after an allow. HBONE's shape (Istio ambient): CONNECT, `:authority`
 * naming the destination, the stream carrying the bytes; the answer is 200
 * once the app is connected, 403 on a denial, 503 when the app cannot be
 * reached. Where it differs from HBONE: our own ALPN token (not `h2`), and
 * `:authority` is informational (an inbound serves its one app, never an
 * address the peer names).
 *
 * A session is closed gracefully (GOAWAY: live streams finish, no new ones)
 * when our TLS generation changes and when the listener drains; destroyed
 * with the listener. Two log lines per tunnel (`tunnel opened`, `tunnel
 * closed`), two per stream as for any connection.
 */
import http2, { type Http2Session, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2'
import type { TLSSocket } from 'node:tls'
import type { Logger } from 'pino'
import { decidedBy, formatServiceRef, type Decision, type ServiceRef } from '../core/intentions/table.js'
import type { PeerIdentity } from '../tls/peer.js'
import type { Metrics } from '../metrics/metrics.js'
import { destroyTunnel, endsWithItsConnection } from './tunnel-transport.js'
import { TUNNEL_SESSION_MEMORY_MB, TUNNEL_SETTINGS, TUNNEL_SESSION_WINDOW } from './tunnel-limits.js'

/** Who a tunnel is from, verified at its handshake. */
export interface TunnelPeer {
  readonly id: { readonly conn: string, readonly listener: string }
  readonly peerId: string
  /** The verified peer (for an agent that decides: --authorize-via-agent). */
  readonly identity: PeerIdentity
  readonly source: ServiceRef
  readonly resumed: boolean
  readonly psk: boolean
  readonly remote: string | undefined
  /** The tunnel's own TLS socket (its addresses and TLS facts, for a PROXY header). */
  readonly tls: TLSSocket
}

/** What the inbound listener lends the acceptor. */
export interface TunnelHost {
  readonly logger: Logger
  readonly metrics: Metrics
  readonly destination: string
  /** The decision for one stream of `peer`: the intention table's, or the agent's (never rejects: a failure is a deny). */
  decide (peer: TunnelPeer): Decision | Promise<Decision>
  /** Connect to the app and relay an allowed stream (answers 200 or 503 itself). */
  serve (stream: ServerHttp2Stream, access: Record<string, unknown>, peer: TunnelPeer): void
}

/** Turns verified TLS connections into tunnel sessions and their streams into connections. */
export class TunnelAcceptor {
  readonly #host: TunnelHost
  readonly #server = http2.createServer({ settings: TUNNEL_SETTINGS, maxSessionMemory: TUNNEL_SESSION_MEMORY_MB })
  /** Live tunnels and the TLS socket each runs on. */
  readonly #sessions = new Map<Http2Session, TLSSocket>()
  #adopting: TunnelPeer | undefined
  #streams = 0

  constructor (host: TunnelHost) {
    this.#host = host
    this.#server.on('session', session => this.#onSession(session))
  }

  /** Live tunnels. */
  get size (): number { return this.#sessions.size }

  /** Serve `sock` (its peer verified, TUNNEL_ALPN negotiated) as a tunnel. */
  adopt (sock: TLSSocket, peer: TunnelPeer): void {
    // The http2 server's 'connection' handler makes the session and emits 'session' synchronously.
    this.#adopting = peer
    try {
      this.#server.emit('connection', sock)
    } finally {
      this.#adopting = undefined
    }
  }

  #onSession (session: Http2Session): void {
    const peer = this.#adopting
    if (peer === undefined) { session.destroy(); return }
    const { logger, metrics } = this.#host
    const opened = performance.now()
    endsWithItsConnection(session, peer.tls)
    const untrack = metrics.trackTunnel('inbound')
    this.#sessions.set(session, peer.tls)
    let streams = 0
    const fields = { ...peer.id, tunnel: true, peer: peer.peerId, source: formatServiceRef(peer.source), remote: peer.remote, resumed: peer.resumed, psk: peer.psk }
    logger.info(fields, 'tunnel opened')
    session.setLocalWindowSize(TUNNEL_SESSION_WINDOW)
    session.on('error', () => {}) // its streams report; the close line says how it ended
    session.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => { streams++; this.#onStream(stream, headers, peer) })
    session.once('close', () => {
      this.#sessions.delete(session)
      untrack()
      logger.info({ ...fields, streams, durationMs: Math.round(performance.now() - opened) }, 'tunnel closed')
    })
  }

  #onStream (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, peer: TunnelPeer): void {
    const { logger, metrics } = this.#host
    stream.on('error', () => {}) // the relay reports, or the stream was refused below
    const id = { conn: `${peer.id.conn}.${++this.#streams}`, listener: 'inbound', tunnel: true }
    if (headers[':method'] !== 'CONNECT') {
      metrics.connection('inbound', 'bad_request')
      logger.warn({ ...id, peer: peer.peerId, method: headers[':method'], reason: 'not_connect' }, 'conn rejected')
      stream.respond({ ':status': 405 }, { endStream: true })
      return
    }
    const decision = this.#host.decide(peer)
    if (decision instanceof Promise) {
      decision.then(d => { if (!stream.destroyed) this.#decided(stream, d, id, peer) }, () => { if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_CONNECT_ERROR) })
      return
    }
    this.#decided(stream, decision, id, peer)
  }

  #decided (stream: ServerHttp2Stream, decision: Decision, id: Record<string, unknown>, peer: TunnelPeer): void {
    const { logger, metrics } = this.#host
    const who = { ...id, peer: peer.peerId, source: formatServiceRef(peer.source), destination: this.#host.destination, intention: decidedBy(decision), resumed: peer.resumed, psk: peer.psk }
    if (!decision.allowed) {
      metrics.connection('inbound', 'denied_intention')
      logger.info({ ...who, precedence: decision.precedence, reason: decision.reason }, 'conn denied')
      stream.respond({ ':status': 403 }, { endStream: true })
      return
    }
    if (decision.audit === true) {
      metrics.auditDenial()
      logger.warn({ ...who, precedence: decision.precedence, reason: decision.reason, audit: true }, 'conn opened')
    } else if (logger.isLevelEnabled('debug')) {
      logger.debug({ ...who, precedence: decision.precedence, decision: decision.reason }, 'conn opened')
    }
    this.#host.serve(stream, who, peer)
  }

  /** GOAWAY on every tunnel: live streams finish, new ones go to a new tunnel (rotation, drain). */
  closeAll (): void {
    for (const s of this.#sessions.keys()) if (!s.closed) s.close()
  }

  /** Tear every tunnel down now; resolves once each is closed (its gauge and log line done). Idempotent. */
  async destroy (): Promise<void> {
    await Promise.all([...this.#sessions].map(([s, tls]) => new Promise<void>(resolve => {
      s.once('close', () => resolve())
      destroyTunnel(s, tls)
    })))
  }
}
