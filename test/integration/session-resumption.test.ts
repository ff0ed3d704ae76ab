// Why: outbound sidecars resume (no certificates, no signatures on the second
// handshake to the same instance: a PSK between two mesh-proxy sidecars, a ticket
// with other servers), and a resumed connection must still be identified and
// still pass the intention check; a new leaf on either side must end resumption
// (new ticket keys and PSK table / dropped tickets and PSKs), never a connection.
import t from 'tap'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { makeMesh, startApp, startSidecar, echo, echoRoundTrip, appTry, type TestMesh, type TestSidecar } from '../helpers/mesh.js'

/** One app connection through web's upstream port: send, read the echo, close. Resolves with what came back. */
const roundTrip = (web: TestSidecar, msg: string): Promise<string> => echoRoundTrip(web.addrs.upstreams.get('db')!.port, msg)

/** `service` gets a new leaf in the mesh dir, and its sidecar takes it up. */
async function rotate (mesh: TestMesh, service: string, sidecar: TestSidecar): Promise<void> {
  const leaf = await mesh.leaf(service)
  await writeFile(mesh.layout.keyFor(service), leaf.keyPem, { mode: 0o600 })
  await writeFile(mesh.layout.certFor(service), leaf.certPem)
  await sidecar.sidecar.reload()
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
  t.match(await closedOut(1), { resumed: false, psk: false, peer: /\/svc\/db$/ }, 'first connection: full handshake')
  t.match(await closedIn(1), { resumed: false, source: 'web' })

  t.equal(await roundTrip(web, 'two'), 'two')
  t.match(await closedOut(2), { resumed: true, psk: true, peer: /\/svc\/db$/ }, 'second connection: resumed with the PSK of the first, server identity carried with it')
  t.match(await closedIn(2), { resumed: true, psk: true, source: 'web', intention: 'web => db' }, 'the inbound side still names the source and the intention')

  // A resumed connection is still subject to the intention check.
  const reloaded = db.sink.waitFor(l => l.msg === 'intentions reloaded' && l.version === 2)
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'deny' }], 'deny', 2)
  await reloaded
  const denied = await appTry(web.addrs.upstreams.get('db')!.port, 'three')
  t.equal(denied.got, '', 'denied although resumed')
  t.equal(denied.reset, true, 'the app\'s connection is reset, not ended (the denying inbound resets, on every Node)')
  t.match(await web.sink.waitFor(l => l.msg === 'conn refused' && l.listener === 'outbound'), { reason: 'peer_refused', resumed: true }, 'web\'s log says the peer refused it (a refusal, not a closed connection)')
  t.match(await db.sink.waitFor(l => l.msg === 'conn denied'), { resumed: true, psk: true, source: 'web', intention: 'web => db' }, 'a PSK connection is checked against the intentions too')
  t.equal(app.accepted(), 2, 'the app never saw the denied connection')
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }], 'deny', 3)
  await db.sink.waitFor(l => l.msg === 'intentions reloaded' && l.version === 3)

  // db gets a new leaf: its new secure context has new ticket keys, web's ticket is refused, a full handshake follows.
  await rotate(mesh, 'db', db)
  t.equal(await roundTrip(web, 'four'), 'four')
  t.match(await closedOut(3), { resumed: false, psk: false }, 'after db rotated: its PSKs are gone, so a full handshake, connection fine')
  t.equal(await roundTrip(web, 'five'), 'five')
  t.match(await closedOut(4), { resumed: true, psk: true }, 'declined once, then the PSK of that full handshake resumes again')
  t.equal(await roundTrip(web, 'five and a half'), 'five and a half')
  t.match(await closedOut(5), { resumed: true }, 'and keeps resuming (Node\'s server sends no new ticket on a resumed connection: the same one is offered)')

  // web gets a new leaf: its tickets belong to the old generation and are dropped.
  await rotate(mesh, 'web', web)
  t.equal(await roundTrip(web, 'six'), 'six')
  t.match(await closedOut(6), { resumed: false }, 'after web rotated: no ticket offered')
  t.match(await closedIn(6), { resumed: false, peer: /\/svc\/web$/ })

  await web.stop()
  await db.stop()
})

t.test('an upstream that is not mesh-proxy declines the PSK: after two declines, tickets', async t => {
  const mesh = await makeMesh(t)
  const { createServer } = await import('node:tls')
  const leaf = await mesh.leaf('db')
  // A plain TLS server with db's SVID (as an Envoy sidecar would be): it knows no PSK of ours.
  const plain = createServer({ cert: leaf.certPem, key: leaf.keyPem, ca: mesh.ca.certPem, requestCert: true, rejectUnauthorized: true }, s => { s.pipe(s) })
  plain.listen(0, '127.0.0.1')
  await once(plain, 'listening')
  t.teardown(() => plain.close())
  const port = (plain.address() as { port: number }).port
  const web = await startSidecar(t, { service: 'web', upstream: [`db:0=127.0.0.1:${port}`], meshDir: mesh.dir })
  const got: Array<{ resumed: unknown, psk: unknown }> = []
  for (let i = 1; i <= 5; i++) {
    t.equal(await roundTrip(web, `m${i}`), `m${i}`)
    const line = await web.sink.waitFor(l => l.msg === 'conn closed' && web.sink.msgs('conn closed').indexOf(l) === i - 1)
    got.push({ resumed: line.resumed, psk: line.psk })
  }
  t.same(got, [
    { resumed: false, psk: false }, // full handshake: its PSK kept
    { resumed: false, psk: false }, // PSK offered, declined once: full handshake (it may have restarted), its PSK kept
    { resumed: false, psk: false }, // declined again: tickets only from now on (a PSK offer takes no ticket)
    { resumed: false, psk: false }, // full handshake, its ticket kept
    { resumed: true, psk: false } // the ticket resumes
  ])
  await web.stop()
})

t.test('an upstream that took our PSK is offered PSKs again after declining twice in a row', async t => {
  // A mesh-proxy upstream declines only what it cannot know yet: it rotated or
  // restarted, or (--workers) the sibling that made the PSK has not passed it on.
  const mesh = await makeMesh(t)
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }])
  const app = await startApp(t, echo)
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, meshDir: mesh.dir })
  const web = await startSidecar(t, { service: 'web', upstream: ['db:0'], meshDir: mesh.dir })
  const got: Array<{ resumed: unknown, psk: unknown }> = []
  const step = async (i: number): Promise<void> => {
    t.equal(await roundTrip(web, `m${i}`), `m${i}`)
    const line = await web.sink.waitFor(l => l.msg === 'conn closed' && web.sink.msgs('conn closed').indexOf(l) === i - 1)
    got.push({ resumed: line.resumed, psk: line.psk })
  }
  await step(1)
  await step(2)
  await rotate(mesh, 'db', db)
  await step(3)
  await rotate(mesh, 'db', db)
  await step(4)
  await step(5)
  t.same(got, [
    { resumed: false, psk: false }, // full handshake: its PSK kept
    { resumed: true, psk: true }, // taken: db is mesh-proxy
    { resumed: false, psk: false }, // db rotated: declined once, full handshake, its PSK kept
    { resumed: false, psk: false }, // db rotated again: declined twice in a row
    { resumed: true, psk: true } // still a PSK, not a ticket
  ])
  await web.stop()
  await db.stop()
})
