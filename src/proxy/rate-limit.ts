/**
 * Per-source connection-rate limit (token bucket per remote address), checked
 * at TCP accept so that a flood from one address costs no TLS handshakes.
 * Pure apart from the clock, which is injectable.
 */

/** A parsed limit: `burst` connections at once, refilled at `perMs` per token. */
export interface RateLimit {
  readonly burst: number
  readonly refillMs: number
}

/** Parse `20/s`, `600/m` or `3600/h`; null for `0` (off). Throws a plain Error naming the syntax. */
export function parseRateLimit (s: string): RateLimit | null {
  if (s === '0') return null
  const m = /^(\d+)\/(s|m|h)$/.exec(s.trim())
  if (m === null || Number(m[1]) === 0) throw new Error(`${JSON.stringify(s)} is not a rate (e.g. 20/s, 600/m, 3600/h, or 0 for off)`)
  const n = Number(m[1])
  const window = { s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 's' | 'm' | 'h']
  return { burst: n, refillMs: window / n }
}

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
