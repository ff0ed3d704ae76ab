/**
 * The byte relay: two duplex sockets, both directions, pure wiring.
 *
 * - Zero-copy: each chunk Buffer read from one socket is handed to the other's
 *   write as is; nothing is copied or concatenated in JS. Per chunk: one
 *   write and one integer store (idle bookkeeping), nothing else.
 * - Backpressure: when the destination's write buffer is full (write returns
 *   false) the source is paused, and resumed on the destination's 'drain'.
 *   (What `pipe()` does, without its nine closures and two once-wrappers per
 *   direction: memory per held connection, bench/RESULTS.md.)
 * - Half-close: 'end' from A ends B's write side only (`B.end()`, a FIN or a
 *   TLS close_notify); the other direction keeps flowing until it ends too,
 *   or until closeTimeoutMs after the first half-close (ghostunnel copyData;
 *   RFC 8446 §6.1). Both sockets need allowHalfOpen: true.
 * - idleTimeoutMs (through the process-wide sweep, idle-sweep.ts),
 *   closeTimeoutMs and maxConnLifetimeMs are enforced here.
 * - Errors on either side destroy both; the first one is reported. It never
 *   throws and never logs: the caller logs the result once.
 * - Failure semantics (DESIGN.md): only a clean end on one side becomes a FIN
 *   on the other. A TLS peer that vanished without close_notify (tls/end.ts)
 *   or reset, an app that reset, a timeout, an abort: the plaintext side is
 *   reset (RST), never closed as if the stream had ended, and the TLS side is
 *   destroyed without close_notify, so the sidecar beyond resets its app too.
 * - The mesh side may also be a stream of a pooled tunnel (an HTTP/2 CONNECT
 *   stream, tunnel-*.ts): END_STREAM is its FIN, RST_STREAM its reset (any
 *   code but NO_ERROR, received; cut() says which it sends), and its bytes are
 *   counted here (a stream has no bytesRead): one integer add per chunk on
 *   that side only.
 */
import type { Socket } from 'node:net'
import { constants as h2, type Http2Stream } from 'node:http2'
import type { Duplex } from 'node:stream'
import { TLSSocket } from 'node:tls'
import { isRoutineCloseError } from '../core/errors.js'
import { idleSweep, type IdleEntry, type IdleSweep } from './idle-sweep.js'
import { endedCleanly } from '../tls/end.js'

/** Per-connection limits the relay enforces. 0 disables idle and lifetime. */
export interface RelayOptions {
  readonly idleTimeoutMs: number
  readonly closeTimeoutMs: number
  readonly maxConnLifetimeMs: number
}

/** Why the relay ended. */
export type CloseReason = 'eof' | 'idle_timeout' | 'close_timeout' | 'max_lifetime' | 'error' | 'aborted' | 'revoked' |
  /** The TLS peer reset, or its TCP connection closed without close_notify. */
  'peer_aborted' |
  /** The plaintext side (the app) reset. */
  'app_aborted'

/** What happened, for the single 'conn closed' log line and metrics. */
export interface RelayResult {
  /** Bytes read from A (and written to B). */
  readonly bytesAtoB: number
  /** Bytes read from B (and written to A). */
  readonly bytesBtoA: number
  readonly durationMs: number
  readonly reason: CloseReason
  readonly error?: Error
}

/** A running relay. */
export interface Relay {
  /** Settles with the result (made on first use: a held connection that reports through onDone keeps no promise). */
  readonly done: Promise<RelayResult>
  /** Tear both sockets down now (shutdown, enforce-on-change). Idempotent. */
  abort (reason?: CloseReason): void
}

/**
 * End `s` for a failed relay or a refusal: a plaintext TCP socket is reset (its
 * app must not read the cut as an orderly end); a TLS socket is destroyed
 * without close_notify, and when it sits on a TCP socket of its own (every
 * socket our inbound accepted: `_parent`), that one is closed with a reset, so
 * that the sidecar beyond sees a reset, not a bare close it would have to tell
 * from close_notify (tls/end.ts), and so does any peer that does not look.
 * (An outbound TLS socket has no such parent: its peer relies on close_notify
 * tracking.)
 *
 * How: net.Socket's own reset flag (`resetAndClosing`, what resetAndDestroy()
 * sets), set on the parent before the TLS socket is destroyed, so that the TCP
 * handle is reset when Node closes it, after the TLS layer let go of it.
 * Calling resetAndDestroy() on the parent itself closes the handle under the
 * TLS layer's pending writes and crashes the process (seen on Node 20).
 */
