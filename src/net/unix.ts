/**
 * Listening on a UNIX socket path (`--upstream db:unix:/run/db.sock`), with
 * errors that name the flag and the fix. What is at the path decides: nothing
 * (bind), a socket nobody listens on (a stale file of a process that died:
 * replaced), a socket that answers (another live process: an error, never
 * taken over), anything else (an error, never removed). After binding, the
 * file gets `mode`; Node removes it when the server closes.
 */
import { statSync } from 'node:fs'
import { lstat, unlink, chmod, stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import { connect, type Server } from 'node:net'
import { ListenError, errorCode } from '../core/errors.js'

/**
 * What `path` is when it is there and not a socket ('a directory', 'a regular
 * file', …), else undefined (a socket, or nothing there yet). Connecting to
 * such a path fails as "connection refused", which says nothing of the
 * mistake. Synchronous: for start-up checks and error paths only.
 */
export function notASocket (path: string): string | undefined {
  let st
  try { st = statSync(path) } catch { return undefined }
  if (st.isSocket()) return undefined
  if (st.isDirectory()) return 'a directory'
  if (st.isFile()) return 'a regular file'
  if (st.isFIFO()) return 'a named pipe (FIFO)'
  return 'a device or other special file'
}

/** What is at `path` right now. */
type Found = 'nothing' | 'stale' | 'live'

/** Connect once to the socket at `path`: does a process accept on it? (Its listener sees a connection that closes at once.) */
function probe (path: string, flag: string): Promise<Found> {
  return new Promise((resolve, reject) => {
    const s = connect({ path })
    s.once('connect', () => { s.destroy(); resolve('live') })
    s.once('error', (err: Error) => {
      const code = errorCode(err)
      // ECONNREFUSED: the file is there and nobody listens. EAGAIN: a listener whose backlog is full, alive.
      if (code === 'ECONNREFUSED') resolve('stale')
      else if (code === 'ENOENT') resolve('nothing')
      else if (code === 'EAGAIN') resolve('live')
      else reject(new ListenError(flag, `cannot tell whether ${path} is in use: ${err.message}`, err))
    })
  })
}

/** Look at `path` before binding it; a stale socket is removed. Resolves with what was there. */
async function clear (path: string, flag: string): Promise<Found> {
  let isSocket: boolean
  try {
    isSocket = (await lstat(path)).isSocket()
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return 'nothing'
    throw new ListenError(flag, `cannot look at ${path}: ${(err as Error).message}`, err)
  }
  if (!isSocket) throw new ListenError(flag, `${path} exists and is not a socket; mesh-proxy does not remove it: move it away or choose another path`, undefined)
  const found = await probe(path, flag)
  if (found === 'live') throw new ListenError(flag, `${path} is in use: another process is listening on it; stop that process or choose another path`, undefined)
  if (found === 'stale') {
    try { await unlink(path) } catch (err) {
      if (errorCode(err) !== 'ENOENT') throw new ListenError(flag, `cannot remove the stale socket ${path}: ${(err as Error).message}`, err)
    }
  }
  return found
}

/** Why bind failed, in words. (Node reports a missing directory as EACCES, so the directory is looked at.) */
async function whyNot (err: Error, path: string): Promise<string> {
  const code = errorCode(err)
  if (code === 'EADDRINUSE') return `${path} is in use: another process bound it just now; stop that process or choose another path`
  if (code === 'ENOENT' || code === 'EACCES') {
    const dirExists = await stat(dirname(path)).then(st => st.isDirectory(), () => false)
    if (!dirExists) return `the directory of ${path} does not exist; create it first`
    return `permission denied creating ${path}; choose a directory this user may write to`
  }
  return err.message
}

/**
 * server.listen({ path }) after clearing a stale socket, then chmod to `mode`.
 * Resolves with whether a stale socket was replaced; rejects with a ListenError naming `flag`.
 */
export async function listenUnix (server: Server, path: string, flag: string, mode: number): Promise<{ replacedStale: boolean }> {
  const found = await clear(path, flag)
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => { void whyNot(err, path).then(why => reject(new ListenError(flag, why, err))) }
    server.once('error', onError)
    server.once('listening', () => {
      server.off('error', onError)
      resolve()
    })
    server.listen({ path })
  })
  try {
    // Until now the file had the umask's mode (0755 under the usual 022: only the owner may connect, which needs write).
    await chmod(path, mode)
  } catch (err) {
    await new Promise(resolve => server.close(resolve))
    throw new ListenError(flag, `cannot set mode ${mode.toString(8).padStart(4, '0')} on ${path}: ${(err as Error).message}`, err)
  }
  return { replacedStale: found === 'stale' }
}
