// Why: outbound, the server must be exactly the upstream's SPIFFE ID. A valid
// mesh certificate of another service (here: cache answering where db should
// be) is refused during the handshake and logged; no byte of the app goes out.
import t from 'tap'
import { connect } from 'node:net'
import { makeMesh, startApp, startSidecar, echo } from '../helpers/mesh.js'

t.test('upstream db served by a cache certificate is refused', async t => {
  const mesh = await makeMesh(t, ['web', 'cache'])
  await mesh.writeIntentions([{ source: 'web', destination: '*', action: 'allow' }])
  const app = await startApp(t, echo)
  const cache = await startSidecar(t, { service: 'cache', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, meshDir: mesh.dir })
  const web = await startSidecar(t, { service: 'web', upstream: [`db:0=127.0.0.1:${cache.addrs.inbound!.port}`], meshDir: mesh.dir })
  const c = connect(web.addrs.upstreams.get('db')!.port, '127.0.0.1')
  let got = ''
  c.on('data', (d: Buffer) => { got += d.toString() })
  c.on('error', () => {})
  c.write('for db only')
  await new Promise(resolve => c.on('close', resolve))
  t.equal(got, '', 'nothing came back')
  const refused = await web.sink.waitFor(l => l.msg === 'conn refused')
  t.equal(refused.reason, 'wrong_server_identity')
  t.match(refused.err, /server presented spiffe:\/\/.*\/svc\/cache, expected spiffe:\/\/.*\/svc\/db/)
  t.equal(app.accepted(), 0, 'the cache app saw nothing')
  t.equal(web.metrics.get('mesh_proxy_connections_total', { direction: 'outbound', result: 'tls_error' }), 1)
  await web.stop()
  await cache.stop()
})
