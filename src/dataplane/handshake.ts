/**
 * handshakeTimeoutMs, enforced here and only here, for inbound and outbound.
 * It is an absolute deadline from TCP accept/connect, not an inactivity timer:
 * a peer that dribbles one byte at a time cannot hold a socket open.
 */
import { Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { HandshakeTimeoutError } from '../core/errors.js'

/**
 * Destroy `socket` with HandshakeTimeoutError unless the returned cancel
 * function is called first (when the handshake completes). `peer` names the
 * other end in the error; a function is called only if the deadline passes.
 * `signal` ends the wait early (a listener's drain has ended): the socket is
 * destroyed with an error saying so.
 */
export function handshakeDeadline (socket: Socket, timeoutMs: number, peer: string | (() => string), signal?: AbortSignal): () => void {
  const timer = setTimeout(() => {
    socket.destroy(new HandshakeTimeoutError(timeoutMs, typeof peer === 'string' ? peer : peer()))
  }, timeoutMs)
  const onAbort = (): void => { socket.destroy(new Error('the listener is closing')) }
  const cancel = (): void => {
    clearTimeout(timer)
    signal?.removeEventListener('abort', onAbort)
  }
  socket.once('close', cancel)
  if (signal?.aborted === true) onAbort()
  else signal?.addEventListener('abort', onAbort, { once: true })
  return () => {
    cancel()
    socket.off('close', cancel)
  }
}

/** The server-side TLSSocket's own TCP socket: Node keeps it as `_parent` (since 0.11; not in @types/node). */
const tcpOf = (tls: TLSSocket): unknown => (tls as TLSSocket & { _parent?: unknown })._parent

/**
 * Accepted TCP connections still in their TLS handshake (the inbound side),
 * each under its deadline, until `settle` (handshake done) or close.
 *
 * Keyed by the TCP socket itself, not by remote address: `remoteAddress` is a
 * getpeername call per socket, and with one for the TCP and one for the TLS
 * socket it was ~65 us of CPU per connection under churn (bench/RESULTS.md).
 * A TLSSocket is matched to its TCP socket through Node's `_parent`; should a
 * Node lack it, through remote address and port, as before.
 */
export class PendingHandshakes {
  readonly #timeoutMs: number
  /** TCP socket → stop its deadline and forget it. */
  readonly #pending = new Map<Socket, () => void>()

  constructor (timeoutMs: number) {
    this.#timeoutMs = timeoutMs
  }

  get size (): number { return this.#pending.size }

  /** Start `raw`'s deadline; it is forgotten when `raw` closes. */
  add (raw: Socket): void {
    const cancel = handshakeDeadline(raw, this.#timeoutMs, () => `${raw.remoteAddress}:${raw.remotePort}`)
    const onClose = (): void => { this.#pending.delete(raw) }
    raw.once('close', onClose)
    this.#pending.set(raw, () => {
      cancel()
      raw.off('close', onClose) // not needed for the connection's life
      this.#pending.delete(raw)
    })
  }

  /** `tls` finished its handshake: stop the deadline of the TCP socket under it. */
  settle (tls: TLSSocket): void {
    const parent = tcpOf(tls)
    if (parent instanceof Socket) {
      const done = this.#pending.get(parent)
      if (done !== undefined) { done(); return }
    }
    for (const [raw, done] of this.#pending) {
      if (raw.remotePort === tls.remotePort && raw.remoteAddress === tls.remoteAddress) { done(); return }
    }
  }

  /** Destroy every socket still in its handshake (shutdown: they were never admitted). */
  destroyAll (): void {
    for (const raw of [...this.#pending.keys()]) raw.destroy()
  }
}
