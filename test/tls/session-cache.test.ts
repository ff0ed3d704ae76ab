// Why: a resumed handshake skips the server's certificate, so a ticket may
// only be offered while what was verified with it still holds: same TLS
// generation of ours, before its expiry. These rules are the whole security
// argument for resumption, so each one is pinned here.
import t from 'tap'
import { SessionCache, SESSION_LIFETIME_MS, resumableUntil } from '../../src/tls/session-cache.js'

const genA = {}
const genB = {}
const ticket = (n: number, expiresAt = 1000): { session: Buffer, peerId: string, expiresAt: number } =>
  ({ session: Buffer.from(`ticket-${n}`), peerId: 'spiffe://td/ns/default/dc/dc1/svc/db', expiresAt })

const cases: Array<{ name: string, run: (c: SessionCache) => unknown, want: string | undefined }> = [
  { name: 'empty cache offers nothing', run: c => c.get(genA, 'h:1', 0), want: undefined },
  { name: 'same generation, before expiry: offered', run: c => { c.set(genA, 'h:1', ticket(1)); return c.get(genA, 'h:1', 999) }, want: 'ticket-1' },
  { name: 'at expiry: dropped', run: c => { c.set(genA, 'h:1', ticket(1)); return c.get(genA, 'h:1', 1000) }, want: undefined },
  { name: 'another generation (rotation): dropped', run: c => { c.set(genA, 'h:1', ticket(1)); return c.get(genB, 'h:1', 0) }, want: undefined },
  { name: 'another instance: nothing', run: c => { c.set(genA, 'h:1', ticket(1)); return c.get(genA, 'h:2', 0) }, want: undefined },
  { name: 'newest ticket wins', run: c => { c.set(genA, 'h:1', ticket(1)); c.set(genA, 'h:1', ticket(2)); return c.get(genA, 'h:1', 0) }, want: 'ticket-2' },
  { name: 'delete forgets', run: c => { c.set(genA, 'h:1', ticket(1)); c.delete('h:1'); return c.get(genA, 'h:1', 0) }, want: undefined },
  { name: 'clear forgets', run: c => { c.set(genA, 'h:1', ticket(1)); c.clear(); return c.get(genA, 'h:1', 0) }, want: undefined }
]

for (const k of cases) {
  t.test(k.name, async t => {
    const got = k.run(new SessionCache()) as { session: Buffer } | undefined
    t.equal(got?.session.toString(), k.want)
  })
}

t.test('a stale entry is removed when looked up', async t => {
  const c = new SessionCache()
  c.set(genA, 'h:1', ticket(1))
  t.equal(c.size, 1)
  c.get(genB, 'h:1', 0)
  t.equal(c.size, 0)
})

t.test('bounded: the oldest instance goes first; a refreshed one moves to the back', async t => {
  const c = new SessionCache()
  for (let i = 0; i < 1024; i++) c.set(genA, `h:${i}`, ticket(i))
  c.set(genA, 'h:0', ticket(0)) // refreshed: now the newest
  c.set(genA, 'h:new', ticket(9))
  t.equal(c.size, 1024)
  t.equal(c.get(genA, 'h:1', 0), undefined, 'h:1 was the oldest')
  t.equal(c.get(genA, 'h:0', 0)?.session?.toString(), 'ticket-0')
  t.equal(c.get(genA, 'h:new', 0)?.session?.toString(), 'ticket-9')
})

t.test('resumableUntil: the lifetime, capped by either leaf', async t => {
  const now = 1_000_000
  const later = new Date(now + 10 * SESSION_LIFETIME_MS)
  t.equal(resumableUntil(now, later, later), now + SESSION_LIFETIME_MS, 'both leaves outlive it: the lifetime')
  t.equal(resumableUntil(now, new Date(now + 1000), later), now + 1000, "the peer's leaf ends first")
  t.equal(resumableUntil(now, later, new Date(now + 2000)), now + 2000, 'our leaf ends first')
})
