// Why: most CAs beyond our own issue from an intermediate (Consul with Vault,
// SPIRE with an upstream authority, cert-manager), and our own root rotation
// sends a leaf of the new root with the cross-signed copy to peers that still
// trust only the old root. A chain OpenSSL verifies must be accepted, on both
// sides of a pair and on every Node we support. The chains here are made by the
// openssl CLI, not by our CA code.
import t, { type Test } from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startApp, startSidecar, echo, echoRoundTrip } from '../helpers/mesh.js'
import { opensslMissing, opensslPki, type OpensslLeaf } from '../helpers/openssl-pki.js'

const missing = opensslMissing()

/** db (inbound, trusting `dbTrusts`) and web (outbound to db, trusting `webTrusts`); one round trip. */
async function pair (t: Test, dir: string, db: OpensslLeaf, dbTrusts: string, web: OpensslLeaf, webTrusts: string): Promise<string> {
  const intentions = join(dir, 'intentions.json')
  await writeFile(intentions, JSON.stringify({ index: 1, defaultPolicy: 'deny', intentions: [{ source: 'web', destination: 'db', action: 'allow' }] }))
  const app = await startApp(t, echo)
  const dbSide = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, cert: db.cert, key: db.key, ca: dbTrusts, intentions })
  const webSide = await startSidecar(t, { service: 'web', upstream: [`db:0=127.0.0.1:${dbSide.addrs.inbound!.port}`], cert: web.cert, key: web.key, ca: webTrusts })
  const got = await echoRoundTrip(webSide.addrs.upstreams.get('db')!.port, 'through the chain')
  t.same(dbSide.sink.msgs('conn rejected'), [], 'db rejected nothing')
  t.same(webSide.sink.msgs('conn refused'), [], 'web refused nothing')
  await webSide.stop()
  await dbSide.stop()
  return got
}

if (missing !== undefined) {
  t.comment(`skipping: ${missing}`)
  t.pass('skipped: no openssl')
} else {
  t.test('root -> intermediate -> leaf on both sides; the bundle holds the root only', async t => {
    const pki = opensslPki(t)
    const root = await pki.root('root')
    const mid = await pki.signCa(root, 'intermediate')
    const db = await pki.leaf(mid, 'db', [mid])
    const web = await pki.leaf(mid, 'web', [mid])
    t.ok(pki.verify(web, root.cert, [mid]), 'openssl verify: OK')
    t.equal(await pair(t, pki.dir, db, root.cert, web, root.cert), 'through the chain', 'both sidecars accept the other\'s chain')
  })

  t.test('root rotation: a leaf of the new root, sent with the cross-signed copy, to a peer that trusts only the old root', async t => {
    const pki = opensslPki(t)
    const oldRoot = await pki.root('old-root')
    const newRoot = await pki.root('new-root')
    const cross = await pki.signCa(oldRoot, newRoot)
    const both = await pki.bundle('both.pem', [oldRoot, newRoot])
    const rotated = await pki.leaf(newRoot, 'web', [cross])
    t.ok(pki.verify(rotated, oldRoot.cert, [cross]), 'openssl verify against the old root alone: OK')
    const dbOld = await pki.leaf(oldRoot, 'db')
    t.equal(await pair(t, pki.dir, dbOld, oldRoot.cert, rotated, both), 'through the chain', 'an inbound trusting the old root accepts the rotated client')
  })

  t.test('root rotation, the other way: the upstream rotated, the outbound trusts only the old root', async t => {
    const pki = opensslPki(t)
    const oldRoot = await pki.root('old-root')
    const newRoot = await pki.root('new-root')
    const cross = await pki.signCa(oldRoot, newRoot)
    const both = await pki.bundle('both.pem', [oldRoot, newRoot])
    const dbRotated = await pki.leaf(newRoot, 'db', [cross])
    const webOld = await pki.leaf(oldRoot, 'web')
    t.equal(await pair(t, pki.dir, dbRotated, both, webOld, oldRoot.cert), 'through the chain', 'an outbound trusting the old root accepts the rotated server')
  })
}
