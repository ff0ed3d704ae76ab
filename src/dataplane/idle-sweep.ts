/**
 * One timer per process (per idle duration) instead of one per socket: the
 * relay marks a connection active on every chunk with an integer store, and
 * a sweep every `periodMs` closes those silent for `idleMs`. A Node socket
 * timer costs a Timeout, a bound callback and a listener per socket, and a
 * re-arm on every read and every write.
 *
 * Precision: a connection is closed no earlier than idleMs after its last
 * byte and at most one period later (period = idleMs/4, at most 1 s).
 */

/** One watched connection. */
export interface IdleEntry {
  /** The sweep's tick at the last activity (the relay writes `sweep.tick` here). */
  last: number
  /** Called once the entry has been silent for idleMs; the owner then removes it. */
  readonly onIdle: () => void
}

/** The sweep for one idle duration. */
export class IdleSweep {
  /** Advances by one every period; read on each chunk. */
  tick = 0
  readonly periodMs: number
  /** Whole periods of silence after which an entry is idle. */
  readonly #limit: number
  readonly #entries = new Set<IdleEntry>()
  #timer: NodeJS.Timeout | undefined

  constructor (idleMs: number) {
    this.periodMs = Math.max(1, Math.min(1000, Math.floor(idleMs / 4)))
    this.#limit = Math.ceil(idleMs / this.periodMs)
  }

  /** Watch `onIdle`'s connection from now on. */
  add (onIdle: () => void): IdleEntry {
    const e: IdleEntry = { last: this.tick, onIdle }
    this.#entries.add(e)
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#sweep(), this.periodMs)
      this.#timer.unref()
    }
    return e
  }

  /** Stop watching `e` (idempotent); the timer stops with the last entry. */
  delete (e: IdleEntry): void {
    this.#entries.delete(e)
    if (this.#entries.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer)
      this.#timer = undefined
    }
  }

  /** Entries watched (tests assert 0 after teardown). */
  get size (): number { return this.#entries.size }

  #sweep (): void {
    const now = ++this.tick
    // Activity during tick t leaves last = t; that entry is idle only once
    // more than #limit whole periods have passed since the end of tick t.
    for (const e of this.#entries) {
      if (now - e.last <= this.#limit) continue
      this.delete(e)
      e.onIdle()
    }
  }
}

const sweeps = new Map<number, IdleSweep>()

/** The process-wide sweep for `idleMs` (relays with the same timeout share it). */
export function idleSweep (idleMs: number): IdleSweep {
  let s = sweeps.get(idleMs)
  if (s === undefined) sweeps.set(idleMs, s = new IdleSweep(idleMs))
  return s
}
