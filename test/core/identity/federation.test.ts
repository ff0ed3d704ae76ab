// Why: a federated bundle must speak for its own trust domain only; a root of
// another (or ours) slipped into it would let that domain's CA vouch for peers
// it does not own.
import t from 'tap'
import { createRootCa } from '../../../src/ca/issue.js'
import { bundleFromPem } from '../../../src/core/identity/bundle.js'
import { formatSpiffeBundle } from '../../../src/core/identity/spiffe-bundle.js'
import { federate, federatedRoots } from '../../../src/core/identity/federation.js'

t.test('federated roots from a SPIFFE bundle or PEM, each tagged with its trust domain', async t => {
  const other = await createRootCa({ trustDomain: 'other.org' })
  const ours = await createRootCa({ trustDomain: 'example.org' })
  const json = formatSpiffeBundle(bundleFromPem(other.certPem, 'other.org', 't'), 'other.org')
  t.same(federatedRoots('other.org', json, 'f').map(r => r.trustDomain), ['other.org'], 'SPIFFE bundle JSON')
  t.same(federatedRoots('other.org', other.certPem, 'f').map(r => r.trustDomain), ['other.org'], 'PEM')
  t.throws(() => federatedRoots('other.org', ours.certPem, 'f'), /a root of trust domain example\.org .* in the bundle of other\.org/, 'a root of another trust domain is refused')
  t.throws(() => federatedRoots('other.org', '{"keys": []}', 'f'), /no authorities found/)
  const own = bundleFromPem(ours.certPem, 'example.org', 'own')
  const merged = federate(own, 'example.org', new Map([['other.org', federatedRoots('other.org', other.certPem, 'f')]]))
  t.same([...merged.trustDomains].sort(), ['example.org', 'other.org'])
  t.equal(merged.trustDomainOf(own.roots[0]!.cert.fingerprint256), 'example.org', 'our root stays ours')
  t.throws(() => federate(own, 'example.org', new Map([['example.org', []]])), /that is our own trust domain/)
})