export function cut (s: Socket | Http2Stream): void {
  if (s.destroyed) return
  if (isStream(s)) {
    // RST_STREAM, never END_STREAM: close(code) on a stream still writable
    // ends it first, and node:http2 sends that END_STREAM before the
    // RST_STREAM (SubmitRstStream flushes pending data), so the peer would
    // see a clean end. destroy(err) sends RST_STREAM(INTERNAL_ERROR) alone.
    // Once our side has ended, close() sends only RST_STREAM(CONNECT_ERROR)
    // (RFC 9113 §8.5). Then destroy() either way: a stream close()d after its
    // peer's reset would wait for its writable side, never 'close'.
    if (!s.writableEnded) { s.destroy(CUT); return }
    if (!s.closed) s.close(h2.NGHTTP2_CONNECT_ERROR)
    s.destroy()
    return
  }
  // A socket whose FIN is still being sent (shutdown pending) cannot be reset
  // (uv_tcp_close_reset: EINVAL), and Node then leaves it open for good.
  if (s.writableEnded && !s.writableFinished) { s.destroy(); return }
  if (s instanceof TLSSocket) {
    const raw = (s as TLSSocket & { _parent?: (Socket & { resetAndClosing?: boolean }) | null })._parent
    if (raw != null && !raw.destroyed && typeof raw.resetAndDestroy === 'function') raw.resetAndClosing = true
    s.destroy()
    return
  }
  try { s.resetAndDestroy() } catch { s.destroy() } // not a TCP handle (a pipe in tests): as close as it gets
}

/** An HTTP/2 stream, not a socket (streams have an RST code, sockets none). */
export function isStream (s: Duplex): s is Http2Stream {
  return 'rstCode' in s
}

/** What cut() destroys a stream with: our own doing, never reported as the peer's error. */
const CUT = new Error('cut by this sidecar')

/**
 * Whether a stream's 'end' was its peer's END_STREAM. node:http2 ends a
 * stream's readable side on its peer's RST_STREAM too (onStreamClose pushes
 * the end, and only then destroys it with the error), so an 'end' with an RST
 * code other than NO_ERROR is the peer aborting: its app must be reset, not
 * sent a FIN.
 */
export function streamEndedCleanly (s: Http2Stream): boolean {
  return (s.rstCode ?? h2.NGHTTP2_NO_ERROR) === h2.NGHTTP2_NO_ERROR
}

/** One side of a relay: a TCP or TLS socket, or a tunnel's stream (always the mesh side). */
export type RelaySide = Socket | Http2Stream

/** Start relaying between `a` and `b`; `onDone` gets the result once both sockets are closed. */
export function relay (a: RelaySide, b: RelaySide, opts: RelayOptions, onDone?: (r: RelayResult) => void): Relay {
  return new Run(a, b, opts, onDone).start()
}

/** Start `fn` after `ms`, unref'd (never what keeps the process alive). */
function unrefTimer (ms: number, fn: () => void): NodeJS.Timeout {
  const t = setTimeout(fn, ms)
  t.unref()
  return t
}

/**
 * Chunks from `from` to `to` as they come, with backpressure. Per chunk: the
 * idle stamp and one write, nothing else.
 */
function forward (from: RelaySide, to: RelaySide, idle: IdleEntry | undefined, sweep: IdleSweep | undefined, count: ((n: number) => void) | undefined): void {
  if (count === undefined) {
    from.on('data', (chunk: Buffer) => {
      if (idle !== undefined) idle.last = sweep!.tick
      if (!to.write(chunk)) from.pause()
    })
  } else {
    from.on('data', (chunk: Buffer) => {
      count(chunk.length)
      if (idle !== undefined) idle.last = sweep!.tick
      if (!to.write(chunk)) from.pause()
    })
  }
  to.on('drain', () => { from.resume() })
  // A socket accepted with pauseOnConnect is not flowing: start it, as pipe() does.
  if (to.writableNeedDrain) from.pause()
  else from.resume()
}

/** One relay's state; listeners are plain closures over it ('end' and 'close' fire at most once: no once() wrappers). */
class Run {
  readonly #a: RelaySide
  readonly #b: RelaySide
  /** Bytes read from a side that is a stream (a socket counts its own). */
  #streamBytesA = 0
  #streamBytesB = 0
  readonly #opts: RelayOptions
  readonly #onDone: ((r: RelayResult) => void) | undefined
  readonly #started = performance.now()
  readonly #sweep: IdleSweep | undefined
  readonly #idle: IdleEntry | undefined
  #reason: CloseReason | undefined
  #firstError: Error | undefined
  #ends = 0
  #closes = 0
  #closeTimer: NodeJS.Timeout | undefined
  #lifeTimer: NodeJS.Timeout | undefined
  #result: RelayResult | undefined
  #done: Promise<RelayResult> | undefined
  #resolveDone: ((r: RelayResult) => void) | undefined

