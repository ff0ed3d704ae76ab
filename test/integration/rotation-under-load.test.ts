// Why: "the mesh rotates certificates for you" is only true if nothing breaks
// while it does. A client streams bytes through web -> db while both leaves
// renew several times (seconds-scale TTL) and the CA root rotates once: the
// stream arrives intact (sha256 at both ends), every new connection succeeds,
// and each new connection sees the certificate issued last.
import t from 'tap'
import { connect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { once } from 'node:events'
import { createHash, randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { makeMesh, startApp, startSidecar } from '../helpers/mesh.js'
import { rotateRoot } from '../../src/meshdir/ca-store.js'

function serverSerial (port: number, ca: string, client: { certPem: string, keyPem: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ port, host: '127.0.0.1', servername: 'db', ca, cert: client.certPem, key: client.keyPem }, () => {
      const serial = s.getPeerCertificate().serialNumber
      s.end()
      resolve(serial.toLowerCase())
    })
    s.on('error', reject)
  })
}

async function roundTrip (port: number, text: string): Promise<string> {
  const c = connect(port, '127.0.0.1')
  let got = ''
  c.on('data', (d: Buffer) => { got += d.toString() })
  c.end(text)
  await once(c, 'close')
  return got
}

t.test('leaves renew and the root rotates under a live stream', async t => {
  const mesh = await makeMesh(t, [])
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }])
  // The app hashes the stream it receives; short connections get an echo.
  let streamHash: Promise<string> | undefined
  const app = await startApp(t, (s: Socket) => {
    s.once('data', (first: Buffer) => {
      if (first.toString('latin1', 0, 6) !== 'STREAM') { s.pipe(s); s.unshift(first); return }
      const h = createHash('sha256')
      h.update(first.subarray(6))
      s.on('data', (d: Buffer) => h.update(d))
      streamHash = new Promise(resolve => s.once('end', () => { resolve(h.digest('hex')); s.end() }))
    })
  })
  const flags = { meshDir: mesh.dir, leafTtl: '8s' } // renewal at 60-90 %: at least ~0.9 s of margin before expiry even on a loaded CI machine
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, ...flags }, { rootChangeJitterMs: 300 })
  const web = await startSidecar(t, { service: 'web', upstream: ['db:0'], ...flags }, { rootChangeJitterMs: 300 })
  const upstream = web.addrs.upstreams.get('db')!.port

  // The stream: 64 KiB chunks with backpressure until told to stop.
  const stream = connect({ port: upstream, host: '127.0.0.1', allowHalfOpen: true })
  await once(stream, 'connect')
  const sent = createHash('sha256')
  let sending = true
  let bytes = 0
  const pump = (async () => {
    stream.write('STREAM')
    while (sending) {
      const chunk = randomBytes(64 * 1024)
      sent.update(chunk)
      bytes += chunk.length
      if (!stream.write(chunk)) await once(stream, 'drain')
    }
    stream.end()
  })()

  const client = await mesh.leaf('web')
  const seen = new Set<string>()
  let current = db.sidecar.tls.svid.chain[0]!.serial
  for (let round = 1; round <= 4; round++) {
    if (round === 3) {
      const { readMeshSettings } = await import('../../src/meshdir/layout.js')
      await rotateRoot(mesh.layout, await readMeshSettings(mesh.layout))
      t.comment('root rotated')
    }
    // The next leaf, whichever path installs it: the renewal/re-issue itself
    // ('renewal due', 'root changed') or the file watcher that saw the new files
    // first ('file changed'; on a loaded machine it can win). That the root
    // rotation led to a leaf of the new root is asserted after the rounds.
    const prev = current
    const line = await db.sink.waitFor(l => l.msg === 'certificates reloaded' && l.previousSerial === prev && l.serial !== prev)
    current = String(line.serial)
    const bundle = await readFile(mesh.layout.bundle, 'utf8')
    const serial = await serverSerial(db.addrs.inbound!.port, bundle, client)
    t.equal(serial, db.sidecar.tls.svid.chain[0]!.serial.toLowerCase(), `round ${round}: a new connection sees the current leaf`)
    seen.add(serial)
    t.equal(await roundTrip(upstream, `round ${round}`), `round ${round}`, `round ${round}: a new connection through both sidecars works`)
  }
  t.ok(seen.size >= 4, `four different serials were served (${seen.size})`)
  const newRoot = (await readFile(mesh.layout.caCert, 'utf8'))
  const { X509Certificate } = await import('node:crypto')
  t.ok(new X509Certificate(db.sidecar.tls.svid.chain[0]!.der).verify(new X509Certificate(newRoot).publicKey), 'db now holds a leaf of the new root')
  // web re-issues within its own jittered delay after the root change: wait for that reload, not for luck.
  const webOnNewRoot = (): boolean => new X509Certificate(web.sidecar.tls.svid.chain[0]!.der).verify(new X509Certificate(newRoot).publicKey)
  await web.sink.waitFor(l => l.msg === 'certificates reloaded' && webOnNewRoot())
  t.ok(webOnNewRoot(), 'web too')

  sending = false
  await pump
  t.equal(await streamHash!, sent.digest('hex'), `the stream (${(bytes / 1048576).toFixed(0)} MiB) arrived intact across every rotation`)
  t.equal(db.metrics.get('mesh_proxy_handshake_failures_total', { reason: 'tls_error' }), 0)
  t.equal(web.sink.msgs('conn refused').length, 0, 'no outbound connection was refused')
  t.equal(db.sink.msgs('conn rejected').length, 0, 'no inbound connection was rejected')
  await web.stop()
  await db.stop()
})
