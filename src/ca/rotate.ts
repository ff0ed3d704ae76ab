/**
 * When to renew (pure). Like Consul's agent: at a random point between 60 %
 * and 90 % of the leaf's lifetime, so a fleet issued together does not renew
 * together; after a root change, within a random 0-30 s.
 */

/** Renewal window as fractions of the lifetime. */
export const RENEW_WINDOW = { from: 0.6, to: 0.9 } as const
/** After a root change, re-issue within this long (random). */
export const ROOT_CHANGE_JITTER_MS = 30_000

/** The time (ms since epoch) to renew a leaf valid from `notBefore` to `notAfter`. */
export function renewAt (notBefore: Date, notAfter: Date, rand: number = Math.random()): number {
  const start = notBefore.getTime()
  const life = notAfter.getTime() - start
  return start + life * (RENEW_WINDOW.from + (RENEW_WINDOW.to - RENEW_WINDOW.from) * rand)
}

/** Delay until a re-issue after a root change, in [0, jitterMs). */
export function rootChangeDelay (jitterMs: number = ROOT_CHANGE_JITTER_MS, rand: number = Math.random()): number {
  return Math.floor(jitterMs * rand)
}

/** setTimeout's ceiling (about 24.8 days): longer delays are re-armed. */
export const MAX_TIMER_MS = 2 ** 31 - 1
