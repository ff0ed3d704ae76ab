// Why: SPIFFE ID parsing must match the standard exactly, as go-spiffe does;
// every vector in ../shared/conformance/spiffe/spiffeid-vectors.json is a case.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { CONFORMANCE } from '../../helpers/paths.js'
import { parseSpiffeId, parseTrustDomain, spiffeIdFromSegments, pathError, toConsulService, consulServiceId } from '../../../src/core/identity/spiffe-id.js'
import { SpiffeIdError } from '../../../src/core/errors.js'

interface V { input: string, trust_domain?: string, path?: string, error?: string | null, valid?: boolean }
const vec = JSON.parse(readFileSync(join(CONFORMANCE, 'spiffe', 'spiffeid-vectors.json'), 'utf8')) as Record<string, V[]> & { valid_segments: Array<{ segments: string[], path: string }>, invalid_segments: Array<{ segment: string, error: string }> }

t.test('valid IDs parse to trust domain and path', async t => {
  t.ok(vec.valid_ids_detail!.length > 100)
  for (const v of vec.valid_ids_detail!) {
    const id = parseSpiffeId(v.input)
    t.same([id.trustDomain, id.path], [v.trust_domain, v.path], JSON.stringify(v.input))
  }
})

t.test('invalid IDs fail with go-spiffe\'s error', async t => {
  t.ok(vec.invalid_ids_detail!.length > 400)
  for (const v of vec.invalid_ids_detail!) {
    t.throws(() => parseSpiffeId(v.input), new SpiffeIdError(v.error!), JSON.stringify(v.input))
  }
})

t.test('trust domains', async t => {
  for (const v of vec.valid_trust_domains_detail!) t.equal(parseTrustDomain(v.input), v.trust_domain, JSON.stringify(v.input))
  for (const v of vec.invalid_trust_domains_detail!) t.throws(() => parseTrustDomain(v.input), { message: v.error! }, JSON.stringify(v.input))
})

t.test('paths and segments', async t => {
  for (const v of vec.valid_paths!) t.equal(pathError(v.input), null, JSON.stringify(v.input))
  for (const v of vec.invalid_paths!) t.equal(pathError(v.input), v.error, JSON.stringify(v.input))
  for (const v of vec.valid_segments) t.equal(spiffeIdFromSegments('example.org', v.segments).path, v.path)
  for (const v of vec.invalid_segments) t.throws(() => spiffeIdFromSegments('example.org', [v.segment]), { message: v.error }, JSON.stringify(v.segment))
})

t.test('derived vectors', async t => {
  for (const v of vec.derived_not_in_tests!) {
    if (v.valid === true) t.equal(parseSpiffeId(v.input).uri, v.input)
    else t.throws(() => parseSpiffeId(v.input), { message: v.error! }, JSON.stringify(v.input))
  }
})

t.test('Consul service form', async t => {
  const td = '11111111-2222-3333-4444-555555555555.consul'
  const c = toConsulService(parseSpiffeId(`spiffe://${td}/ns/default/dc/dc1/svc/web`))
  t.same(c, { trustDomain: td, namespace: 'default', datacenter: 'dc1', service: 'web', uri: `spiffe://${td}/ns/default/dc/dc1/svc/web` })
  t.equal(toConsulService(parseSpiffeId(`spiffe://${td}/ns/default/dc/dc1/svc`)), null, 'missing name')
  t.equal(toConsulService(parseSpiffeId(`spiffe://${td}/workload/web`)), null, 'other shape')
  t.equal(toConsulService(parseSpiffeId(`spiffe://${td}`)), null, 'CA identity')
  t.equal(consulServiceId({ trustDomain: td, datacenter: 'dc2', service: 'db' }).uri, `spiffe://${td}/ns/default/dc/dc2/svc/db`)
  t.throws(() => consulServiceId({ trustDomain: td, datacenter: 'dc1', service: 'we b' }), SpiffeIdError)
})
