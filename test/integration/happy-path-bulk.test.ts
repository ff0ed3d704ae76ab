// Why: the product promise. web -> db through two sidecars carries 50 MB each
// way byte for byte (sha256 equal at both ends), with the upstream resolved
// through the mesh dir catalog, and both ends' logs have exactly the two
// per-connection lines.
import t from 'tap'
import { connect, type Socket } from 'node:net'
import { once } from 'node:events'
import { makeMesh, startApp, startSidecar } from '../helpers/mesh.js'
import { sendBulk, receiveAll } from '../helpers/data.js'

const MB = 1024 * 1024

t.test('50 MB each way web -> db, sha256 equal at both ends', async t => {
  const mesh = await makeMesh(t)
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }])
  const appSide: { received?: Promise<{ bytes: number, sha256: string }>, sent?: Promise<string> } = {}
  const app = await startApp(t, (s: Socket) => {
    appSide.received = receiveAll(s)
    appSide.sent = sendBulk(s, 50 * MB)
  })
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, meshDir: mesh.dir })
  const web = await startSidecar(t, { service: 'web', upstream: ['db:0'], meshDir: mesh.dir })
  const port = web.addrs.upstreams.get('db')!.port

  const client = connect({ host: '127.0.0.1', port, allowHalfOpen: true })
  await once(client, 'connect')
  const [clientSent, clientGot] = await Promise.all([sendBulk(client, 50 * MB), receiveAll(client)])
  await once(client, 'close')
  const appGot = await appSide.received!
  const appSent = await appSide.sent!

  t.equal(appGot.bytes, 50 * MB, 'app received 50 MB')
  t.equal(appGot.sha256, clientSent, 'client -> app bytes identical')
  t.equal(clientGot.bytes, 50 * MB, 'client received 50 MB')
  t.equal(clientGot.sha256, appSent, 'app -> client bytes identical')

  const closedIn = await db.sink.waitFor(l => l.msg === 'conn closed')
  const closedOut = await web.sink.waitFor(l => l.msg === 'conn closed')
  t.equal(closedIn.bytesToApp, 50 * MB, 'inbound log counts bytes to the app')
  t.equal(closedIn.bytesFromApp, 50 * MB, 'inbound log counts bytes from the app')
  t.equal(closedOut.bytesFromApp, 50 * MB, 'outbound log counts bytes from the app')
  t.equal(closedIn.reason, 'eof')
  t.match(closedIn, { source: 'web', destination: 'db', intention: 'web => db' }, 'the close line is a complete access-log line')
  t.match(closedOut, { peer: /\/svc\/db$/ })
  const opened = db.sink.msgs('conn opened')
  t.equal(opened.length, 1, 'one opened line inbound')
  t.match(opened[0], { source: 'web', destination: 'db', intention: 'web => db', peer: `spiffe://${'11111111-2222-3333-4444-555555555555.consul'}/ns/default/dc/dc1/svc/web` })
  t.equal(db.sink.lines.filter(l => l.conn === opened[0]!.conn).length, 2, 'exactly two lines for the connection')
  t.equal(db.metrics.get('mesh_proxy_connections_total', { direction: 'inbound', result: 'allowed' }), 1)
  await web.stop()
  await db.stop()
})
