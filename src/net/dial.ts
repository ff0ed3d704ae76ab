/**
 * TCP connect with connectTimeoutMs: the one place that timeout is enforced,
 * for the local app and for upstream instances alike.
 */
import { connect, type Socket } from 'node:net'
import { ConnectError } from '../core/errors.js'
import type { HostPort } from '../core/config/types.js'

/** Starts a connection to `to` (a plain one by default; the outbound passes tls.connect). */
export type Opener<S extends Socket> = (to: HostPort) => S

/** A plain TCP connection with half-close, as relayed to the local app. */
const plain: Opener<Socket> = to => connect({ host: to.host, port: to.port, allowHalfOpen: true, noDelay: true })

/**
 * Connect to `to` and resolve once the TCP connection is up; rejects with
 * ConnectError naming the address and the timeout. The outbound opens a
 * TLSSocket directly (`open`), so the TCP connection and TLS share one socket
 * object; its handshake starts on connect and has its own deadline (handshake.ts).
 */
export function dial<S extends Socket = Socket> (to: HostPort, connectTimeoutMs: number, open?: Opener<S>): Promise<S> {
  return new Promise((resolve, reject) => {
    const sock = (open ?? plain)(to) as S
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
