// Why: the mesh gateway joins datacenters without holding a key. The demo of
// issue 22 end to end (web in dc1 reaches db in dc2 through both datacenters'
// gateways, sha256 equal at both ends, db still checks web's identity and
// intention), proof that the gateway relays the ClientHello and whatever
// follows untouched, and every refusal with its reason, log line and metric.
import t from 'tap'
import { connect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { spawn } from 'node:child_process'
import { TD, echo, echoRoundTrip, makeMesh, startApp, startSidecar } from '../helpers/mesh.js'
import { otherDatacenter, rawTry, startMeshGateway } from '../helpers/gateway.js'
import { receiveAll, sendBulk } from '../helpers/data.js'
import { ROOT } from '../helpers/paths.js'
import { opensslMissing } from '../helpers/openssl-pki.js'
import { python3Missing, unansweredPort, until } from '../helpers/ports.js'
import { MeshCatalog } from '../../src/meshdir/catalog.js'
import { DEFAULT_TIMEOUTS } from '../../src/core/config/defaults.js'

const MB = 1024 * 1024
const hello = (name: string): Buffer => Buffer.from(readFileSync(join(ROOT, 'test', 'fixtures', 'client-hello', name), 'utf8').replace(/\s+/g, ''), 'hex')

/** A TLS client that verifies the server and sends `servername`: how it ended. */
async function tlsTry (port: number, servername: string | undefined, ca: string): Promise<{ secure: boolean, error: string | undefined }> {
  const s = tlsConnect({ host: '127.0.0.1', port, ca, ...(servername === undefined ? {} : { servername }) })
  let error: string | undefined
  let secure = false
  s.on('secureConnect', () => { secure = true })
  s.on('error', (e: Error & { code?: string }) => { error = e.code ?? e.message })
  await new Promise(resolve => s.once('close', resolve))
  return { secure, error }
}

t.test('web (dc1) -> mesh gateway dc1 -> mesh gateway dc2 -> db (dc2): 8 MB each way, sha256 equal', async t => {
  const mesh = await makeMesh(t, ['web'])
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }])
  const dc2 = await otherDatacenter(t, mesh, 'dc2')
  const appSide: { received?: Promise<{ bytes: number, sha256: string }>, sent?: Promise<string> } = {}
  const app = await startApp(t, (s: Socket) => { appSide.received = receiveAll(s); appSide.sent = sendBulk(s, 8 * MB) })
  // db's sidecar is of dc2: its SVID, issued from dc2's mesh dir, says dc/dc2; it registers in dc2's catalog.
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, meshDir: dc2.root })
  // Neither gateway is given a certificate or key: there is no option for one.
  const gw2 = await startMeshGateway(t, { datacenter: 'dc2', catalogDir: dc2.catalog })
  const gw1 = await startMeshGateway(t, { datacenter: 'dc1', catalogDir: mesh.layout.catalog, remote: { dc2: [gw2.at] } })
  // web's upstream db is in dc2 and reached through our datacenter's gateway (Consul's gateway mode "local").
  const web = await startSidecar(t, { service: 'web', meshDir: mesh.dir, datacenter: 'dc2', upstream: [`db:0=127.0.0.1:${gw1.at.port}`] })

  const client = connect({ host: '127.0.0.1', port: web.addrs.upstreams.get('db')!.port, allowHalfOpen: true })
  await once(client, 'connect')
  const [clientSent, clientGot] = await Promise.all([sendBulk(client, 8 * MB), receiveAll(client)])
  await once(client, 'close')
  const appGot = await appSide.received!
  t.equal(appGot.sha256, clientSent, 'web -> db: sha256 equal')
  t.equal(appGot.bytes, 8 * MB)
  t.equal(clientGot.sha256, await appSide.sent!, 'db -> web: sha256 equal')
  t.equal(clientGot.bytes, 8 * MB)

  const sni = `db.default.dc2.internal.${TD}`
  const closed1 = await gw1.sink.waitFor(l => l.msg === 'conn closed')
  const closed2 = await gw2.sink.waitFor(l => l.msg === 'conn closed')
  t.match(closed1, { sni, service: 'db', datacenter: 'dc2', via: 'mesh_gateway', target: `127.0.0.1:${gw2.at.port}`, reason: 'eof' }, 'gateway dc1 sent it on to dc2\'s gateway')
  t.match(closed2, { sni, service: 'db', datacenter: 'dc2', via: 'service', target: `127.0.0.1:${db.addrs.inbound!.port}`, reason: 'eof' }, 'gateway dc2 sent it to db from its catalog')
  t.ok((closed1.bytesToApp as number) > 8 * MB && (closed2.bytesFromApp as number) > 8 * MB, 'the gateways relayed TLS records (more than the plaintext)')
  const inbound = await db.sink.waitFor(l => l.msg === 'conn closed')
  t.match(inbound, { source: 'web', destination: 'db', intention: 'web => db', peer: `spiffe://${TD}/ns/default/dc/dc1/svc/web` }, 'db verified web itself, end to end')
  t.match(await web.sink.waitFor(l => l.msg === 'conn closed'), { peer: `spiffe://${TD}/ns/default/dc/dc2/svc/db` }, 'web verified db of dc2 itself')
  for (const gw of [gw1, gw2]) t.equal(gw.metrics.get('mesh_proxy_connections_total', { direction: 'mesh_gateway', result: 'allowed' }), 1)
  await web.stop()
  await gw1.stop()
  await gw2.stop()
  await db.stop()
})

