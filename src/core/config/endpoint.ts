/**
 * Endpoints that are TCP addresses or UNIX sockets: `--to unix:/run/app.sock`,
 * `--upstream db:unix:/run/db.sock`. Parsing with errors that name the flag,
 * the guard the data plane branches on, and the one text form logs use. Pure.
 */
import { ConfigError } from '../errors.js'
import type { Endpoint, HostPort, UnixSocket } from './types.js'

/**
 * sun_path is 108 bytes on Linux, one of them the terminating NUL; a longer
 * path fails at bind time with a message that does not say why.
 */
export const MAX_UNIX_PATH_BYTES = 107

/** The default mode of the sockets we create: the owner and its group may connect, others not. */
export const DEFAULT_UNIX_SOCKET_MODE = 0o660

/** A UNIX socket, not a TCP address. */
export function isUnix (e: Endpoint): e is UnixSocket {
  return 'path' in e
}

/** `unix:/run/app.sock` or `127.0.0.1:8080`: the form the flags take, for logs and messages. */
export function formatEndpoint (e: Endpoint): string {
  return isUnix(e) ? `unix:${e.path}` : `${e.host}:${e.port}`
}

/** Does `s` name a UNIX socket (`unix:` prefix)? */
export function isUnixSpec (s: string): boolean {
  return s.startsWith('unix:')
}

/** `unix:/run/app.sock` (also `unix:///run/app.sock`, as Consul writes addresses) to its path. */
export function parseUnixSocket (s: string, field: string): UnixSocket {
  const rest = s.slice('unix:'.length)
  const path = rest.startsWith('//') ? rest.slice(2) : rest
  if (path === '') throw new ConfigError(field, `${JSON.stringify(s)} names no socket file (e.g. unix:/run/app.sock)`)
  if (rest.startsWith('//') && !path.startsWith('/')) throw new ConfigError(field, `${JSON.stringify(s)}: after unix:// the path must be absolute (unix:///run/app.sock), or write unix:relative/path`)
  if (path.includes('\0')) throw new ConfigError(field, `${JSON.stringify(s)}: a socket path cannot contain a NUL byte`)
  const bytes = Buffer.byteLength(path)
  if (bytes > MAX_UNIX_PATH_BYTES) throw new ConfigError(field, `socket path ${path} is ${bytes} bytes; a UNIX socket path is at most ${MAX_UNIX_PATH_BYTES} bytes on Linux: choose a shorter path`)
  return { path }
}

/** `host:port` or `unix:/path`, the TCP form parsed by `hostPort`. */
export function parseEndpoint (s: string, field: string, hostPort: (s: string, field: string) => HostPort): Endpoint {
  return isUnixSpec(s.trim()) ? parseUnixSocket(s.trim(), field) : hostPort(s, field)
}

/**
 * `--unix-socket-mode 0600`: octal permission bits as a string (a JSON number
 * would be read as decimal: 660 is not 0660). The owner must keep read and
 * write, or the socket is of no use to the app running as its owner.
 */
export function parseSocketMode (v: unknown, field: string): number {
  if (typeof v !== 'string' || !/^0?[0-7]{3}$/.test(v.trim())) {
    throw new ConfigError(field, `${JSON.stringify(v)} is not a mode: give octal permission bits as a string, e.g. "0660" (owner and group) or "0600" (owner only)`)
  }
  const mode = parseInt(v.trim(), 8)
  if ((mode & 0o600) !== 0o600) throw new ConfigError(field, `${v.trim()} leaves the owner without read and write: nothing running as this user could connect (e.g. 0600 or 0660)`)
  return mode
}
