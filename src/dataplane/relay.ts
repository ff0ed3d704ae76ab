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
 *   on the other. A TLS peer that vanished without close_notify (tls-end.ts)
 *   or reset, an app that reset, a timeout, an abort: the plaintext side is
 *   reset (RST), never closed as if the stream had ended, and the TLS side is
 *   destroyed without close_notify, so the sidecar beyond resets its app too.
 */
import type { Socket } from 'node:net'
import { TLSSocket } from 'node:tls'
import { isRoutineCloseError } from '../core/errors.js'
import { idleSweep } from './idle-sweep.js'
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
 * End `s` for a failed relay: a plaintext TCP socket is reset (its app must not
 * read the cut as an orderly end); a TLS socket is destroyed without close_notify.
 */
export function cut (s: Socket): void {
  if (s.destroyed) return
  if (s instanceof TLSSocket) { s.destroy(); return }
  try { s.resetAndDestroy() } catch { s.destroy() } // not a TCP handle (a pipe in tests): as close as it gets
}

/** Start relaying between `a` and `b`; `onDone` gets the result once both sockets are closed. */
export function relay (a: Socket, b: Socket, opts: RelayOptions, onDone?: (r: RelayResult) => void): Relay {
  const started = performance.now()
  let reason: CloseReason | undefined
  let firstError: Error | undefined
  let ends = 0
  let closes = 0
  let closeTimer: NodeJS.Timeout | undefined
  let lifeTimer: NodeJS.Timeout | undefined
  let result: RelayResult | undefined
  let done: Promise<RelayResult> | undefined
  let resolveDone: ((r: RelayResult) => void) | undefined

  const teardown = (why: CloseReason, err?: Error): void => {
    reason ??= why
    if (err !== undefined) firstError ??= err
    cut(a)
    cut(b)
  }
  const sweep = opts.idleTimeoutMs > 0 ? idleSweep(opts.idleTimeoutMs) : undefined
  const idle = sweep?.add(() => teardown('idle_timeout'))

  const endOf = (from: Socket, to: Socket) => (): void => {
    if (!endedCleanly(from)) { teardown('peer_aborted'); return }
    to.end()
    ends++
    if (ends === 1 && opts.closeTimeoutMs > 0) {
      closeTimer = setTimeout(() => teardown('close_timeout'), opts.closeTimeoutMs)
      closeTimer.unref()
    }
  }
  const forward = (from: Socket, to: Socket): void => {
    from.on('data', (chunk: Buffer) => {
      if (idle !== undefined) idle.last = sweep!.tick
      if (!to.write(chunk)) from.pause()
    })
    to.on('drain', () => { from.resume() })
    // A socket accepted with pauseOnConnect is not flowing: start it, as pipe() does.
    if (to.writableNeedDrain) from.pause()
    else from.resume()
  }
  const onError = (s: Socket) => (err: Error): void => teardown(!isRoutineCloseError(err) ? 'error' : s instanceof TLSSocket ? 'peer_aborted' : 'app_aborted', err)
  const onClose = (): void => {
    closes++
    // One side gone before both directions finished (reset, error): the other
    // cannot complete, so drop it. After two clean EOFs the other side is
    // finishing its last write on its own and must not be cut short.
    if (ends < 2) teardown(reason ?? 'aborted')
    if (closes < 2) return
    clearTimeout(closeTimer)
    clearTimeout(lifeTimer)
    if (idle !== undefined) sweep!.delete(idle)
    result = {
      bytesAtoB: a.bytesRead,
      bytesBtoA: b.bytesRead,
      durationMs: performance.now() - started,
      reason: reason ?? 'eof',
      ...(firstError === undefined ? {} : { error: firstError })
    }
    resolveDone?.(result)
    onDone?.(result)
  }

  // 'end' and 'close' fire at most once: plain listeners, no once() wrappers.
  if (!a.readableEnded) a.on('end', endOf(a, b))
  if (!b.readableEnded) b.on('end', endOf(b, a))
  for (const s of [a, b]) {
    s.on('error', onError(s))
    s.on('close', onClose)
  }
  forward(a, b)
  forward(b, a)
  if (opts.maxConnLifetimeMs > 0) {
    lifeTimer = setTimeout(() => teardown('max_lifetime'), opts.maxConnLifetimeMs)
    lifeTimer.unref()
  }
  // Events that happened before the relay started will not be emitted again:
  // a peer that sent its EOF during the TLS handshake (Node reads ahead to
  // drive the handshake), or a socket that is already closed.
  if (a.readableEnded) endOf(a, b)()
  if (b.readableEnded) endOf(b, a)()
  for (const s of [a, b]) if (s.closed) onClose()

  return {
    get done () {
      done ??= result !== undefined ? Promise.resolve(result) : new Promise<RelayResult>(resolve => { resolveDone = resolve })
      return done
    },
    abort: (why: CloseReason = 'aborted') => { if (closes < 2) teardown(why) }
  }
}
