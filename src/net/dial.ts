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
 * `signal` cancels a dial still in progress (a listener's drain has ended): the
 * socket is destroyed and the promise rejects at once, not after the timeout.
 */
export function dial (to: Endpoint, connectTimeoutMs: number, open?: undefined, signal?: AbortSignal): Promise<Socket>
export function dial<S extends Socket> (to: HostPort, connectTimeoutMs: number, open: Opener<S>, signal?: AbortSignal): Promise<S>
export function dial<S extends Socket> (to: Endpoint, connectTimeoutMs: number, open?: Opener<S>, signal?: AbortSignal): Promise<S | Socket> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) { reject(cancelled(to)); return }
    const sock = open === undefined || isUnix(to) ? plain(to) : open(to)
    const settle = (): void => {
      clearTimeout(timer)
      sock.off('error', onError)
      signal?.removeEventListener('abort', onAbort)
    }
    const timer = setTimeout(() => {
      settle()
      sock.on('error', () => {}) // given up on: a late error has nowhere to go
      sock.destroy()
      reject(new ConnectError(`connect to ${formatEndpoint(to)} timed out after connectTimeoutMs=${connectTimeoutMs}`))
    }, connectTimeoutMs)
    const onError = (err: Error): void => {
      settle()
      reject(new ConnectError(`connect to ${formatEndpoint(to)} failed: ${err.message}`, { cause: err }))
    }
    const onAbort = (): void => {
      settle()
      sock.on('error', () => {})
      sock.destroy()
      reject(cancelled(to))
    }
    sock.once('error', onError)
    signal?.addEventListener('abort', onAbort, { once: true })
    sock.once('connect', () => {
      settle()
      resolve(sock)
    })
  })
}

/** The error of a dial cancelled by its signal. */
function cancelled (to: Endpoint): ConnectError {
  return new ConnectError(`connect to ${formatEndpoint(to)} cancelled: the listener is closing`)
}
