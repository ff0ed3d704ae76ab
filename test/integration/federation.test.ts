// Why: SPIFFE federation. A peer of another trust domain is accepted only when
// that trust domain is federated (--federate td=bundle), only if its chain ends
// at a root of its own trust domain (never ours), and only by an intention that
// names its trust domain. Certificates are made by openssl.
import t from 'tap'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { opensslMissing, opensslPki } from '../helpers/openssl-pki.js'
import { startApp, startSidecar, echo, echoSha, mtlsTry } from '../helpers/mesh.js'
import { resolveConfig } from '../../src/core/config/resolve.js'
import { formatSpiffeBundle } from '../../src/core/identity/spiffe-bundle.js'
import { bundleFromPem } from '../../src/core/identity/bundle.js'

const skip = opensslMissing()
const OURS = 'example.org'
const OTHER = 'other.org'

t.test('a federated peer: accepted by an intention naming its trust domain, refused otherwise', { skip }, async t => {
  const pki = opensslPki(t)
  const ours = await pki.root('ours', OURS)
  const other = await pki.root('other', OTHER)
  const ourBundle = await pki.bundle('ours-bundle.pem', [ours])
  // The other trust domain's bundle as its federation endpoint serves it: a SPIFFE bundle document.
  const otherJson = join(pki.dir, 'other.json')
  await writeFile(otherJson, formatSpiffeBundle(bundleFromPem(await readFile(other.cert, 'utf8'), OTHER, 'other'), OTHER))
  const intentions = join(pki.dir, 'intentions.json')
  await writeFile(intentions, JSON.stringify({ index: 1, defaultPolicy: 'allow', intentions: [{ source: 'web', sourceTrustDomain: OTHER, destination: 'db', action: 'allow' }] }))
  const dbLeaf = await pki.leaf(ours, 'db', [], OURS)
  const app = await startApp(t, echo)
  const files = { cert: dbLeaf.cert, key: dbLeaf.key, ca: ourBundle, intentions }
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, federate: [`${OTHER}=${otherJson}`], ...files })
  t.match(db.sink.msgs('sidecar started')[0], { mode: `files, federated with ${OTHER}`, trustDomains: [OURS, OTHER] })
  const port = db.addrs.inbound!.port
  // A client of other.org trusts our root through its own federation; here: our bundle as its CA.
  const as = async (leaf: { cert: string, key: string }): Promise<Awaited<ReturnType<typeof mtlsTry>>> =>
    await mtlsTry(port, { certPem: await readFile(leaf.cert, 'utf8'), keyPem: await readFile(leaf.key, 'utf8') }, await readFile(ourBundle, 'utf8'))

  const web = await pki.leaf(other, 'web', [], OTHER)
  t.equal((await as(web)).received, 'hello', 'web of other.org is allowed by the intention naming other.org')
  t.match(await db.sink.waitFor(l => l.msg === 'conn closed'), { peer: `spiffe://${OTHER}/ns/default/dc/dc1/svc/web`, source: `web (${OTHER})`, intention: `web (${OTHER}) => db` })

  const billing = await pki.leaf(other, 'billing', [], OTHER)
  t.equal((await as(billing)).received, '', 'billing of other.org: no intention names it, and the default policy (allow) does not apply to a federated peer')
  t.match(await db.sink.waitFor(l => l.msg === 'conn denied'), { source: `billing (${OTHER})`, reason: /no intention names a source of trust domain other\.org/ })

  // An ID of other.org on a chain to OUR root: verified against other.org's roots only, so refused.
  const forged = await pki.leaf(ours, 'forged', [], OTHER, `spiffe://${OTHER}/ns/default/dc/dc1/svc/web`)
  t.equal((await as(forged)).received, '')
  t.match(await db.sink.waitFor(l => l.msg === 'conn rejected' && l.reason === 'foreign_trust_domain'), { err: /is in trust domain other\.org but its chain ends at a root of example\.org/ })

  // The same intentions, no federation: the peer is refused before any intention is read.
  const alone = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, ...files })
  const tried = await mtlsTry(alone.addrs.inbound!.port, { certPem: await readFile(web.cert, 'utf8'), keyPem: await readFile(web.key, 'utf8') }, await readFile(ourBundle, 'utf8'))
  t.equal(tried.received, '', 'not federated: refused')
  t.match(await alone.sink.waitFor(l => l.msg === 'conn rejected'), { reason: /^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)$/ }, 'its root is not in the bundle: OpenSSL cannot verify it')
  await alone.stop()
  await db.stop()
})

