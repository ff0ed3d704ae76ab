/**
 * handshakeTimeoutMs, enforced here and only here, for inbound and outbound.
 * It is an absolute deadline from TCP accept/connect, not an inactivity timer:
 * a peer that dribbles one byte at a time cannot hold a socket open.
 */
import type { Socket } from 'node:net'
import { HandshakeTimeoutError } from '../errors.js'

/**
 * Destroy `socket` with HandshakeTimeoutError unless the returned cancel
 * function is called first (when the handshake completes).
 */
export function handshakeDeadline (socket: Socket, timeoutMs: number, peer: string): () => void {
  const timer = setTimeout(() => {
    socket.destroy(new HandshakeTimeoutError(timeoutMs, peer))
  }, timeoutMs)
  const cancel = (): void => clearTimeout(timer)
  socket.once('close', cancel)
  return () => {
    cancel()
    socket.off('close', cancel)
  }
}
