// Why: a silent client or a port scanner sending garbage must not hold a socket
// past handshakeTimeoutMs (Consul's unused HandshakeTimeoutMs is the cautionary
// tale), and must not hurt the process: a real peer is served right after.
import t from 'tap'
import { connect } from 'node:net'
import { once } from 'node:events'
import { makeMesh, startApp, startSidecar, mtlsTry, echo } from '../helpers/mesh.js'

t.test('silent client is closed by the handshake deadline; garbage is refused', async t => {
  const mesh = await makeMesh(t)
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }])
  const app = await startApp(t, echo)
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, meshDir: mesh.dir, handshakeTimeout: '300ms' })
  const port = db.addrs.inbound!.port

  const silent = connect(port, '127.0.0.1')
  silent.on('error', () => {})
  await once(silent, 'close')
  const line = await db.sink.waitFor(l => l.msg === 'conn rejected' && /did not complete within handshakeTimeoutMs=300/.test(String(l.err)))
  t.ok(line, 'closed by our deadline, and the log says which timeout')

  // A peer that dribbles bytes is still bound by the absolute deadline.
  const dribble = connect(port, '127.0.0.1')
  dribble.on('error', () => {})
  dribble.write(Buffer.from([0x16, 0x03, 0x01]))
  await once(dribble, 'close')

  const garbage = connect(port, '127.0.0.1')
  garbage.on('error', () => {})
  garbage.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
  await once(garbage, 'close')

  const ok = await mtlsTry(port, await mesh.leaf('web'), mesh.ca.certPem, 'fine')
  t.equal(ok.received, 'fine', 'the sidecar still serves real peers')
  t.equal(app.accepted(), 1, 'only the real peer reached the app')
  await db.stop()
})

t.test('outbound: an upstream that accepts TCP but never speaks TLS', async t => {
  const mesh = await makeMesh(t)
  const { createServer } = await import('node:net')
  const held = new Set<import('node:net').Socket>()
  const silent = createServer(s => { held.add(s); s.on('error', () => {}) })
  await new Promise<void>(resolve => silent.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { for (const s of held) s.destroy(); silent.close() })
  const port = (silent.address() as { port: number }).port
  const web = await startSidecar(t, { service: 'web', upstream: [`db:0=127.0.0.1:${port}`], meshDir: mesh.dir, handshakeTimeout: '300ms' })
  const c = connect(web.addrs.upstreams.get('db')!.port, '127.0.0.1')
  c.on('error', () => {})
  c.write('anyone there?')
  await new Promise(resolve => c.on('close', resolve))
  const refused = await web.sink.waitFor(l => l.msg === 'conn refused')
  t.match(refused.err, /did not complete within handshakeTimeoutMs=300/, 'refused by the handshake deadline, which the log names')
  await web.stop()
})

t.test('shutdown does not wait for an upstream handshake that never completes (plain and tunnel)', async t => {
  const mesh = await makeMesh(t)
  const { createServer } = await import('node:net')
  const held = new Set<import('node:net').Socket>()
  let accepted: () => void = () => {}
  const silent = createServer(s => { held.add(s); s.on('error', () => {}); accepted() })
  await new Promise<void>(resolve => silent.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { for (const s of held) s.destroy(); silent.close() })
  const port = (silent.address() as { port: number }).port
  for (const tunnel of [false, true]) {
    // A handshake deadline far beyond the test's own timeout: only the drain can end it.
    const web = await startSidecar(t, { service: 'web', upstream: [`db:0=127.0.0.1:${port}`], ...(tunnel ? { upstreamTunnel: ['db'] } : {}), meshDir: mesh.dir, admin: 'off', handshakeTimeout: '1h', drainTimeout: '200ms' })
    const dialed = new Promise<void>(resolve => { accepted = resolve })
    const c = connect(web.addrs.upstreams.get('db')!.port, '127.0.0.1')
    let reset = false
    c.on('error', (e: Error & { code?: string }) => { reset = e.code === 'ECONNRESET' })
    const closed = new Promise(resolve => c.once('close', resolve))
    c.write('anyone there?')
    await dialed
    await web.stop()
    t.pass(`${tunnel ? 'tunnel' : 'plain'}: stop() returned with the handshake still unanswered`)
    t.match(web.sink.msgs('conn refused')[0], { upstream: 'db' }, 'the waiting connection is refused, and logged')
    await closed
    t.equal(reset, true, 'its app is reset, not ended as if answered')
    t.equal(web.metrics.get('mesh_proxy_connections_active', { direction: 'outbound' }), 0)
  }
})
