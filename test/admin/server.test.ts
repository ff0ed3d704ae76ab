// Why: operators and Kubernetes read the admin endpoint: /ready must follow
// the lifecycle (starting -> ready -> draining), /metrics must move as
// connections are allowed, denied and fail, and the views must show what the
// sidecar really uses.
import t, { type Test } from 'tap'
import { connect } from 'node:net'
import { once } from 'node:events'
import { AdminServer, PROMETHEUS_CONTENT_TYPE, sidecarView } from '../../src/admin/server.js'
import { Sidecar } from '../../src/sidecar/sidecar.js'
import { MetricsRegistry } from '../../src/metrics/metrics.js'
import { resolveConfig } from '../../src/core/config/resolve.js'
import { makeMesh, startApp, startSidecar, captureLogger, mtlsTry, echo, type TestMesh, type TestSidecar } from '../helpers/mesh.js'
import type { IssuedCert } from '../../src/ca/issue.js'

async function get (port: number, path: string): Promise<{ status: number, type: string, body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`)
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() }
}

/** Parse exposition text into { 'name{labels}': value }. */
function parse (text: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const l of text.split('\n')) {
    if (l === '' || l.startsWith('#')) continue
    const i = l.lastIndexOf(' ')
    out.set(l.slice(0, i), Number(l.slice(i + 1)))
  }
  return out
}

t.test('ready transitions, metrics and views', async t => {
  const mesh = await makeMesh(t)
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }], 'deny', 3)
  const app = await startApp(t, echo)
  const config = resolveConfig({ flags: { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, meshDir: mesh.dir, drainTimeout: '30s' }, env: {}, file: null })
  const { logger, sink } = captureLogger()
  const metrics = new MetricsRegistry()
  const sidecar = new Sidecar({ config, logger, metrics })
  const admin = new AdminServer({ view: sidecarView(sidecar, metrics), logger })
  t.teardown(async () => { await sidecar.destroy(); await admin.close() })
  const { port } = await admin.start({ host: '127.0.0.1', port: 0 })

  const starting = await get(port, '/ready')
  t.equal(starting.status, 503)
  t.match(JSON.parse(starting.body), { state: 'starting', ready: false })
  const addrs = await sidecar.start()
  t.same(JSON.parse((await get(port, '/ready')).body), { state: 'ready', ready: true })
  t.equal((await get(port, '/healthz')).status, 200)

  const web = await mesh.leaf('web')
  t.equal((await mtlsTry(addrs.inbound!.port, web, mesh.ca.certPem, 'a')).received, 'a')
  await mtlsTry(addrs.inbound!.port, await mesh.leaf('billing'), mesh.ca.certPem)
  await mtlsTry(addrs.inbound!.port, null, mesh.ca.certPem)
  await sink.waitFor(l => l.msg === 'conn rejected')
  const m = await get(port, '/metrics')
  t.equal(m.type, PROMETHEUS_CONTENT_TYPE)
  const v = parse(m.body)
  t.equal(v.get('mesh_proxy_connections_total{direction="inbound",result="allowed"}'), 1)
  t.equal(v.get('mesh_proxy_connections_total{direction="inbound",result="denied_intention"}'), 1)
  t.equal(v.get('mesh_proxy_connections_total{direction="inbound",result="tls_error"}'), 1)
  t.equal(v.get('mesh_proxy_bytes_total{direction="inbound",flow="to_app"}'), 1)
  t.equal(v.get('mesh_proxy_intentions_version'), 3)
  t.equal(v.get('mesh_proxy_connection_duration_seconds_count{direction="inbound"}'), 1)
  t.equal(v.get(`mesh_proxy_cert_expiry_timestamp_seconds{spiffe_id="${sidecar.tls.svid.id.uri}"}`), Math.floor(sidecar.tls.svid.chain[0]!.notAfter.getTime() / 1000))

  t.match(JSON.parse((await get(port, '/config')).body), { service: 'db', timeouts: { drainTimeoutMs: 30000 } })
  const certs = JSON.parse((await get(port, '/certs')).body)
  t.match(certs, { spiffeId: /\/svc\/db$/, serial: sidecar.tls.svid.chain[0]!.serial })
  t.equal(certs.roots.length, 1)
  t.notMatch((await get(port, '/certs')).body, /PRIVATE KEY/)
  t.match(JSON.parse((await get(port, '/intentions')).body), { index: 3, intentions: [{ source: 'web', destination: 'db' }] })
  t.equal((await get(port, '/nope')).status, 404)

  // Draining: a live connection holds the drain open; /ready says so.
  const { connect: tlsConnect } = await import('node:tls')
  const live = tlsConnect({ port: addrs.inbound!.port, host: '127.0.0.1', servername: 'db', ca: mesh.ca.certPem, cert: web.certPem, key: web.keyPem })
  live.write('hold')
  await once(live, 'data')
  const closing = sidecar.close()
  const draining = await get(port, '/ready')
  t.equal(draining.status, 503)
  t.match(JSON.parse(draining.body), { state: 'draining' })
  // Refused outright, or (if it raced the listener's close) dropped before its handshake.
  const acceptedBefore = app.accepted()
  const refused = connect(addrs.inbound!.port, '127.0.0.1')
  refused.on('error', () => {})
  await new Promise(resolve => refused.on('close', resolve))
  t.equal(app.accepted(), acceptedBefore, 'no new connections while draining')
  live.write('still works')
  const [d] = await once(live, 'data') as [Buffer]
  t.equal(d.toString(), 'still works', 'the live connection finishes its work')
  live.end()
  await closing
  t.match(JSON.parse((await get(port, '/ready')).body), { state: 'stopped' })
})

/** db's sidecar in front of an echo app, web -> db allowed, with `flags` added; and a web leaf to connect with. */
async function limitedDb (t: Test, flags: Record<string, unknown>): Promise<TestSidecar & { mesh: TestMesh, web: IssuedCert }> {
  const mesh = await makeMesh(t)
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }])
  const app = await startApp(t, echo)
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, meshDir: mesh.dir, ...flags })
  return { ...db, mesh, web: await mesh.leaf('web') }
}

t.test('--max-connections refuses over the limit, logs and counts', async t => {
  const { addrs, sink, metrics, stop, mesh, web } = await limitedDb(t, { maxConnections: '1' })
  const { connect: tlsConnect } = await import('node:tls')
  const first = tlsConnect({ port: addrs.inbound!.port, host: '127.0.0.1', servername: 'db', ca: mesh.ca.certPem, cert: web.certPem, key: web.keyPem })
  first.write('one')
  await once(first, 'data')
  const second = await mtlsTry(addrs.inbound!.port, web, mesh.ca.certPem, 'two')
  t.equal(second.received, '', 'second connection refused')
  const line = await sink.waitFor(l => l.msg === 'conn rejected' && l.reason === 'max_connections')
  t.equal(line.maxConnections, 1)
  t.equal(metrics.get('mesh_proxy_connections_total', { direction: 'inbound', result: 'over_limit' }), 1)
  first.end()
  await new Promise(resolve => first.on('close', resolve))
  await sink.waitFor(l => l.msg === 'conn closed')
  t.equal((await mtlsTry(addrs.inbound!.port, web, mesh.ca.certPem, 'three')).received, 'three', 'room again once the first closed')
  await stop()
})

t.test('--source-rate-limit refuses a flooding source, logs and counts', async t => {
  // 2 per hour: the third connection within the test is over the limit whatever the machine's speed.
  const { addrs, sink, metrics, stop, mesh, web } = await limitedDb(t, { sourceRateLimit: '2/h' })
  t.equal((await mtlsTry(addrs.inbound!.port, web, mesh.ca.certPem, 'one')).received, 'one')
  t.equal((await mtlsTry(addrs.inbound!.port, web, mesh.ca.certPem, 'two')).received, 'two')
  t.equal((await mtlsTry(addrs.inbound!.port, web, mesh.ca.certPem, 'three')).received, '', 'third refused')
  t.match(await sink.waitFor(l => l.msg === 'conn rejected'), { reason: 'rate_limited', remote: /^127\.0\.0\.1:/ })
  t.equal(metrics.get('mesh_proxy_connections_total', { direction: 'inbound', result: 'rate_limited' }), 1)
  await stop()
})
