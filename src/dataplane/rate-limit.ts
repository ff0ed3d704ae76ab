/**
 * Per-source connection-rate limit (token bucket per remote address), checked
 * at TCP accept so that a flood from one address costs no TLS handshakes.
 * Pure apart from the clock, which is injectable.
 */

import type { RateLimit } from '../core/config/rate-limit.js'

export type { RateLimit }

/** Token buckets by source; idle buckets are forgotten so memory stays bounded. */
export class SourceRateLimiter {
  readonly #limit: RateLimit
  readonly #now: () => number
  readonly #buckets = new Map<string, { tokens: number, at: number }>()

  constructor (limit: RateLimit, now: () => number = Date.now) {
    this.#limit = limit
    this.#now = now
  }

  /** Take a token for `source`; false when it has none left. */
  allow (source: string): boolean {
    const now = this.#now()
    const b = this.#buckets.get(source) ?? { tokens: this.#limit.burst, at: now }
    b.tokens = Math.min(this.#limit.burst, b.tokens + (now - b.at) / this.#limit.refillMs)
    b.at = now
    if (this.#buckets.size > 10_000) this.#forgetFull(now)
    if (b.tokens < 1) { this.#buckets.set(source, b); return false }
    b.tokens -= 1
    this.#buckets.set(source, b)
    return true
  }

  #forgetFull (now: number): void {
    for (const [k, b] of this.#buckets) {
      if (b.tokens + (now - b.at) / this.#limit.refillMs >= this.#limit.burst) this.#buckets.delete(k)
    }
  }
}
