// Why: a deny intention must close the connection before any byte reaches the
// app, and the log must name source, destination, the deciding intention and
// the reason, so operators can see why.
import t from 'tap'
import { makeMesh, startApp, startSidecar, mtlsTry, echo } from '../helpers/mesh.js'

t.test('billing -> db denied; web -> db allowed', async t => {
  const mesh = await makeMesh(t)
  await mesh.writeIntentions([
    { source: 'web', destination: 'db', action: 'allow' },
    { source: 'billing', destination: 'db', action: 'deny', description: 'billing goes through web' }
  ])
  const app = await startApp(t, echo)
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, meshDir: mesh.dir })
  const billing = await startSidecar(t, { service: 'billing', upstream: ['db:0'], meshDir: mesh.dir })
  const { connect } = await import('node:net')
  const s = connect(billing.addrs.upstreams.get('db')!.port, '127.0.0.1')
  let got = ''
  s.on('data', (d: Buffer) => { got += d.toString() })
  s.on('error', () => {})
  s.write('secret')
  await new Promise(resolve => s.on('close', resolve))
  t.equal(got, '', 'billing gets nothing back')
  const denied = await db.sink.waitFor(l => l.msg === 'conn denied')
  t.match(denied, { source: 'billing', destination: 'db', intention: 'billing => db', precedence: 9 })
  t.match(denied.reason, /deny, precedence 9/)
  t.equal(app.accepted(), 0, 'app never saw the denied connection')
  t.equal(db.metrics.get('mesh_proxy_connections_total', { direction: 'inbound', result: 'denied_intention' }), 1)

  const unknown = await mtlsTry(db.addrs.inbound!.port, await mesh.leaf('cache'), mesh.ca.certPem)
  t.equal(unknown.received, '', 'no intention for cache -> db: default deny')
  const byDefault = await db.sink.waitFor(l => l.msg === 'conn denied' && l.source === 'cache')
  t.equal(byDefault.intention, 'default policy')
  t.equal(app.accepted(), 0)
  await billing.stop()
  await db.stop()
})
