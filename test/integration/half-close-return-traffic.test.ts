// Why: protocols like `nc -q`, HTTP/1.0 uploads and rsync close their write side
// and keep reading. A proxy that closes both sockets on the first EOF (consul
// conn.go) truncates the answer. Port of ghostunnel's
// test-client-half-close-return-traffic.py, in both directions, through two
// sidecars (plain -> mTLS -> plain).
import t, { type Test } from 'tap'
import { connect, type Socket } from 'node:net'
import { once } from 'node:events'
import { makeMesh, startApp, startSidecar } from '../helpers/mesh.js'

async function pair (t: Test, onApp: (s: Socket) => void): Promise<{ client: Socket, web: Awaited<ReturnType<typeof startSidecar>>, db: Awaited<ReturnType<typeof startSidecar>> }> {
  const mesh = await makeMesh(t)
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }])
  const app = await startApp(t, onApp)
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, meshDir: mesh.dir })
  const web = await startSidecar(t, { service: 'web', upstream: ['db:0'], meshDir: mesh.dir })
  const client = connect({ port: web.addrs.upstreams.get('db')!.port, host: '127.0.0.1', allowHalfOpen: true })
  await once(client, 'connect')
  return { client, web, db }
}

const readAll = (s: Socket): Promise<string> => new Promise(resolve => {
  let got = ''
  s.on('data', (d: Buffer) => { got += d.toString() })
  s.once('end', () => resolve(got))
})

t.test('client half-closes; the app still answers after seeing EOF', async t => {
  let appSaw = ''
  const { client, web, db } = await pair(t, s => {
    readAll(s).then(req => { appSaw = req; s.end(`answer to ${req}`) }, () => {})
  })
  client.end('question')
  const answer = await readAll(client)
  t.equal(appSaw, 'question', 'app got the request and its EOF')
  t.equal(answer, 'answer to question', 'return traffic arrives after the client half-closed')
  await once(client, 'close')
  const closed = await db.sink.waitFor(l => l.msg === 'conn closed')
  t.equal(closed.reason, 'eof')
  await web.stop()
  await db.stop()
})

t.test('app half-closes first; the client can still send', async t => {
  let appGot: Promise<string> | undefined
  const { client, web, db } = await pair(t, s => {
    appGot = readAll(s)
    s.end('banner')
  })
  const banner = await readAll(client)
  t.equal(banner, 'banner', 'client sees the app\'s EOF')
  client.end('late data after the server finished')
  await once(client, 'close')
  t.equal(await appGot, 'late data after the server finished', 'data sent after the other side half-closed arrives')
  await web.stop()
  await db.stop()
})

t.test('a peer that ends right after the handshake is not left hanging', async t => {
  // The EOF can arrive while Node is still reading to finish the handshake,
  // before the relay is attached; the relay must notice it all the same.
  const mesh = await makeMesh(t)
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }])
  const app = await startApp(t, s => { s.pipe(s) })
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, meshDir: mesh.dir })
  const web = await mesh.leaf('web')
  const { connect: tlsConnect } = await import('node:tls')
  for (let i = 0; i < 5; i++) {
    const s = tlsConnect({ port: db.addrs.inbound!.port, host: '127.0.0.1', servername: 'db', ca: mesh.ca.certPem, cert: web.certPem, key: web.keyPem }, () => { s.end() })
    s.resume()
    await once(s, 'close')
  }
  const closed = await db.sink.waitFor(l => l.msg === 'conn closed')
  t.equal(closed.reason, 'eof')
  await db.stop()
  t.same(db.sink.msgs('conn closed').map(l => l.reason), Array(5).fill('eof'), 'every connection closed on its own EOF, none by the drain')
})
