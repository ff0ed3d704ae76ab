/** The --source-rate-limit value: `20/s`, `600/m`, `3600/h`, or `0` for off. Pure. */

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
