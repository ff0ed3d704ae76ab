// Why: one noisy source must not be able to open connections (and cost TLS
// handshakes) without bound; the limit is per source address, with a burst
// and a steady refill, and memory stays bounded.
import t from 'tap'
import { SourceRateLimiter } from '../../src/dataplane/rate-limit.js'
import { parseRateLimit } from '../../src/core/config/rate-limit.js'

t.test('parse', async t => {
  t.same(parseRateLimit('20/s'), { burst: 20, refillMs: 50 })
  t.same(parseRateLimit('600/m'), { burst: 600, refillMs: 100 })
  t.equal(parseRateLimit('0'), null)
  for (const bad of ['20', '0/s', 'x/s', '5/d']) t.throws(() => parseRateLimit(bad), { message: /is not a rate \(e\.g\. 20\/s/ }, bad)
})

t.test('token bucket per source, clock injected', async t => {
  let now = 0
  const rl = new SourceRateLimiter({ burst: 2, refillMs: 1000 }, () => now)
  t.same([rl.allow('a'), rl.allow('a'), rl.allow('a')], [true, true, false], 'burst of 2, then refused')
  t.equal(rl.allow('b'), true, 'another source has its own bucket')
  now = 999
  t.equal(rl.allow('a'), false, 'not yet refilled')
  now = 1000
  t.equal(rl.allow('a'), true, 'one token per refill period')
  t.equal(rl.allow('a'), false)
  now = 10_000
  t.same([rl.allow('a'), rl.allow('a'), rl.allow('a')], [true, true, false], 'refill never exceeds the burst')
})
