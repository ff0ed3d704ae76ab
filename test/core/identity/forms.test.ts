// Why: one module maps SPIFFE IDs to the services intentions name, and back to
// the ID an upstream must present. A wrong mapping either lets a peer in under
// another service's name or refuses every peer of a valid form.
import t from 'tap'
import { parseIdentityForm, workloadOf, spiffeIdOf, describeForm, IdentityFormError } from '../../../src/core/identity/forms.js'
import { parseSpiffeId } from '../../../src/core/identity/spiffe-id.js'

t.test('forms that compile, and what IDs they map to', async t => {
  const rows: Array<[form: string, id: string, want: ReturnType<typeof workloadOf>]> = [
    ['consul', 'spiffe://td.consul/ns/default/dc/dc1/svc/web', { trustDomain: 'td.consul', namespace: 'default', service: 'web', datacenter: 'dc1' }],
    ['consul', 'spiffe://td.consul/ns/billing/dc/dc2/svc/api', { trustDomain: 'td.consul', namespace: 'billing', service: 'api', datacenter: 'dc2' }],
    ['consul', 'spiffe://td.consul/ns/default/sa/web', null],
    ['consul', 'spiffe://td.consul/ns/default/dc/dc1/svc/web/extra', null],
    ['consul', 'spiffe://td.consul/ns/default/dc/dc1/svcs/web', null],
    ['consul', 'spiffe://td.consul', null],
    ['kubernetes', 'spiffe://example.org/ns/default/sa/web', { trustDomain: 'example.org', namespace: 'default', service: 'web', datacenter: null }],
    ['kubernetes', 'spiffe://example.org/ns/prod/sa/db', { trustDomain: 'example.org', namespace: 'prod', service: 'db', datacenter: null }],
    ['kubernetes', 'spiffe://example.org/ns/default/dc/dc1/svc/web', null],
    ['kubernetes', 'spiffe://example.org/web', null],
    ['spiffe://{trustDomain}/{service}', 'spiffe://example.org/web', { trustDomain: 'example.org', namespace: 'default', service: 'web', datacenter: null }],
    ['spiffe://{trustDomain}/{service}', 'spiffe://example.org/a/b', null],
    ['spiffe://{trustDomain}/workload/{service}', 'spiffe://example.org/workload/web', { trustDomain: 'example.org', namespace: 'default', service: 'web', datacenter: null }],
    ['spiffe://{trustDomain}/workload/{service}', 'spiffe://example.org/workloads/web', null],
    ['spiffe://example.org/{namespace}/{service}', 'spiffe://example.org/team/web', { trustDomain: 'example.org', namespace: 'team', service: 'web', datacenter: null }],
    ['spiffe://example.org/{namespace}/{service}', 'spiffe://other.org/team/web', null],
    ['spiffe://{trustDomain}/region/{datacenter}/{service}', 'spiffe://x.org/region/eu1/web', { trustDomain: 'x.org', namespace: 'default', service: 'web', datacenter: 'eu1' }]
  ]
  for (const [form, id, want] of rows) t.same(workloadOf(parseIdentityForm(form), parseSpiffeId(id)), want, `${form}: ${id}`)
})

t.test('and back: the ID an upstream must present', async t => {
  const w = { trustDomain: 'td.org', namespace: 'default', service: 'db', datacenter: 'dc1' }
  const rows: Array<[string, string]> = [
    ['consul', 'spiffe://td.org/ns/default/dc/dc1/svc/db'],
    ['kubernetes', 'spiffe://td.org/ns/default/sa/db'],
    ['spiffe://{trustDomain}/workload/{service}', 'spiffe://td.org/workload/db'],
    ['spiffe://other.org/{service}', 'spiffe://other.org/db']
  ]
  for (const [form, want] of rows) {
    const f = parseIdentityForm(form)
    const id = spiffeIdOf(f, w)
    t.equal(id.uri, want, form)
    t.match(workloadOf(f, id), { service: 'db', namespace: 'default' }, `${form}: round trip`)
  }
  t.equal(describeForm(parseIdentityForm('kubernetes')), 'spiffe://<td>/ns/<namespace>/sa/<service>')
})

t.test('forms that do not compile say why', async t => {
  const rows: Array<[string, RegExp]> = [
    ['', /is not an identity form: give consul, kubernetes, or a template/],
    ['k8s', /is not an identity form/],
    ['http://{trustDomain}/{service}', /is not an identity form/],
    ['spiffe://{trustDomain}/workload', /has no \{service\}/],
    ['spiffe://{trustDomain}/{service}/{service}', /\{service\} appears twice/],
    ['spiffe://{trustDomain}/svc-{service}', /a placeholder must be a whole path segment/],
    ['spiffe://{trustDomain}/{name}', /unknown placeholder \{name\}/],
    ['spiffe://Bad_TD!/{service}', /is neither \{trustDomain\} nor a trust domain name/],
    ['spiffe://{trustDomain}//{service}', /path segment "" is not valid/],
    ['spiffe://{trustDomain}/a b/{service}', /path segment "a b" is not valid/]
  ]
  for (const [form, want] of rows) t.throws(() => parseIdentityForm(form), { constructor: IdentityFormError, message: want }, JSON.stringify(form))
})