  constructor (a: RelaySide, b: RelaySide, opts: RelayOptions, onDone: ((r: RelayResult) => void) | undefined) {
    this.#a = a
    this.#b = b
    this.#opts = opts
    this.#onDone = onDone
    this.#sweep = opts.idleTimeoutMs > 0 ? idleSweep(opts.idleTimeoutMs) : undefined
    this.#idle = this.#sweep?.add(() => this.#teardown('idle_timeout'))
  }

  start (): Relay {
    const a = this.#a
    const b = this.#b
    if (!a.readableEnded) a.on('end', () => this.#endOf(a, b))
    if (!b.readableEnded) b.on('end', () => this.#endOf(b, a))
    const onClose = (): void => this.#onClose()
    for (const s of [a, b]) {
      // A stream's error is the far side's RST_STREAM or its tunnel's end: the peer aborted.
      s.on('error', (err: Error) => err === CUT ? undefined : this.#teardown(isStream(s) ? 'peer_aborted' : !isRoutineCloseError(err) ? 'error' : s instanceof TLSSocket ? 'peer_aborted' : 'app_aborted', err))
      // A stream closed before its END_STREAM (RST_STREAM NO_ERROR, its session gone): aborted too.
      if (isStream(s)) s.on('close', () => { if (!s.readableEnded) this.#reason ??= 'peer_aborted'; onClose() })
      else s.on('close', onClose)
    }
    forward(a, b, this.#idle, this.#sweep, isStream(a) ? n => { this.#streamBytesA += n } : undefined)
    forward(b, a, this.#idle, this.#sweep, isStream(b) ? n => { this.#streamBytesB += n } : undefined)
    if (this.#opts.maxConnLifetimeMs > 0) this.#lifeTimer = unrefTimer(this.#opts.maxConnLifetimeMs, () => this.#teardown('max_lifetime'))
    // Events that happened before the relay started will not be emitted again:
    // a peer that sent its EOF during the TLS handshake (Node reads ahead to
    // drive the handshake), or a socket that is already closed.
    if (a.readableEnded) this.#endOf(a, b)
    if (b.readableEnded) this.#endOf(b, a)
    for (const s of [a, b]) if (s.closed) this.#onClose()
    const run = this
    return {
      get done () { return run.#donePromise() },
      abort: (why: CloseReason = 'aborted') => { if (this.#closes < 2) this.#teardown(why) }
    }
  }

  #donePromise (): Promise<RelayResult> {
    const result = this.#result
    this.#done ??= result !== undefined ? Promise.resolve(result) : new Promise<RelayResult>(resolve => { this.#resolveDone = resolve })
    return this.#done
  }

  #teardown (why: CloseReason, err?: Error): void {
    this.#reason ??= why
    if (err !== undefined) this.#firstError ??= err
    cut(this.#a)
    cut(this.#b)
  }

  #endOf (from: RelaySide, to: RelaySide): void {
    if (isStream(from) ? !streamEndedCleanly(from) : !endedCleanly(from)) { this.#teardown('peer_aborted'); return }
    to.end()
    this.#ends++
    if (this.#ends === 1 && this.#opts.closeTimeoutMs > 0) this.#closeTimer = unrefTimer(this.#opts.closeTimeoutMs, () => this.#teardown('close_timeout'))
  }

  #onClose (): void {
    this.#closes++
    // One side gone before both directions finished (reset, error): the other
    // cannot complete, so drop it. After two clean EOFs the other side is
    // finishing its last write on its own and must not be cut short.
    if (this.#ends < 2) this.#teardown(this.#reason ?? 'aborted')
    if (this.#closes < 2) return
    clearTimeout(this.#closeTimer)
    clearTimeout(this.#lifeTimer)
    if (this.#idle !== undefined) this.#sweep!.delete(this.#idle)
    const result: RelayResult = {
      bytesAtoB: isStream(this.#a) ? this.#streamBytesA : this.#a.bytesRead,
      bytesBtoA: isStream(this.#b) ? this.#streamBytesB : this.#b.bytesRead,
      durationMs: performance.now() - this.#started,
      reason: this.#reason ?? 'eof',
      ...(this.#firstError === undefined ? {} : { error: this.#firstError })
    }
    this.#result = result
    this.#resolveDone?.(result)
    this.#onDone?.(result)
  }
}
