// Why: Consul-issued certificates must read as Consul means them. A real
// Consul root and leaf (agent API responses) verify with time pinned inside
// the leaf's validity and are refused outside it; Consul's own test
// certificates chain as documented, including root rotation by cross-signing.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { X509Certificate } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import { CONFORMANCE } from '../../helpers/paths.js'
import { certsFromPem } from '../../../src/core/identity/x509.js'
import { checkLeaf, checkValidity, parseOwnSvid } from '../../../src/core/identity/svid.js'
import { toConsulService } from '../../../src/core/identity/spiffe-id.js'

const consul = join(CONFORMANCE, 'consul')
const fx = (f: string): string => readFileSync(join(consul, 'fixtures', f), 'utf8')

t.test('agent API root and leaf, time pinned', async t => {
  const roots = JSON.parse(readFileSync(join(consul, 'agent-connect-ca-roots.json'), 'utf8'))
  const leafDoc = JSON.parse(readFileSync(join(consul, 'agent-connect-ca-leaf-web.json'), 'utf8'))
  const root = new X509Certificate(roots.Roots[0].RootCert)
  const leafPem: string = leafDoc.CertPEM
  const leaf = new X509Certificate(leafPem)
  t.ok(leaf.checkIssued(root) && leaf.verify(root.publicKey), 'leaf verifies against the root')
  const facts = certsFromPem(leafPem, 'leaf')[0]!
  const id = toConsulService(checkLeaf(facts))
  t.match(id, { service: 'web', datacenter: 'dc1', namespace: 'default' })
  t.doesNotThrow(() => checkValidity(facts, Date.parse('2018-05-22T00:00:00Z')), 'inside validity')
  t.throws(() => checkValidity(facts, Date.parse('2018-05-25T00:00:00Z')), { reason: 'expired', message: /expired at/ })
  t.throws(() => checkValidity(facts, Date.parse('2018-05-20T00:00:00Z')), { reason: 'not_yet_valid', message: /not valid before/ })
  t.throws(() => checkValidity(facts, Date.now()), { reason: 'expired', message: /expired at/ }, 'and today it is expired')
  const svid = parseOwnSvid(leafPem, leafDoc.PrivateKeyPEM, { cert: 'CertPEM', key: 'PrivateKeyPEM' })
  t.equal(svid.id.uri, leafDoc.ServiceURI, 'key matches, ServiceURI agrees')
})

t.test('Consul test fixtures', async t => {
  const root = new X509Certificate(fx('test-root-cert.golden'))
  const leaf = new X509Certificate(fx('test-leaf-cert.golden'))
  t.ok(leaf.verify(root.publicKey), 'golden leaf verifies against golden root')
  t.equal(parseOwnSvid(fx('test-leaf-cert.golden'), fx('test-leaf-key.golden'), { cert: 'leaf', key: 'key' }).id.path, '/ns/default/dc/dc1/svc/web')
  const ca1 = new X509Certificate(fx('ca1-ca-consul-internal.cert.pem'))
  const xc = new X509Certificate(fx('ca2-xc-by-ca1.cert.pem'))
  const db2 = new X509Certificate(fx('ca2-svc-db.cert.pem'))
  t.notOk(db2.checkIssued(ca1), 'ca2-svc-db alone does not chain to ca1')
  t.ok(db2.checkIssued(xc) && db2.verify(xc.publicKey) && xc.verify(ca1.publicKey), 'with the cross-signed cert it chains to ca1')
  if (spawnSync('openssl', ['version']).status !== 0) {
    t.comment('openssl not installed: skipping the independent path-validation check')
    return
  }
  const dir = t.testdir({ 'ca1.pem': fx('ca1-ca-consul-internal.cert.pem'), 'xc.pem': fx('ca2-xc-by-ca1.cert.pem'), 'db2.pem': fx('ca2-svc-db.cert.pem') })
  const verify = (...args: string[]): number | null => spawnSync('openssl', ['verify', ...args], { cwd: dir }).status
  t.equal(verify('-CAfile', 'ca1.pem', '-untrusted', 'xc.pem', 'db2.pem'), 0, 'openssl: accepted with the intermediate')
  t.not(verify('-CAfile', 'ca1.pem', 'db2.pem'), 0, 'openssl: refused without it')
})
