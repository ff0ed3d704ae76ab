/**
 * File writes that a reader can never see half of (temp file + fsync + rename +
 * directory fsync), and a cross-process lock file for read-modify-write cycles.
 */
import { open, rename, unlink, mkdir, readFile, stat, access } from 'node:fs/promises'
import { dirname, basename, join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { ERR, MeshProxyError, errorCode } from '../core/errors.js'

/**
 * Mode of every directory mesh-proxy creates (the mesh dir, ca/ with the root
 * key, certs/, catalog/): owner only, whatever the umask (mkdir masks it
 * further, never widens it).
 */
export const PRIVATE_DIR = 0o700

/** Write `data` to `path` atomically with `mode` (0600 for keys). */
export async function writeFileAtomic (path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const dir = dirname(path)
  await mkdir(dir, { recursive: true, mode: PRIVATE_DIR })
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
  const fh = await open(tmp, 'wx', mode)
  try {
    await fh.writeFile(data)
    await fh.sync()
  } catch (err) {
    await fh.close()
    await unlink(tmp).catch(() => {})
    throw err
  }
  await fh.close()
  try {
    await rename(tmp, path)
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw err
  }
  // Make the rename itself durable.
  const dh = await open(dir, 'r')
  try { await dh.sync() } catch { /* some filesystems refuse fsync on a directory */ } finally { await dh.close() }
}

/** Options of {@link withLock}. */
export interface LockOptions {
  /** Give up after this long; default 10 s. */
  timeoutMs?: number
  /** A lock older than this whose owner is gone is taken over; default 30 s. */
  staleMs?: number
}

/**
 * Run `fn` holding `<path>.lock` (O_EXCL create). Two processes doing
 * read-modify-write on the same file never lose each other's writes.
 */
export async function withLock<T> (path: string, fn: () => Promise<T>, opts: LockOptions = {}): Promise<T> {
  const lock = path + '.lock'
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000)
  const staleMs = opts.staleMs ?? 30_000
  await mkdir(dirname(lock), { recursive: true, mode: PRIVATE_DIR })
  let delay = 2
  for (;;) {
    try {
      const fh = await open(lock, 'wx', 0o600)
      await fh.writeFile(String(process.pid))
      await fh.close()
      break
    } catch (err) {
      if (errorCode(err) !== 'EEXIST') throw err
      if (await isStale(lock, staleMs)) { await unlink(lock).catch(() => {}); continue }
      if (Date.now() > deadline) throw new MeshProxyError(ERR.LOCK, `could not lock ${path} within ${opts.timeoutMs ?? 10_000} ms: ${lock} is held by another process; if no mesh-proxy command is running, delete ${lock}`)
      await new Promise(resolve => setTimeout(resolve, delay))
      delay = Math.min(delay * 2, 50)
    }
  }
  try {
    return await fn()
  } finally {
    await unlink(lock).catch(() => {})
  }
}

async function isStale (lock: string, staleMs: number): Promise<boolean> {
  try {
    const [text, st] = await Promise.all([readFile(lock, 'utf8'), stat(lock)])
    const pid = Number(text)
    if (Number.isInteger(pid) && pid > 0 && !pidAlive(pid)) return true
    return Date.now() - st.mtimeMs > staleMs
  } catch {
    return false
  }
}

/** True if a process with this pid exists on this machine. */
export function pidAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return errorCode(err) === 'EPERM'
  }
}

/** True if `p` exists (and is visible to us). */
export async function fileExists (p: string): Promise<boolean> {
  try {
    await access(p)
    return true
  } catch {
    return false
  }
}

/** Those of `paths` that exist: what a write would replace (writers of CAs and keys refuse unless told --force). */
export async function existingOf (paths: readonly string[]): Promise<string[]> {
  const there = await Promise.all(paths.map(fileExists))
  return paths.filter((_, i) => there[i])
}
