// Why: a sidecar must work with certificates Consul itself issued, not only
// ours: a db sidecar holding Consul's ca1-svc-db and root accepts a peer
// presenting Consul's ca1-svc-web and identifies it as web in dc01.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { CONFORMANCE } from '../helpers/paths.js'
import { startApp, startSidecar, echo } from '../helpers/mesh.js'

const fx = (f: string): string => join(CONFORMANCE, 'consul', 'fixtures', f)

t.test('Consul-issued certificates, live', async t => {
  const dir = t.testdir({ 'intentions.json': JSON.stringify({ intentions: [{ source: 'web', destination: 'db', action: 'allow' }] }) })
  const app = await startApp(t, echo)
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, cert: fx('ca1-svc-db.cert.pem'), key: fx('ca1-svc-db.key.pem'), ca: fx('ca1-ca-consul-internal.cert.pem'), intentions: join(dir, 'intentions.json') })
  const web = { certPem: readFileSync(fx('ca1-svc-web.cert.pem'), 'utf8'), keyPem: readFileSync(fx('ca1-svc-web.key.pem'), 'utf8') }
  const { connect } = await import('node:tls')
  // The fixtures carry no DNS SAN; the client checks the server by its SPIFFE ID instead.
  const got = await new Promise<string>((resolve, reject) => {
    const s = connect({
      port: db.addrs.inbound!.port,
      host: '127.0.0.1',
      ca: readFileSync(fx('ca1-ca-consul-internal.cert.pem')),
      cert: web.certPem,
      key: web.keyPem,
      checkServerIdentity: (_h, cert) => cert.subjectaltname === 'URI:spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc01/svc/db' ? undefined : new Error(`unexpected server ${cert.subjectaltname}`)
    }, () => s.end('consul'))
    let data = ''
    s.on('data', (d: Buffer) => { data += d.toString() })
    s.on('error', reject)
    s.on('close', () => resolve(data))
  })
  t.equal(got, 'consul', 'bytes went through')
  const closed = await db.sink.waitFor(l => l.msg === 'conn closed')
  t.match(closed, { source: 'web', peer: 'spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc01/svc/web' })
  await db.stop()
})
