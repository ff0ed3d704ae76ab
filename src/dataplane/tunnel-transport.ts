/**
 * What an outbound tunnel's HTTP/2 session runs on: its TLS socket, behind a
 * thin Duplex that takes the session's writes at once (tunnel-pool.ts).
 *
 * Why not the TLS socket itself: node:http2 stops reading its socket while one
 * of its own writes is in progress (Http2Session::MaybeStopReading), and a
 * write to a TLS socket is in progress until the kernel has taken every byte.
 * Two sessions carrying bulk both ways at once fill each other's socket
 * buffers; then each waits for its write before it reads again, and neither
 * reads: a deadlock (16 streams of 4 MiB each way were enough; test
 * tunnels.test.ts). Behind this Duplex a session's write completes as soon as
 * the TLS socket has queued it, so that session always reads on.
 *
 * One end suffices: the deadlock needs both ends waiting on a write, and this
 * end never waits on its peer. The outbound has it, so the caller pays for it
 * and the inbound, shared by every caller, keeps node:http2 on its TLS socket.
 * The cost: this end's tunnel bytes cross into JS and back (copies in C++,
 * none in JS); bench/RESULTS.md has the figures.
 *
 * Bounded all the same: HTTP/2 flow control never sends DATA the peer has not
 * granted, so what the queue can hold is the peer's tunnel window
 * (TUNNEL_SESSION_WINDOW) and a few control frames. TRANSPORT_QUEUE_LIMIT is a
 * backstop beyond it: past it, writes wait for the socket's 'drain' again.
 */
import type { Http2Session } from 'node:http2'
import { Duplex } from 'node:stream'
import type { TLSSocket } from 'node:tls'
import { TUNNEL_SESSION_WINDOW } from './tunnel-limits.js'

/** Bytes queued on the TLS socket beyond which a session's writes wait for it to drain (never reached while flow control holds). */
export const TRANSPORT_QUEUE_LIMIT = 2 * TUNNEL_SESSION_WINDOW

/** The Duplex a tunnel's session reads and writes: its TLS socket, its writes taken at once. */
export class TunnelTransport extends Duplex {
  readonly #tls: TLSSocket

  constructor (tls: TLSSocket) {
    super({ allowHalfOpen: true })
    this.#tls = tls
    tls.on('data', (chunk: Buffer) => { if (!this.push(chunk)) tls.pause() })
    tls.on('end', () => { this.push(null) })
    tls.on('error', err => { this.destroy(err) })
    tls.on('close', () => { this.destroy() })
    // Until the session reads (_read), the socket's bytes wait in the kernel.
    tls.pause()
  }

  override _read (): void {
    this.#tls.resume()
  }

  override _write (chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.#afterWrite(this.#tls.write(chunk), cb)
  }

  override _writev (chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    const tls = this.#tls
    let ok = true
    tls.cork()
    for (const c of chunks) ok = tls.write(c.chunk)
    tls.uncork()
    this.#afterWrite(ok, cb)
  }

  #afterWrite (ok: boolean, cb: (err?: Error | null) => void): void {
    if (ok || this.#tls.writableLength < TRANSPORT_QUEUE_LIMIT) { cb(); return }
    this.#tls.once('drain', () => cb())
  }

  override _final (cb: (err?: Error | null) => void): void {
    this.#tls.end()
    cb()
  }

  override _destroy (err: Error | null, cb: (err?: Error | null) => void): void {
    this.#tls.destroy()
    cb(err)
  }
}

/**
 * A tunnel's connection that ends (a FIN, with or without close_notify) ends
 * the tunnel: its live streams are destroyed with an error, so each app
 * connection on it is reset. Without this, a peer killed -9 whose kernel sends
 * a bare FIN (the socket is half-open: allowHalfOpen) left every stream
 * waiting for frames that never come. A tunnel closed in order has sent
 * GOAWAY and finished its streams first: nothing is left to destroy.
 */
export function endsWithItsConnection (session: Http2Session, tls: TLSSocket): void {
  // Half-open (allowHalfOpen), the socket would stay, and the session with it, never 'close'd.
  tls.once('end', () => { destroyTunnel(session, tls, new Error('the tunnel\'s connection ended: its peer is gone')) })
}

/**
 * Tear a tunnel down now: its session (every live stream reset) and the TLS
 * socket under it. The socket too: a session close()d before (GOAWAY sent, a
 * retired tunnel) only end()s its socket and waits for the peer's FIN, which
 * a stopped or dead peer never sends. The session's 'close' follows.
 */
export function destroyTunnel (session: Http2Session, tls: TLSSocket, err?: Error): void {
  if (!session.destroyed) session.destroy(err)
  tls.destroy()
}
