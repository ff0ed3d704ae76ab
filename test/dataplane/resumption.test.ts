// Why: the outbound's resumption policy decides, per instance, whether a
// handshake offers a PSK of ours (mesh-proxy servers), a ticket (any server)
// or nothing; a wrong answer costs a full handshake per connection against
// Envoy or openssl, or never resumes with mesh-proxy.
import t from 'tap'
import { Resumption, PSK_DECLINES_FOR_TICKETS } from '../../src/dataplane/resumption.js'

const gen = {}
const psk = { identity: 'aa', psk: Buffer.alloc(32, 1) }
const session = Buffer.from('ticket')
const entry = { session, psk, peerId: 'spiffe://td/ns/default/dc/dc1/svc/db', expiresAt: 1_000 }

const offerKind = (r: Resumption, owner: object = gen, now = 0): string => {
  const o = r.offer(owner, 'h:1', now)
  return o.psk !== undefined ? 'psk' : o.ticket !== undefined ? 'ticket' : 'none'
}

t.test('what is offered, case by case', async t => {
  const cases: Array<{ name: string, steps: (r: Resumption) => void, owner?: object, now?: number, want: string }> = [
    { name: 'nothing known', steps: () => {}, want: 'none' },
    { name: 'a PSK and a ticket: the PSK', steps: r => r.keep(gen, 'h:1', entry), want: 'psk' },
    { name: 'a ticket only', steps: r => r.keep(gen, 'h:1', { session, peerId: entry.peerId, expiresAt: 1_000 }), want: 'ticket' },
    { name: 'another TLS generation', steps: r => r.keep(gen, 'h:1', entry), owner: {}, want: 'none' },
    { name: 'expired', steps: r => r.keep(gen, 'h:1', entry), now: 1_000, want: 'none' },
    { name: 'forgotten after a failed handshake', steps: r => { r.keep(gen, 'h:1', entry); r.forget('h:1') }, want: 'none' },
    { name: 'one decline: still the PSK', steps: r => { r.keep(gen, 'h:1', entry); r.pskOutcome('h:1', false) }, want: PSK_DECLINES_FOR_TICKETS > 1 ? 'psk' : 'ticket' },
    { name: `${PSK_DECLINES_FOR_TICKETS} declines in a row: tickets only`, steps: r => { r.keep(gen, 'h:1', entry); for (let i = 0; i < PSK_DECLINES_FOR_TICKETS; i++) r.pskOutcome('h:1', false) }, want: 'ticket' },
    { name: 'taken once, then declined many times: still PSKs (mesh-proxy restarted)', steps: r => { r.keep(gen, 'h:1', entry); r.pskOutcome('h:1', true); for (let i = 0; i < 5; i++) r.pskOutcome('h:1', false) }, want: 'psk' },
    { name: 'cleared', steps: r => { r.keep(gen, 'h:1', entry); r.clear() }, want: 'none' }
  ]
  for (const c of cases) {
    const r = new Resumption()
    c.steps(r)
    t.equal(offerKind(r, c.owner, c.now), c.want, c.name)
  }
})

t.test('the offer carries the entry whose identity stands in on resumption', async t => {
  const r = new Resumption()
  r.keep(gen, 'h:1', entry)
  const o = r.offer(gen, 'h:1', 0)
  t.equal(o.entry?.peerId, entry.peerId)
  t.equal(o.ticket, undefined, 'a PSK offer sends no ticket')
})
