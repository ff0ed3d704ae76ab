// Why: the CA commands are how operators manage certificates: issue, sign a
// CSR (the key never leaves the workload), inspect, rotate the root with a
// cross-signed transition and retire the old root afterwards.
import t from 'tap'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { X509Certificate } from 'node:crypto'
import { runCli } from '../helpers/cli.js'
import { createCsr } from '../../src/ca/issue.js'
import { certsFromPem } from '../../src/core/identity/x509.js'
import { parseSpiffeBundle } from '../../src/core/identity/spiffe-bundle.js'

const run = runCli

const TD = 'example.consul'

t.test('issue, sign a CSR, inspect', async t => {
  const dir = t.testdir({})
  const d = ['--mesh-dir', dir]
  t.equal((await run(['ca', 'init', ...d, '--trust-domain', TD])).code, 0)
  t.equal((await run(['cert', 'issue', 'web', ...d, '--ttl', '1m'])).code, 0)
  const web = certsFromPem(await readFile(join(dir, 'certs', 'web.pem'), 'utf8'), 'web')[0]!
  t.ok(Math.abs(web.notAfter.getTime() - Date.now() - 60_000) < 5_000, 'a 1 minute TTL is honoured')

  const inspect = await run(['cert', 'inspect', join(dir, 'certs', 'web.pem')])
  t.equal(inspect.code, 0)
  t.match(inspect.out, /spiffe id: {3}spiffe:\/\/example\.consul\/ns\/default\/dc\/dc1\/svc\/web/)
  t.match(inspect.out, /identity: {4}service web \(namespace default, datacenter dc1/)
  t.notMatch(inspect.out, /FAIL/)
  const root = await run(['cert', 'inspect', join(dir, 'ca', 'root.pem')])
  t.equal(root.code, 0, 'a CA certificate is judged by the signing-certificate rules, not the leaf ones')
  t.match(root.out, /kind: {8}CA certificate/)

  const { csrPem, keyPem } = await createCsr(`spiffe://${TD}/ns/default/dc/dc1/svc/api`, 'api')
  await writeFile(join(dir, 'api.csr'), csrPem)
  const signed = await run(['cert', 'sign', '--csr', join(dir, 'api.csr'), '--out', join(dir, 'api.pem'), ...d])
  t.match(signed.out, /signed .*api\.csr for api/, 'the service is read from the CSR\'s SPIFFE ID')
  t.equal(signed.code, 0, signed.err)
  const api = new X509Certificate(await readFile(join(dir, 'api.pem')))
  t.equal(api.subjectAltName, `URI:spiffe://${TD}/ns/default/dc/dc1/svc/api`)
  t.ok(api.checkPrivateKey((await import('node:crypto')).createPrivateKey(keyPem)), 'the certificate is for the workload\'s own key')
  t.ok(api.verify(new X509Certificate(await readFile(join(dir, 'ca', 'root.pem'))).publicKey), 'signed by the CA')
  const evil = await createCsr(`spiffe://${TD}/ns/default/dc/dc1/svc/db`, 'api')
  await writeFile(join(dir, 'evil.csr'), evil.csrPem)
  const refused = await run(['cert', 'sign', '--csr', join(dir, 'evil.csr'), '--service', 'api', ...d])
  t.equal(refused.code, 1)
  t.match(refused.err, /CSR asks for URI SAN .*svc\/db, but this CA issues .*svc\/api/)
  await writeFile(join(dir, 'junk.csr'), 'not a csr')
  t.match((await run(['cert', 'sign', '--csr', join(dir, 'junk.csr'), '--service', 'api', ...d])).err, /CSR: not a PEM "CERTIFICATE REQUEST"/)
})

t.test('rotate: both roots trusted, new leaves chain to the old root too; retire-old', async t => {
  const dir = t.testdir({})
  const d = ['--mesh-dir', dir]
  await run(['ca', 'init', ...d, '--trust-domain', TD])
  const oldRoot = new X509Certificate(await readFile(join(dir, 'ca', 'root.pem')))
  await run(['cert', 'issue', 'web', ...d])
  const rotated = await run(['ca', 'rotate', ...d])
  t.equal(rotated.code, 0)
  const newRoot = new X509Certificate(await readFile(join(dir, 'ca', 'root.pem')))
  t.not(newRoot.fingerprint256, oldRoot.fingerprint256)
  const bundle = certsFromPem(await readFile(join(dir, 'bundle.pem'), 'utf8'), 'bundle')
  t.same(bundle.map(c => c.fingerprint256).sort(), [oldRoot.fingerprint256, newRoot.fingerprint256].sort(), 'the bundle trusts old and new')
  await run(['cert', 'issue', 'db', ...d])
  const chain = certsFromPem(await readFile(join(dir, 'certs', 'db.pem'), 'utf8'), 'db')
  t.equal(chain.length, 2, 'a new leaf carries the cross-signed root')
  const leaf = new X509Certificate(chain[0]!.der)
  const xc = new X509Certificate(chain[1]!.der)
  t.ok(leaf.verify(newRoot.publicKey), 'issued by the new root')
  t.ok(xc.verify(oldRoot.publicKey) && xc.subject === newRoot.subject, 'the cross-signed copy chains to the old root')
  const spiffe = parseSpiffeBundle(TD, (await run(['ca', 'bundle', '--format', 'spiffe', ...d])).out)
  t.equal(spiffe.x509Authorities.length, 2, 'SPIFFE bundle output lists both roots')
  const retired = await run(['ca', 'retire-old', ...d])
  t.match(retired.out, /removed 1 old root/)
  const after = certsFromPem(await readFile(join(dir, 'bundle.pem'), 'utf8'), 'bundle')
  t.same(after.map(c => c.fingerprint256), [newRoot.fingerprint256])
  await run(['cert', 'issue', 'db', ...d, '--force']) // re-issue: db has a key already
  t.equal(certsFromPem(await readFile(join(dir, 'certs', 'db.pem'), 'utf8'), 'db').length, 1, 'after retirement leaves no longer carry the cross-signed root')
})
