// Why: spiffe-helper and cert-manager rewrite files in place, one after the
// other (cert, pause, key). The sidecar must never serve a mismatched pair:
// it keeps the last good material until the set is whole again. And a leaf
// that expires with nothing to renew it is announced, not silently served.
import t, { type Test } from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import { makeMesh, startApp, startSidecar, echo } from '../helpers/mesh.js'

function handshake (port: number, ca: string, client: { certPem: string, keyPem: string }): Promise<{ serial?: string, error?: string }> {
  return new Promise(resolve => {
    const s = tlsConnect({ port, host: '127.0.0.1', servername: 'db', ca, cert: client.certPem, key: client.keyPem }, () => {
      const serial = s.getPeerCertificate().serialNumber.toLowerCase()
      s.end()
      resolve({ serial })
    })
    s.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }))
  })
}

async function filesSetup (t: Test, leaf: { certPem: string, keyPem: string }, caPem: string): Promise<{ files: Record<string, string> }> {
  const dir = t.testdir({})
  const files = { cert: join(dir, 'svid.pem'), key: join(dir, 'svid_key.pem'), ca: join(dir, 'bundle.pem'), intentions: join(dir, 'intentions.json') }
  await writeFile(files.cert, leaf.certPem)
  await writeFile(files.key, leaf.keyPem)
  await writeFile(files.ca, caPem)
  await writeFile(files.intentions, JSON.stringify({ intentions: [{ source: 'web', destination: 'db', action: 'allow' }] }))
  return { files }
}

t.test('non-atomic rewrite: cert first, key later', async t => {
  const mesh = await makeMesh(t, [])
  const first = await mesh.leaf('db')
  const { files } = await filesSetup(t, first, mesh.ca.certPem)
  const app = await startApp(t, echo)
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, ...files })
  const port = db.addrs.inbound!.port
  const web = await mesh.leaf('web')
  const serial1 = (await handshake(port, mesh.ca.certPem, web)).serial
  t.equal(serial1, db.sidecar.tls.svid.chain[0]!.serial.toLowerCase())

  const second = await mesh.leaf('db')
  const failed = db.sink.waitForNext(l => l.msg === 'certificate reload failed; keeping the current certificates')
  await writeFile(files.cert, second.certPem) // spiffe-helper: the certificate first ...
  t.match((await failed).err, /does not match private key/, 'the half-written pair is refused')
  t.same(await handshake(port, mesh.ca.certPem, web), { serial: serial1 }, 'meanwhile the old, matching pair is served')

  const reloaded = db.sink.waitForNext(l => l.msg === 'certificates reloaded')
  await writeFile(files.key, second.keyPem) // ... then the key
  const line = await reloaded
  t.equal(String(line.previousSerial).toLowerCase(), serial1)
  const serial2 = (await handshake(port, mesh.ca.certPem, web)).serial
  t.not(serial2, serial1)
  t.equal(serial2, String(line.serial).toLowerCase(), 'the whole new pair is served')
  await db.stop()
})

t.test('expired leaf and no signer: logged, and handshakes fail loudly', async t => {
  const mesh = await makeMesh(t, [])
  const leaf = await mesh.leaf('db', { notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 1500) })
  const { files } = await filesSetup(t, leaf, mesh.ca.certPem)
  const app = await startApp(t, echo)
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, ...files })
  const expired = await db.sink.waitFor(l => /certificate expired and nothing can renew it/.test(String(l.msg)))
  t.equal(expired.level, 50, 'at error level')
  t.ok(db.metrics.get('mesh_proxy_cert_expiry_timestamp_seconds', { spiffe_id: db.sidecar.tls.svid.id.uri }) * 1000 < Date.now(), 'the expiry metric is in the past')
  const r = await handshake(db.addrs.inbound!.port, mesh.ca.certPem, await mesh.leaf('web'))
  t.equal(r.error, 'CERT_HAS_EXPIRED', 'the peer refuses our expired certificate')
  const rejected = await db.sink.waitFor(l => l.msg === 'conn rejected')
  t.equal(rejected.reason, 'own_certificate_expired', 'and the sidecar logs the refusal with the cause')
  t.equal(rejected.level, 40)
  t.equal(app.accepted(), 0)
  await db.stop()
})
