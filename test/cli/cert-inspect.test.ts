// Why: `cert inspect` said "ok" for certificates no trusted root signed (it had
// no trust check) and judged a CA certificate as a leaf (4 FAIL lines for the
// mesh's own root). With --ca (PEM roots or a SPIFFE bundle) or --mesh-dir it
// gives the chain verdict: against which root, through which intermediates, or
// why not; a CA certificate is judged by the signing-certificate rules. The
// openssl cases are cross-checked with `openssl verify`.
import t from 'tap'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { runCli } from '../helpers/cli.js'
import { opensslMissing, opensslPki, type OpensslLeaf } from '../helpers/openssl-pki.js'
import { TD } from '../helpers/mesh.js'
import { issueCert } from '../../src/ca/issue.js'
import { consulServiceId } from '../../src/core/identity/spiffe-id.js'
import { CERTS_DEV_DIR } from '../../src/meshdir/seed.js'

const inspect = (file: string, ...more: string[]): ReturnType<typeof runCli> => runCli(['cert', 'inspect', file, ...more])

t.test('chains made by openssl: roots, intermediates, cross-signed, a leaf posing as a CA', { skip: opensslMissing() }, async t => {
  const pki = opensslPki(t)
  const R = await pki.root('R')
  const O = await pki.root('O')
  const N = await pki.root('N')
  const F = await pki.root('F', 'foreign.example')
  const I = await pki.signCa(R, 'I')
  const X = await pki.signCa(O, N) // N's key and name, signed by O: the cross-signed root
  const web = await pki.leaf(R, 'web')
  const api = await pki.leaf(I, 'api', [I])
  const db = await pki.leaf(N, 'db', [X])
  const webAsCa = { name: 'web', cert: web.leafOnly, key: web.key }
  const evil = await pki.leaf(webAsCa, 'evil', [webAsCa])
  const stray = await pki.leaf(F, 'stray', [], TD) // a TD identity under a root of foreign.example
  const b = { R: await pki.bundle('r.pem', [R]), O: await pki.bundle('o.pem', [O]), N: await pki.bundle('n.pem', [N]), F: await pki.bundle('f.pem', [F]) }

  const cases: Array<{ name: string, file: string, ca?: string, code: number, says: RegExp, openssl?: { leaf: OpensslLeaf, untrusted?: typeof I[] } }> = [
    { name: 'leaf by the root', file: web.cert, ca: b.R, code: 0, says: /ok {3}chain verified against CN=R \(sha256 [0-9A-F:]+…\) from .*r\.pem$/m, openssl: { leaf: web } },
    { name: 'leaf through an intermediate in the file', file: api.cert, ca: b.R, code: 0, says: /ok {3}chain verified against CN=R .* via CN=I$/m, openssl: { leaf: api, untrusted: [I] } },
    { name: 'intermediate missing from the file', file: api.leafOnly, ca: b.R, code: 1, says: /FAIL chain not verified against .*r\.pem: unknown issuer: CN=I \(the issuer of CN=api\) is neither a root of the bundle nor in the file/, openssl: { leaf: api } },
    { name: 'signed by a root not in the bundle', file: web.cert, ca: b.O, code: 1, says: /FAIL chain not verified .*: unknown issuer: CN=R/, openssl: { leaf: web } },
    { name: 'new root cross-signed, old bundle', file: db.cert, ca: b.O, code: 0, says: /ok {3}chain verified against CN=O .* via CN=N$/m, openssl: { leaf: db, untrusted: [X] } },
    { name: 'new root cross-signed, new bundle', file: db.cert, ca: b.N, code: 0, says: /ok {3}chain verified against CN=N \(/, openssl: { leaf: db } },
    { name: 'a leaf that signs', file: evil.cert, ca: b.R, code: 1, says: /FAIL chain not verified .*: issuer not a CA: CN=web signed CN=evil but is not a CA \(basicConstraints CA:FALSE\)/, openssl: { leaf: evil, untrusted: [webAsCa] } },
    { name: 'chain ends at a root of another trust domain', file: stray.cert, ca: b.F, code: 1, says: /FAIL chain not verified .*: foreign trust domain: spiffe:\/\/11111111-.*svc\/stray is in trust domain .* but its chain ends at CN=F, a root of foreign\.example/ },
    { name: 'a root, in the bundle', file: R.cert, ca: b.R, code: 0, says: /kind: {8}CA certificate[^]*ok {3}a CA \(basicConstraints CA:TRUE\)[^]*ok {3}chain verified against CN=R .*\(it is that root\)/ },
    { name: 'an intermediate', file: I.cert, ca: b.R, code: 0, says: /kind: {8}CA certificate[^]*ok {3}chain verified against CN=R \(/ },
    { name: 'a root, not in the bundle', file: R.cert, ca: b.O, code: 1, says: /unknown issuer: CN=R is self-signed and not a root of the bundle/ },
    { name: 'no bundle given', file: web.cert, code: 0, says: /-- {3}chain not checked: no trust bundle given \(--ca <bundle> or --mesh-dir <dir>\)/ }
  ]
  for (const c of cases) {
    const r = await inspect(c.file, ...(c.ca === undefined ? [] : ['--ca', c.ca]))
    t.equal(r.code, c.code, `${c.name}: exit ${c.code}`)
    t.match(r.out, c.says, `${c.name}: the verdict`)
    if (c.code === 0) t.notMatch(r.out, /FAIL/, `${c.name}: no FAIL`)
    if (c.openssl !== undefined) t.equal(pki.verify(c.openssl.leaf, c.ca!, c.openssl.untrusted), c.code === 0, `${c.name}: openssl verify agrees`)
  }
})

t.test('the mesh CA: its own root passes, the SPIFFE bundle works, a stranger and an expired leaf fail', async t => {
  const dir = t.testdir({})
  const d = ['--mesh-dir', dir]
  t.equal((await runCli(['ca', 'init', ...d, '--trust-domain', TD])).code, 0)
  t.equal((await runCli(['cert', 'issue', 'web', ...d])).code, 0)
  const root = await inspect(join(dir, 'ca', 'root.pem'), ...d)
  t.equal(root.code, 0, 'the mesh\'s own root: exit 0')
  t.notMatch(root.out, /FAIL/, 'judged as a signing certificate, not a leaf')
  t.match(root.out, /ok {3}keyUsage has keyCertSign\n {2}ok {3}a SPIFFE ID, if any, is a trust domain \(no path\)/)
  t.match(root.out, /\(it is that root\)/)
  t.match((await inspect(join(dir, 'certs', 'web.pem'), ...d)).out, /ok {3}chain verified against CN=mesh-proxy CA/)

  const spiffe = await runCli(['ca', 'bundle', ...d, '--format', 'spiffe'])
  await writeFile(join(dir, 'bundle.json'), spiffe.out)
  const viaJson = await inspect(join(dir, 'certs', 'web.pem'), '--ca', join(dir, 'bundle.json'))
  t.equal(viaJson.code, 0)
  t.match(viaJson.out, /chain verified against CN=mesh-proxy CA .*bundle\.json \(SPIFFE bundle\)/)

  const stranger = await inspect(join(dir, 'certs', 'web.pem'), '--ca', join(CERTS_DEV_DIR, 'ca.pem'))
  t.equal(stranger.code, 1, 'the dev CA did not sign it: exit 1')
  t.match(stranger.out, /FAIL chain not verified .*ca\.pem: unknown issuer: CN=mesh-proxy CA/)

  const ca = { certPem: await readFile(join(dir, 'ca', 'root.pem'), 'utf8'), keyPem: await readFile(join(dir, 'ca', 'root.key'), 'utf8') }
  const uri = consulServiceId({ trustDomain: TD, datacenter: 'dc1', service: 'old' }).uri
  const old = await issueCert({ ca, uris: [uri], commonName: 'old', notBefore: new Date(Date.now() - 7_200_000), notAfter: new Date(Date.now() - 3_600_000) })
  await writeFile(join(dir, 'old.pem'), old.certPem)
  const expired = await inspect(join(dir, 'old.pem'), ...d)
  t.equal(expired.code, 1)
  t.match(expired.out, /FAIL within its validity period: expired/)
  t.match(expired.out, /FAIL chain not verified .*: expired: CN=old expired at/)
})

t.test('--ca and --mesh-dir are one or the other; a missing bundle is named', async t => {
  const f = join(CERTS_DEV_DIR, 'web.pem')
  const both = await inspect(f, '--ca', join(CERTS_DEV_DIR, 'ca.pem'), '--mesh-dir', CERTS_DEV_DIR)
  t.equal(both.code, 2)
  t.match(both.err, /--ca: give --ca or --mesh-dir, not both/)
  const missing = await inspect(f, '--ca', '/nonexistent/roots.pem')
  t.equal(missing.code, 2)
  t.match(missing.err, /--ca: \/nonexistent\/roots\.pem does not exist/)
  const notMesh = await inspect(f, '--mesh-dir', '/nonexistent')
  t.equal(notMesh.code, 2)
  t.match(notMesh.err, /--mesh-dir: \/nonexistent has no bundle\.pem/)
})
