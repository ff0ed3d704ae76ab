/**
 * Gives the JS heap back once a sidecar falls idle after a peak.
 *
 * With ~10 000 connections held, a sidecar's JS heap grows to ~95 MB (its
 * TLSSocket objects); once they close, that is garbage, but V8 runs no full
 * GC on a heap that no longer allocates, so it stays, 80+ MB of it, for as
 * long as the sidecar is quiet (bench/RESULTS.md, "Memory is given back").
 * Every IDLE_GC_CHECK_MS this checks a counter and the heap size: when there
 * has been no live connection for a whole check and the heap holds more than
 * IDLE_GC_MIN_HEAP_BYTES above what it held at start, one full GC runs. It
 * runs again only after a new peak, so a quiet sidecar pays nothing.
 *
 * `gc` comes from V8 itself (`--expose-gc`, set at run time): no flag for users.
 */
import { getHeapStatistics, setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

/** How often the sidecar is looked at. */
export const IDLE_GC_CHECK_MS = 5_000
/** Heap growth since start below which there is nothing worth collecting. */
export const IDLE_GC_MIN_HEAP_BYTES = 32 * 1024 * 1024

/** What the policy reads and does; injectable for tests. */
export interface IdleGcDeps {
  readonly connections: () => number
  readonly heapUsed: () => number
  readonly gc: () => void
}

/** The decision, pure: a state per check. */
export class IdleGcPolicy {
  readonly #baseline: number
  #idleChecks = 0
  #collectedThisIdle = false

  constructor (baselineHeapBytes: number) {
    this.#baseline = baselineHeapBytes
  }

  /** One check: true when a full GC should run now (at most once per idle period). */
  check (connections: number, heapUsed: number): boolean {
    if (connections > 0) {
      this.#idleChecks = 0
      this.#collectedThisIdle = false
      return false
    }
    this.#idleChecks++
    if (this.#idleChecks < 2 || this.#collectedThisIdle) return false // idle for a whole interval, not just at this instant
    if (heapUsed - this.#baseline < IDLE_GC_MIN_HEAP_BYTES) return false
    this.#collectedThisIdle = true
    return true
  }
}

/** V8's own full GC, exposed at run time (there is no other public way to ask for one). */
function v8Gc (): () => void {
  setFlagsFromString('--expose-gc')
  return runInNewContext('gc') as () => void
}

/** Start checking; returns the stop function (idempotent). The timer never keeps the process alive. */
export function startIdleGc (connections: () => number, deps: Partial<IdleGcDeps> = {}, everyMs = IDLE_GC_CHECK_MS): () => void {
  const heapUsed = deps.heapUsed ?? (() => getHeapStatistics().used_heap_size)
  const gc = deps.gc ?? v8Gc()
  const policy = new IdleGcPolicy(heapUsed())
  const timer = setInterval(() => {
    const c = deps.connections?.() ?? connections()
    if (policy.check(c, heapUsed())) gc()
  }, everyMs)
  timer.unref()
  return () => clearInterval(timer)
}