t.test('the ClientHello and the bytes after it reach the instance unmodified: nothing is terminated', async t => {
  const mesh = await makeMesh(t, [])
  const dc2 = await otherDatacenter(t, mesh, 'dc2')
  const recorded: Array<Promise<Buffer>> = []
  // Not a TLS server: it records what arrives, then closes.
  const sink = await startApp(t, (s: Socket) => {
    recorded.push(new Promise(resolve => { const got: Buffer[] = []; s.on('data', (d: Buffer) => got.push(d)); s.on('end', () => { s.end(); resolve(Buffer.concat(got)) }) }))
  })
  const reg = await new MeshCatalog(dc2.catalog).register('db', '127.0.0.1', sink.port)
  t.teardown(() => reg.close())
  const gw = await startMeshGateway(t, { datacenter: 'dc2', catalogDir: dc2.catalog })
  const sent = Buffer.concat([hello('openssl-s_client-tls13.hex'), Buffer.from('not a TLS record: garbage the gateway cannot and need not read \x00\xff')])
  // Sent in two pieces: the ClientHello split mid-record, as a slow network would.
  const s = connect({ host: '127.0.0.1', port: gw.at.port, allowHalfOpen: true })
  await once(s, 'connect')
  s.write(sent.subarray(0, 50))
  s.write(sent.subarray(50))
  s.end()
  await once(s, 'close')
  t.same(await recorded[0]!, sent, 'byte for byte what the client sent')
  t.match(await gw.sink.waitFor(l => l.msg === 'conn closed'), { service: 'db', via: 'service', reason: 'eof', bytesToApp: sent.length })
  await gw.stop()
})

t.test('refused: a reset, a reason in the log, a count', async t => {
  const mesh = await makeMesh(t, [])
  const app = await startApp(t, echo)
  const reg = await new MeshCatalog(mesh.layout.catalog).register('db', '127.0.0.1', app.port)
  t.teardown(() => reg.close())
  const gw = await startMeshGateway(t, { datacenter: 'dc1', catalogDir: mesh.layout.catalog, remote: { dc2: [{ host: '127.0.0.1', port: 1 }] } })
  const ca = mesh.ca.certPem
  const cases: ReadonlyArray<[string | undefined, string, RegExp]> = [
    [`db.default.dc1.internal.other.consul`, 'foreign_trust_domain', /trust domain other\.consul, not ours/],
    [`nosuch.default.dc1.internal.${TD}`, 'unknown_service', /no healthy instance of nosuch in datacenter dc1/],
    [`db.default.dc9.internal.${TD}`, 'unknown_datacenter', /datacenter dc9 \(known: dc2; add --remote-gateway dc9=<host:port>\)/],
    ['db.example.com', 'unknown_sni', /is not <service>\.<namespace>\.<datacenter>\.internal/],
    [undefined, 'no_sni', /no server_name/],
    [`db.default.dc2.internal.${TD}`, 'upstream_unavailable', /no mesh gateway of dc2 answered/]
  ]
  for (const [sni, reason, why] of cases) {
    const r = await tlsTry(gw.at.port, sni, ca)
    t.match(r, { secure: false, error: 'ECONNRESET' }, `${sni ?? 'no SNI'}: reset`)
    t.match(await gw.sink.waitFor(l => l.msg === 'conn rejected' && l.reason === reason), { err: why }, `${reason}: logged with why`)
    t.equal(gw.metrics.get('mesh_proxy_connections_total', { direction: 'mesh_gateway', result: reason }), 1, `${reason}: counted`)
  }
  const http = await rawTry(gw.at.port, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))
  t.equal(http.reset, true, 'plain HTTP: reset')
  t.match(await gw.sink.waitFor(l => l.reason === 'not_tls'), { msg: 'conn rejected', err: /not a TLS handshake record/ })
  const bad = Buffer.from(hello('node-tls-connect.hex'))
  bad[5] = 2
  t.equal((await rawTry(gw.at.port, bad)).reset, true, 'a handshake that is not a ClientHello: reset')
  t.ok(await gw.sink.waitFor(l => l.reason === 'not_client_hello'))
  await rawTry(gw.at.port, hello('node-tls-connect.hex').subarray(0, 20), { end: true })
  t.match(await gw.sink.waitFor(l => l.reason === 'closed_before_client_hello'), { level: 20, err: /closed after 20 bytes/ }, 'a client that leaves mid-hello: debug')
  t.equal(gw.metrics.get('mesh_proxy_connections_total', { direction: 'mesh_gateway', result: 'allowed' }), 0, 'none was relayed')
  t.equal(app.accepted(), 0, 'the instance never saw a connection')
  await gw.stop()
})

