// Why: SIGHUP (Sidecar.reload) swaps in new certificates without dropping
// live connections, and a broken file never replaces good material: the
// sidecar keeps serving with the old one and says why.
import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import { once } from 'node:events'
import { makeMesh, startApp, startSidecar, echo } from '../helpers/mesh.js'

function serverSerial (port: number, ca: string, client: { certPem: string, keyPem: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ port, host: '127.0.0.1', servername: 'db', ca, cert: client.certPem, key: client.keyPem }, () => {
      const serial = s.getPeerCertificate().serialNumber
      s.end()
      resolve(serial)
    })
    s.on('error', reject)
  })
}

t.test('reload: new leaf for new connections, live ones untouched; broken files kept out', async t => {
  const mesh = await makeMesh(t, [])
  const dir = t.testdir({})
  const files = { cert: join(dir, 'db.pem'), key: join(dir, 'db.key'), ca: join(dir, 'ca.pem'), intentions: join(dir, 'intentions.json') }
  const first = await mesh.leaf('db')
  await writeFile(files.cert, first.certPem)
  await writeFile(files.key, first.keyPem)
  await writeFile(files.ca, mesh.ca.certPem)
  await writeFile(files.intentions, JSON.stringify({ intentions: [{ source: 'web', destination: 'db', action: 'allow' }] }))
  const app = await startApp(t, echo)
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, ...files })
  const port = db.addrs.inbound!.port
  const web = await mesh.leaf('web')
  const serial1 = await serverSerial(port, mesh.ca.certPem, web)

  const live = tlsConnect({ port, host: '127.0.0.1', servername: 'db', ca: mesh.ca.certPem, cert: web.certPem, key: web.keyPem })
  live.write('before')
  await once(live, 'data')

  const second = await mesh.leaf('db')
  await writeFile(files.cert, second.certPem)
  await writeFile(files.key, second.keyPem)
  await db.sidecar.reload()
  await db.sink.waitFor(l => l.msg === 'certificates reloaded')
  const serial2 = await serverSerial(port, mesh.ca.certPem, web)
  t.not(serial2, serial1, 'new connections get the new certificate')
  t.equal(serial2.toLowerCase(), db.sidecar.tls.svid.chain[0]!.serial.toLowerCase())

  // A half-written pair (new cert, old key): refused, old material kept.
  const third = await mesh.leaf('db')
  await writeFile(files.cert, third.certPem)
  await db.sidecar.reload()
  const failed = await db.sink.waitFor(l => l.msg === 'certificate reload failed; keeping the current certificates')
  t.match(failed.err, /does not match private key/)
  t.notMatch(JSON.stringify(failed), /PRIVATE KEY/, 'no key material in the log')
  t.equal(await serverSerial(port, mesh.ca.certPem, web), serial2, 'still serving the last good certificate')

  live.write('after')
  const [d] = await once(live, 'data') as [Buffer]
  t.equal(d.toString(), 'after', 'the connection made before the reload still works')
  live.end()
  await new Promise(resolve => live.on('close', resolve))
  await db.stop()
})
