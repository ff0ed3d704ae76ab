/** Binding a listener, with errors that name the flag and the fix. */
import type { Server } from 'node:net'
import { ListenError, errorCode } from '../core/errors.js'
import type { HostPort } from '../core/config/types.js'

/**
 * The admin port is the one a second sidecar on the same machine collides on
 * by default (19000, as Consul's): name the two ways out.
 */
function adminHint (hp: HostPort): string {
  return ` (e.g. --admin ${hp.host}:${hp.port === 65535 ? hp.port - 1 : hp.port + 1}, or --admin off)`
}

/** server.listen() as a promise that rejects with a ListenError. */
export function listen (server: Server, hp: HostPort, flag: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      const code = errorCode(err)
      const why = code === 'EADDRINUSE'
        ? `${hp.host}:${hp.port} is already in use; stop what is listening there or choose another port${flag === '--admin' ? adminHint(hp) : ''}`
        : code === 'EADDRNOTAVAIL'
          ? `${hp.host} is not an address of this machine`
          : code === 'EACCES' ? `permission denied for port ${hp.port}; use a port above 1023` : err.message
      reject(new ListenError(flag, why, err))
    }
    server.once('error', onError)
    server.once('listening', () => {
      server.off('error', onError)
      resolve()
    })
    server.listen({ host: hp.host, port: hp.port })
  })
}
