/**
 * TCP connect with connectTimeoutMs: the one place that timeout is enforced,
 * for the local app and for upstream instances alike. The local app may also
 * be a UNIX socket (`--to unix:/run/app.sock`): the same deadline, the same errors.
 */
import { connect, type Socket } from 'node:net'
import { ConnectError } from '../core/errors.js'
import type { Endpoint, HostPort } from '../core/config/types.js'
import { formatEndpoint, isUnix } from '../core/config/endpoint.js'

/** Starts a connection to `to` (a plain one by default; the outbound passes tls.connect). */
export type Opener<S extends Socket> = (to: HostPort) => S

/** A plain connection with half-close, as relayed to the local app. */
function plain (to: Endpoint): Socket {
  return isUnix(to) ? connect({ path: to.path, allowHalfOpen: true }) : connect({ host: to.host, port: to.port, allowHalfOpen: true, noDelay: true })
}

/**
 * Connect to `to` and resolve once the connection is up; rejects with
 * ConnectError naming the address and the timeout. The outbound opens a
 * TLSSocket directly (`open`), so the TCP connection and TLS share one socket
 * object; its handshake starts on connect and has its own deadline (handshake.ts).
 */
export function dial (to: Endpoint, connectTimeoutMs: number): Promise<Socket>
export function dial<S extends Socket> (to: HostPort, connectTimeoutMs: number, open: Opener<S>): Promise<S>
export function dial<S extends Socket> (to: Endpoint, connectTimeoutMs: number, open?: Opener<S>): Promise<S | Socket> {
  return new Promise((resolve, reject) => {
    const sock = open === undefined || isUnix(to) ? plain(to) : open(to)
    const timer = setTimeout(() => {
      sock.destroy()
      reject(new ConnectError(`connect to ${formatEndpoint(to)} timed out after connectTimeoutMs=${connectTimeoutMs}`))
    }, connectTimeoutMs)
    const onError = (err: Error): void => {
      clearTimeout(timer)
      reject(new ConnectError(`connect to ${formatEndpoint(to)} failed: ${err.message}`, { cause: err }))
    }
    sock.once('error', onError)
    sock.once('connect', () => {
      clearTimeout(timer)
      sock.off('error', onError)
      resolve(sock)
    })
  })
}
