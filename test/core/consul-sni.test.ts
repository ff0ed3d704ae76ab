// Why: the mesh gateway's routing decision is this parse; a name read with
// the labels shifted routes a session to another service or datacenter.
import t from 'tap'
import { formatConsulSni, parseConsulSni } from '../../src/core/consul-sni.js'

const TD = '11111111-2222-3333-4444-555555555555.consul'

t.test('the service form, with a dotted trust domain', async t => {
  const s = { service: 'db', namespace: 'default', datacenter: 'dc2', trustDomain: TD }
  t.same(parseConsulSni(`db.default.dc2.internal.${TD}`), s)
  t.equal(formatConsulSni(s), `db.default.dc2.internal.${TD}`, 'and back')
  t.same(parseConsulSni('web.team-a.eu-west.internal.example'), { service: 'web', namespace: 'team-a', datacenter: 'eu-west', trustDomain: 'example' })
})

t.test('refused, each with its reason', async t => {
  const cases: ReadonlyArray<[string, RegExp]> = [
    ['db.example.com', /is not <service>\.<namespace>\.<datacenter>\.internal\.<trust-domain>/],
    [`db.dc2.internal.${TD}`, /has 2 labels before "internal", not 3/],
    [`db.x.default.dc2.internal.${TD}`, /has 4 labels before "internal", not 3/],
    ['db.default.dc2.internal', /no trust domain after "internal"/],
    [`db.default.part.dc2.internal-v1.${TD}`, /admin-partition form/]
  ]
  for (const [sni, why] of cases) t.match(parseConsulSni(sni), why, sni)
})
