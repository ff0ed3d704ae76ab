/**
 * Watch one file for content changes: fs.watch on its directory (atomic writers
 * replace the inode, so watching the file itself misses renames) plus a polling
 * fallback, debounced. Callers re-read and validate; this only says "look again".
 */
import { watch, type FSWatcher } from 'node:fs'
import { stat } from 'node:fs/promises'
import { basename, dirname } from 'node:path'

/** Options of {@link FileWatcher}. */
export interface FileWatcherOptions {
  /** Polling interval, the fallback where fs.watch is unreliable (network filesystems). Default 1000 ms. */
  pollMs?: number
  /** Coalesce bursts of events (non-atomic writers). Default 50 ms. */
  debounceMs?: number
}

/** Calls `onChange` after the file's identity (inode, size, mtime) changes. */
export class FileWatcher {
  readonly #path: string
  readonly #onChange: () => void
  readonly #debounceMs: number
  #watcher: FSWatcher | undefined
  #poll: NodeJS.Timeout | undefined
  #debounce: NodeJS.Timeout | undefined
  #sig = ''
  #closed = false

  constructor (path: string, onChange: () => void, opts: FileWatcherOptions = {}) {
    this.#path = path
    this.#onChange = onChange
    this.#debounceMs = opts.debounceMs ?? 50
    const name = basename(path)
    try {
      this.#watcher = watch(dirname(path), { persistent: false }, (_event, file) => {
        if (file === null || file === name) this.#check()
      })
      this.#watcher.on('error', () => { this.#watcher?.close(); this.#watcher = undefined })
    } catch {
      this.#watcher = undefined // directory missing or watch unsupported: polling covers it
    }
    this.#poll = setInterval(() => this.#check(), opts.pollMs ?? 1000)
    this.#poll.unref()
  }

  /** Record the current state so that only later changes fire. */
  async prime (): Promise<void> {
    this.#sig = await this.#signature()
  }

  #check (): void {
    if (this.#closed) return
    clearTimeout(this.#debounce)
    this.#debounce = setTimeout(() => {
      this.#signature().then(sig => {
        if (this.#closed || sig === this.#sig) return
        this.#sig = sig
        this.#onChange()
      }, () => {})
    }, this.#debounceMs)
    this.#debounce.unref()
  }

  async #signature (): Promise<string> {
    try {
      const st = await stat(this.#path, { bigint: true })
      return `${st.ino}:${st.size}:${st.mtimeNs}`
    } catch {
      return 'missing'
    }
  }

  /** Stop watching. Idempotent. */
  close (): void {
    if (this.#closed) return
    this.#closed = true
    this.#watcher?.close()
    clearInterval(this.#poll)
    clearTimeout(this.#debounce)
  }
}
