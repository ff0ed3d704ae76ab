// Why: trust bundles travel in the SPIFFE bundle format (JWKS); the four
// go-spiffe cases in ../shared/conformance/spiffe/spiffebundle give the
// outcome, and what we write reads back to the same roots.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { CONFORMANCE } from '../../helpers/paths.js'
import { parseSpiffeBundle, formatSpiffeBundle, toTrustBundle } from '../../../src/core/identity/spiffe-bundle.js'
import { bundleFromPem } from '../../../src/core/identity/bundle.js'
import { createRootCa } from '../../../src/ca/issue.js'

const read = (f: string): string => readFileSync(join(CONFORMANCE, 'spiffe', 'spiffebundle', f), 'utf8')

t.test('conformance cases', async t => {
  const ok = parseSpiffeBundle('local', read('spiffebundle_valid_1.json'))
  t.equal(ok.x509Authorities.length, 1, '1 X.509 authority')
  t.equal(ok.jwtAuthorityKeyIds.length, 1, '1 JWT authority')
  t.same(ok.x509Authorities[0]!.uris, ['spiffe://local'])
  t.throws(() => parseSpiffeBundle('x', read('spiffebundle_missing_kid.json')), { message: 'spiffebundle: error adding authority 1 of JWKS: keyID cannot be empty' })
  t.throws(() => parseSpiffeBundle('x', read('spiffebundle_no_keys.json')), { message: 'spiffebundle: no authorities found' })
  t.throws(() => parseSpiffeBundle('x', read('spiffebundle_multiple_x509.json')), { message: 'spiffebundle: expected a single certificate in x509-svid entry 0; got 2' })
})

t.test('write then read: same roots, sequence and refresh hint', async t => {
  const td = 'example.org'
  const a = await createRootCa({ trustDomain: td })
  const b = await createRootCa({ trustDomain: td })
  const bundle = bundleFromPem(a.certPem + b.certPem, td, 'test')
  const text = formatSpiffeBundle(bundle, td, { sequence: 7, refreshHintSeconds: 60 })
  const doc = JSON.parse(text)
  t.equal(doc.keys[0].use, 'x509-svid')
  t.equal(doc.keys[0].kty, 'EC')
  t.equal(doc.keys[0].crv, 'P-256')
  const back = parseSpiffeBundle(td, text)
  t.equal(back.sequence, 7)
  t.equal(back.refreshHintSeconds, 60)
  t.same(toTrustBundle(back).roots.map(r => r.cert.fingerprint256), bundle.roots.map(r => r.cert.fingerprint256))
})
