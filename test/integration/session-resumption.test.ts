// Why: outbound sidecars resume TLS sessions (no certificates, no signatures
// on the second handshake to the same instance), and a resumed connection must
// still be identified and still pass the intention check; a new leaf on either
// side must end resumption (new ticket keys / dropped tickets), never a connection.
import t from 'tap'
import { connect } from 'node:net'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { makeMesh, startApp, startSidecar, echo, type TestSidecar } from '../helpers/mesh.js'

/** One app connection through web's upstream port: send, read the echo, close. Resolves with what came back. */
async function roundTrip (web: TestSidecar, msg: string): Promise<string> {
  const s = connect(web.addrs.upstreams.get('db')!.port, '127.0.0.1')
  s.on('error', () => {})
  let got = ''
  s.on('data', (d: Buffer) => { got += d.toString(); if (got === msg) s.end() })
  s.write(msg)
  await once(s, 'close')
  return got
}

t.test('second connection resumes, keeps identity and intentions; rotation ends resumption', async t => {
  const mesh = await makeMesh(t)
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }], 'deny', 1)
  const app = await startApp(t, echo)
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, meshDir: mesh.dir })
  const web = await startSidecar(t, { service: 'web', upstream: ['db:0'], meshDir: mesh.dir })
  const closedOut = (n: number) => web.sink.waitFor(l => l.msg === 'conn closed' && l.listener === 'outbound' && web.sink.msgs('conn closed').indexOf(l) === n - 1)
  const closedIn = (n: number) => db.sink.waitFor(l => l.msg === 'conn closed' && db.sink.msgs('conn closed').indexOf(l) === n - 1)

  t.equal(await roundTrip(web, 'one'), 'one')
  t.match(await closedOut(1), { resumed: false, peer: /\/svc\/db$/ }, 'first connection: full handshake')
  t.match(await closedIn(1), { resumed: false, source: 'web' })

  t.equal(await roundTrip(web, 'two'), 'two')
  t.match(await closedOut(2), { resumed: true, peer: /\/svc\/db$/ }, 'second connection: resumed, server identity carried by the ticket')
  t.match(await closedIn(2), { resumed: true, source: 'web', intention: 'web => db' }, 'the inbound side still names the source and the intention')

  // A resumed connection is still subject to the intention check.
  const reloaded = db.sink.waitFor(l => l.msg === 'intentions reloaded' && l.version === 2)
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'deny' }], 'deny', 2)
  await reloaded
  t.equal(await roundTrip(web, 'three'), '', 'denied although resumed')
  t.match(await db.sink.waitFor(l => l.msg === 'conn denied'), { resumed: true, source: 'web', intention: 'web => db' })
  t.equal(app.accepted(), 2, 'the app never saw the denied connection')
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }], 'deny', 3)
  await db.sink.waitFor(l => l.msg === 'intentions reloaded' && l.version === 3)

  // db gets a new leaf: its new secure context has new ticket keys, web's ticket is refused, a full handshake follows.
  const newLeaf = async (service: string, sidecar: TestSidecar): Promise<void> => {
    const leaf = await mesh.leaf(service)
    await writeFile(mesh.layout.keyFor(service), leaf.keyPem, { mode: 0o600 })
    await writeFile(mesh.layout.certFor(service), leaf.certPem)
    await sidecar.sidecar.reload()
  }
  await newLeaf('db', db)
  t.equal(await roundTrip(web, 'four'), 'four')
  t.match(await closedOut(4), { resumed: false }, 'after db rotated: full handshake, connection fine')
  t.equal(await roundTrip(web, 'five'), 'five')
  t.match(await closedOut(5), { resumed: true }, 'and the new ticket resumes again')
  t.equal(await roundTrip(web, 'five and a half'), 'five and a half')
  t.match(await closedOut(6), { resumed: true }, 'and keeps resuming (Node\'s server sends no new ticket on a resumed connection: the same one is offered)')

  // web gets a new leaf: its tickets belong to the old generation and are dropped.
  await newLeaf('web', web)
  t.equal(await roundTrip(web, 'six'), 'six')
  t.match(await closedOut(7), { resumed: false }, 'after web rotated: no ticket offered')
  t.match(await closedIn(6), { resumed: false, peer: /\/svc\/web$/ })

  await web.stop()
  await db.stop()
})