t.test('a bad federation: named at start, the fix said', { skip }, async t => {
  const pki = opensslPki(t)
  const ours = await pki.root('ours', OURS)
  const other = await pki.root('other', OTHER)
  const leaf = await pki.leaf(ours, 'db', [], OURS)
  const files = { cert: leaf.cert, key: leaf.key, ca: await pki.bundle('b.pem', [ours]), upstream: ['x:0=127.0.0.1:1'] }
  await t.rejects(startSidecar(t, { service: 'db', federate: [`${OTHER}=${join(pki.dir, 'missing.json')}`], ...files }), /--federate other\.org=.*missing\.json: cannot read/)
  await t.rejects(startSidecar(t, { service: 'db', federate: [`${OTHER}=${await pki.bundle('wrong.pem', [ours])}`], ...files }), /a root of trust domain example\.org .* in the bundle of other\.org/)
  await t.rejects(startSidecar(t, { service: 'db', federate: [`${OURS}=${await pki.bundle('own.pem', [ours])}`], ...files }), /--federate example\.org: that is our own trust domain/)
  await t.rejects(startSidecar(t, { service: 'db', federate: [`${OTHER}=${other.cert}`, `${OTHER}=${other.cert}`], ...files }), /--federate: other\.org is given twice/)
  await t.rejects(startSidecar(t, { service: 'db', federate: ['other.org'], ...files }), /is not <trust domain>=<bundle file>/)
})

t.test('an upstream in a federated trust domain: --upstream-trust-domain says which, its server is checked against that domain only', { skip }, async t => {
  const pki = opensslPki(t)
  const ours = await pki.root('ours', OURS)
  const other = await pki.root('other', OTHER)
  // db lives in other.org and federates us; web is ours and federates other.org.
  const dbLeaf = await pki.leaf(other, 'db', [], OTHER)
  const webLeaf = await pki.leaf(ours, 'web', [], OURS)
  const intentions = join(pki.dir, 'db-intentions.json')
  await writeFile(intentions, JSON.stringify({ index: 1, defaultPolicy: 'deny', intentions: [{ source: 'web', sourceTrustDomain: OURS, destination: 'db', action: 'allow' }] }))
  const app = await startApp(t, echo)
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, cert: dbLeaf.cert, key: dbLeaf.key, ca: await pki.bundle('other-b.pem', [other]), intentions, federate: [`${OURS}=${ours.cert}`], admin: 'off' })
  const instance = `db:0=127.0.0.1:${db.addrs.inbound!.port}`
  const webFiles = { cert: webLeaf.cert, key: webLeaf.key, ca: await pki.bundle('ours-b.pem', [ours]), federate: [`${OTHER}=${other.cert}`], admin: 'off' }
  const web = await startSidecar(t, { service: 'web', upstream: [instance], upstreamTrustDomain: [`db=${OTHER}`], ...webFiles })
  const sha = await echoSha(web.addrs.upstreams.get('db')!.port, 100_000)
  t.equal(sha.received, sha.sent, 'web (example.org) reaches db (other.org): every byte back')
  t.match(await web.sink.waitFor(l => l.msg === 'conn closed'), { peer: `spiffe://${OTHER}/ns/default/dc/dc1/svc/db`, reason: 'eof' })
  t.match(await db.sink.waitFor(l => l.msg === 'conn closed'), { source: `web (${OURS})` })
  // Without saying so, db is expected in our own trust domain: refused before a byte is sent.
  const plain = await startSidecar(t, { service: 'web', upstream: [instance], ...webFiles })
  t.equal((await echoSha(plain.addrs.upstreams.get('db')!.port, 10)).receivedBytes, 0)
  t.match(await plain.sink.waitFor(l => l.msg === 'conn refused'), { reason: 'wrong_server_identity', err: new RegExp(`expected spiffe://${OURS}/ns/default/dc/dc1/svc/db`) })
  // A trust domain not federated cannot be an upstream's: named at start.
  t.throws(() => resolveConfig({ flags: { service: 'web', upstream: [instance], upstreamTrustDomain: ['db=third.org'], cert: 'c', key: 'k', ca: 'a' }, env: {}, file: null }), /--upstream-trust-domain: db=third\.org: third\.org is not federated.*add --federate third\.org=<its bundle>/)
  t.throws(() => resolveConfig({ flags: { service: 'web', upstream: [instance], upstreamTrustDomain: ['dbx=other.org'], cert: 'c', key: 'k', ca: 'a' }, env: {}, file: null }), /dbx is not an upstream of this sidecar/)
  await plain.stop()
  await web.stop()
  await db.stop()
})
