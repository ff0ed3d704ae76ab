/**
 * TCP connect with connectTimeoutMs: the one place that timeout is enforced,
 * for the local app and for upstream instances alike.
 */
import { connect, type Socket } from 'node:net'
import { ConnectError } from '../errors.js'
import type { HostPort } from '../config/types.js'

/**
 * Connect to `to`; rejects with ConnectError naming the address and the
 * timeout. `allowHalfOpen` is false for sockets that carry a TLS handshake
 * first (a peer's EOF must end it), true for plain relayed sockets.
 */
export function dial (to: HostPort, connectTimeoutMs: number, allowHalfOpen = true): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: to.host, port: to.port, allowHalfOpen, noDelay: true })
    const timer = setTimeout(() => {
      sock.destroy()
      reject(new ConnectError(`connect to ${to.host}:${to.port} timed out after connectTimeoutMs=${connectTimeoutMs}`))
    }, connectTimeoutMs)
    const onError = (err: Error): void => {
      clearTimeout(timer)
      reject(new ConnectError(`connect to ${to.host}:${to.port} failed: ${err.message}`, { cause: err }))
    }
    sock.once('error', onError)
    sock.once('connect', () => {
      clearTimeout(timer)
      sock.off('error', onError)
      resolve(sock)
    })
  })
}