t.test('no whole ClientHello within the handshake timeout: reset', async t => {
  const mesh = await makeMesh(t, [])
  const gw = await startMeshGateway(t, { datacenter: 'dc1', catalogDir: mesh.layout.catalog, timeouts: { ...DEFAULT_TIMEOUTS, handshakeTimeoutMs: 200 } })
  const r = await rawTry(gw.at.port, hello('node-tls-connect.hex').subarray(0, 100))
  t.equal(r.reset, true)
  t.match(await gw.sink.waitFor(l => l.msg === 'conn rejected'), { reason: 'handshake_timeout', err: /within handshakeTimeoutMs=200 \(100 bytes came\)/ })
  t.equal(gw.metrics.get('mesh_proxy_connections_total', { direction: 'mesh_gateway', result: 'handshake_timeout' }), 1)
  await gw.stop()
})

t.test('openssl s_client -> mesh gateway -> db\'s sidecar', { skip: opensslMissing() }, async t => {
  const mesh = await makeMesh(t, ['web', 'db'])
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }])
  const app = await startApp(t, echo)
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, meshDir: mesh.dir })
  const gw = await startMeshGateway(t, { datacenter: 'dc1', catalogDir: mesh.layout.catalog })
  const child = spawn('openssl', ['s_client', '-quiet', '-no_ign_eof', '-verify_return_error', '-connect', `127.0.0.1:${gw.at.port}`,
    '-servername', `db.default.dc1.internal.${TD}`, '-CAfile', mesh.layout.bundle, '-cert', mesh.layout.certFor('web'), '-key', mesh.layout.keyFor('web')], { stdio: ['pipe', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); if (out.endsWith('\n')) child.stdin.end() })
  child.stdin.write('hello through the gateway\n')
  const [code] = await once(child, 'exit') as [number]
  t.equal(code, 0)
  t.equal(out, 'hello through the gateway\n', 'echoed by db\'s app, TLS between openssl and db\'s sidecar')
  t.match(await db.sink.waitFor(l => l.msg === 'conn closed'), { source: 'web', peer: `spiffe://${TD}/ns/default/dc/dc1/svc/web` })
  t.match(await gw.sink.waitFor(l => l.msg === 'conn closed'), { via: 'service', service: 'db', reason: 'eof' })
  await gw.stop()
  await db.stop()
})

t.test('a ClientHello dribbled one byte per write is still read whole and routed', async t => {
  const mesh = await makeMesh(t, [])
  const dc2 = await otherDatacenter(t, mesh, 'dc2')
  const got: Buffer[] = []
  const sink = await startApp(t, (s: Socket) => { s.on('data', (d: Buffer) => got.push(d)); s.on('end', () => s.end()) })
  const reg = await new MeshCatalog(dc2.catalog).register('db', '127.0.0.1', sink.port)
  t.teardown(() => reg.close())
  const gw = await startMeshGateway(t, { datacenter: 'dc2', catalogDir: dc2.catalog })
  const h = hello('node-tls-connect.hex')
  const s = connect({ host: '127.0.0.1', port: gw.at.port, allowHalfOpen: true })
  s.setNoDelay(true)
  await once(s, 'connect')
  for (const b of h) await new Promise<void>(resolve => s.write(Buffer.from([b]), () => resolve()))
  s.end()
  await new Promise(resolve => s.once('close', resolve))
  t.same(Buffer.concat(got), h, 'all of it, in order')
  t.match(await gw.sink.waitFor(l => l.msg === 'conn closed'), { via: 'service', bytesToApp: h.length })
  await gw.stop()
})

