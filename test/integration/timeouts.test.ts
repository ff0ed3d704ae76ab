// Why: every named timeout is enforced in one place and proved here through a
// real pair of sidecars: idleTimeoutMs (no byte either way), closeTimeoutMs
// (after a half-close the other side never finishes), maxConnLifetimeMs, and
// connectTimeoutMs's sibling, an app that refuses (connect error). Each
// closes the connection with its reason in the 'conn closed' line.
import t, { type Test } from 'tap'
import { connect, type Socket } from 'node:net'
import { makeMesh, startApp, startSidecar, type TestSidecar } from '../helpers/mesh.js'

async function setup (t: Test, dbFlags: Record<string, unknown>, onApp: (s: Socket) => void = () => {}): Promise<{ port: number, db: TestSidecar, web: TestSidecar }> {
  const mesh = await makeMesh(t)
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }])
  const app = await startApp(t, onApp)
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, meshDir: mesh.dir, ...dbFlags })
  const web = await startSidecar(t, { service: 'web', upstream: ['db:0'], meshDir: mesh.dir })
  return { port: web.addrs.upstreams.get('db')!.port, db, web }
}

// Like an ordinary client: when the proxy ends the stream, end ours too.
const closed = (s: Socket): Promise<void> => new Promise(resolve => {
  s.on('error', () => {})
  s.on('end', () => s.end())
  s.on('close', () => resolve())
})

for (const [name, flags, act, reason] of [
  ['idle timeout closes a silent connection', { idleTimeout: '200ms' }, (c: Socket) => { c.write('x') }, 'idle_timeout'],
  ['close timeout ends a half-closed connection whose other side never ends', { closeTimeout: '200ms', idleTimeout: '1h' }, (c: Socket) => { c.end('x') }, 'close_timeout'],
  ['max connection lifetime caps a busy connection', { maxConnLifetime: '300ms' }, (c: Socket) => { c.write('x') }, 'max_lifetime']
] as const) {
  t.test(name, async t => {
    // The app reads but never answers and never ends.
    const { port, db, web } = await setup(t, flags, s => { s.resume() })
    const c = connect({ port, host: '127.0.0.1', allowHalfOpen: true })
    act(c)
    await closed(c)
    const line = await db.sink.waitFor(l => l.msg === 'conn closed')
    t.equal(line.reason, reason)
    await web.stop()
    await db.stop()
  })
}

t.test('app refusing connections: conn closed with the connect error', async t => {
  const srv = (await import('node:net')).createServer()
  await new Promise<void>(resolve => srv.listen(0, '127.0.0.1', resolve))
  const deadPort = (srv.address() as { port: number }).port
  await new Promise<void>(resolve => srv.close(() => resolve()))
  const mesh = await makeMesh(t)
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }])
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${deadPort}`, meshDir: mesh.dir })
  const web = await startSidecar(t, { service: 'web', upstream: ['db:0'], meshDir: mesh.dir })
  const c = connect(web.addrs.upstreams.get('db')!.port, '127.0.0.1')
  c.write('x')
  await closed(c)
  const line = await db.sink.waitFor(l => l.msg === 'conn closed')
  t.equal(line.reason, 'app_connect_failed')
  t.match(line.err, /ECONNREFUSED/)
  t.equal(db.metrics.get('mesh_proxy_upstream_connect_errors_total', { upstream: 'local_app' }), 1)
  await web.stop()
  await db.stop()
})