t.test('--max-connections counts clients still sending their ClientHello', async t => {
  const mesh = await makeMesh(t, [])
  const gw = await startMeshGateway(t, { datacenter: 'dc1', catalogDir: mesh.layout.catalog, maxConnections: 1 })
  const first = connect({ host: '127.0.0.1', port: gw.at.port })
  first.on('error', () => {})
  await once(first, 'connect')
  first.write(hello('node-tls-connect.hex').subarray(0, 10)) // and then nothing: it holds its slot
  // Accepted once the gateway has seen it: wait for a second connection to be turned away.
  const second = await rawTry(gw.at.port, hello('node-tls-connect.hex'))
  t.equal(second.reset, true, 'over the limit: reset')
  t.match(await gw.sink.waitFor(l => l.msg === 'conn rejected' && l.reason === 'max_connections'), { listener: 'mesh_gateway', maxConnections: 1 })
  t.equal(gw.metrics.get('mesh_proxy_connections_total', { direction: 'mesh_gateway', result: 'over_limit' }), 1)
  first.destroy()
  await gw.stop()
})

t.test('resumption works through the gateway: the second connection resumes with web\'s PSK, end to end', async t => {
  const mesh = await makeMesh(t, ['web', 'db'])
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }])
  const app = await startApp(t, echo)
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, meshDir: mesh.dir })
  const gw = await startMeshGateway(t, { datacenter: 'dc1', catalogDir: mesh.layout.catalog })
  const web = await startSidecar(t, { service: 'web', meshDir: mesh.dir, upstream: [`db:0=127.0.0.1:${gw.at.port}`] })
  const port = web.addrs.upstreams.get('db')!.port
  for (const n of [1, 2]) t.equal(await echoRoundTrip(port, `round ${n}`), `round ${n}`)
  t.match(await web.sink.waitFor(l => l.msg === 'conn closed' && l.resumed === true), { psk: true, instance: `127.0.0.1:${gw.at.port}` }, 'the gateway carried the resumption as it carries everything')
  t.equal(web.sink.msgs('conn closed').filter(l => l.resumed === false).length, 1, 'after one full handshake')
  t.match(await db.sink.waitFor(l => l.msg === 'conn closed' && l.resumed === true), { source: 'web' }, 'and db\'s sidecar resumed it')
  await web.stop()
  await gw.stop()
  await db.stop()
})

t.test('close() does not wait for a dial that never completes: the client is reset, counted aborted', { skip: python3Missing() }, async t => {
  const target = { port: await unansweredPort(t) }
  const mesh = await makeMesh(t, [])
  // A connect deadline far beyond the test's own timeout: only the drain's end can stop the dial.
  const gw = await startMeshGateway(t, { datacenter: 'dc1', catalogDir: mesh.layout.catalog, remote: { dc2: [{ host: '127.0.0.1', port: target.port }] }, timeouts: { ...DEFAULT_TIMEOUTS, connectTimeoutMs: 3_600_000, drainTimeoutMs: 200 } })
  const c = connect(gw.at.port, '127.0.0.1')
  let reset = false
  c.on('error', (e: Error & { code?: string }) => { reset = e.code === 'ECONNRESET' })
  const closed = new Promise(resolve => c.once('close', resolve))
  c.write(hello('node-tls-connect.hex')) // SNI db.default.dc2.internal.<TD>: to dc2's gateway, which never answers
  await until(() => gw.metrics.get('mesh_proxy_connections_active', { direction: 'mesh_gateway' }) === 1)
  await gw.stop() // asserts the gauge and the registry are back to 0
  await closed
  t.equal(reset, true, 'the client is reset, not ended')
  t.equal(gw.metrics.get('mesh_proxy_connections_total', { direction: 'mesh_gateway', result: 'aborted' }), 1)
  t.match(gw.sink.msgs('conn closed')[0], { reason: 'aborted', service: 'db', datacenter: 'dc2' })
  t.equal(gw.sink.msgs('conn rejected').length, 0, 'not taken for an unreachable upstream')
})
