// Why: an app behind a sidecar only has TCP to learn from. When the sidecar on
// the other side dies mid-stream (kill -9: its kernel closes the TCP connection
// with a bare FIN, no TLS close_notify), the app must see a reset, never an
// orderly end after a shorter body (silent truncation). The same for every other
// failure it cannot see otherwise: an upstream that cannot be reached, an
// intention denial, an app the far sidecar cannot connect to. And a clean end
// must stay a clean end: a full transfer ends in a FIN with every byte intact.
import t, { type Test } from 'tap'
import { connect } from 'node:net'
import { makeMesh, startApp, startSidecar } from '../helpers/mesh.js'
import { MB, downloadApp, drain, meshAllowing, patternSha, spawnSidecar, stream, type Ending } from '../helpers/faults.js'
import { freePort } from '../helpers/ports.js'

t.test('a clean end stays clean: 24 MiB down through a pair, every byte, then a FIN', async t => {
  const mesh = await meshAllowing(t)
  const total = 24 * MB
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${await downloadApp(t, total)}`, meshDir: mesh.dir })
  const web = await startSidecar(t, { service: 'web', upstream: [`db:0=127.0.0.1:${db.addrs.inbound!.port}`], meshDir: mesh.dir })
  const got = await drain(connect(web.addrs.upstreams.get('db')!.port, '127.0.0.1'))
  t.same(got, { bytes: total, sha: patternSha(total), reset: false, cleanEnd: true })
  t.match(await web.sink.waitFor(l => l.msg === 'conn closed'), { reason: 'eof', bytesToApp: total })
  await web.stop()
  await db.stop()
})

t.test('the inbound sidecar is killed (-9) mid-download: the app sees a reset, not an end', async t => {
  await tracking(t)
  const mesh = await meshAllowing(t)
  const total = 256 * MB // far more than is sent before the kill: the transfer is cut mid-stream
  const db = await spawnSidecar(t, ['--service', 'db', '--listen', '127.0.0.1:0', '--to', `127.0.0.1:${await downloadApp(t, total)}`, '--mesh-dir', mesh.dir])
  const web = await startSidecar(t, { service: 'web', upstream: [`db:0=127.0.0.1:${db.inbound!}`], meshDir: mesh.dir })
  const app = connect(web.addrs.upstreams.get('db')!.port, '127.0.0.1')
  let killing: Promise<void> | undefined
  const got = await drain(app, n => { if (n >= 4 * MB) killing ??= db.kill() })
  await killing
  t.ok(got.bytes >= 4 * MB && got.bytes < total, `cut mid-stream (${got.bytes} of ${total} bytes)`)
  t.equal(got.reset, true, 'the app\'s connection is reset')
  t.equal(got.cleanEnd, false, 'no orderly end reached the app')
  t.match(await web.sink.waitFor(l => l.msg === 'conn closed'), { level: 40, reason: 'peer_aborted' }, 'logged as the peer aborting, at warn')
  t.equal(web.metrics.get('mesh_proxy_connections_total', { direction: 'outbound', result: 'peer_aborted' }), 1, 'counted')
  await web.stop()
})

t.test('the outbound sidecar is killed (-9) mid-upload: db\'s app sees a reset, not an end', async t => {
  await tracking(t)
  const mesh = await meshAllowing(t)
  let upload: Promise<Ending> | undefined
  let reached!: () => void
  const fourMb = new Promise<void>(resolve => { reached = resolve })
  const dbApp = await startApp(t, s => { upload = drain(s, n => { if (n >= 4 * MB) reached() }) })
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${dbApp.port}`, meshDir: mesh.dir })
  const web = await spawnSidecar(t, ['--service', 'web', '--upstream', `db:0=127.0.0.1:${db.addrs.inbound!.port}`, '--mesh-dir', mesh.dir])
  const client = connect(web.upstream!, '127.0.0.1')
  client.on('error', () => {})
  stream(client, 256 * MB, true)
  await fourMb
  await web.kill()
  const got = await upload!
  t.ok(got.bytes >= 4 * MB && got.bytes < 256 * MB, `cut mid-stream (${got.bytes} bytes)`)
  t.equal(got.reset, true, 'db\'s app connection is reset')
  t.equal(got.cleanEnd, false, 'no orderly end reached db\'s app')
  t.match(await db.sink.waitFor(l => l.msg === 'conn closed'), { reason: 'peer_aborted' })
  t.equal(db.metrics.get('mesh_proxy_connections_total', { direction: 'inbound', result: 'peer_aborted' }), 1)
  client.destroy()
  await db.stop()
})

t.test('failures the app cannot otherwise see are resets', async t => {
  const mesh = await makeMesh(t)
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'deny' }])
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${await downloadApp(t, 1000)}`, meshDir: mesh.dir })
  const deadPort = await freePort()
  const web = await startSidecar(t, { service: 'web', upstream: [`db:0=127.0.0.1:${db.addrs.inbound!.port}`, `nowhere:0=127.0.0.1:${deadPort}`], meshDir: mesh.dir })

  const unreachable = await drain(connect(web.addrs.upstreams.get('nowhere')!.port, '127.0.0.1'))
  t.same(unreachable, { bytes: 0, sha: patternSha(0), reset: true, cleanEnd: false }, 'an upstream that cannot be reached: reset')
  t.match(await web.sink.waitFor(l => l.msg === 'conn refused'), { reason: 'upstream_unavailable' })

  // On every Node: the denying inbound resets its TCP connection (relay.ts cut()), it does not just close it.
  const denied = await drain(connect(web.addrs.upstreams.get('db')!.port, '127.0.0.1'))
  t.same(denied, { bytes: 0, sha: patternSha(0), reset: true, cleanEnd: false }, 'an intention denial at the far side: reset')
  t.match(await web.sink.waitFor(l => l.msg === 'conn refused' && l.upstream === 'db'), { reason: 'peer_refused', err: /reset the connection before answering: its intentions deny us/ }, 'the caller\'s log says the peer refused it')
  t.equal(web.metrics.get('mesh_proxy_connections_total', { direction: 'outbound', result: 'peer_refused' }), 1)
  await web.stop()
  await db.stop()
})

t.test('the far sidecar cannot connect to its app: the calling app is reset', async t => {
  const mesh = await meshAllowing(t)
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${await freePort()}`, meshDir: mesh.dir })
  const web = await startSidecar(t, { service: 'web', upstream: [`db:0=127.0.0.1:${db.addrs.inbound!.port}`], meshDir: mesh.dir })
  const got = await drain(connect(web.addrs.upstreams.get('db')!.port, '127.0.0.1'))
  t.same(got, { bytes: 0, sha: patternSha(0), reset: true, cleanEnd: false })
  t.match(await db.sink.waitFor(l => l.msg === 'conn closed'), { reason: 'app_connect_failed' })
  t.match(await web.sink.waitFor(l => l.msg === 'conn refused'), { reason: 'peer_refused' })
  await web.stop()
  await db.stop()
})

/** Every supported Node tells a bare TCP close from close_notify: the probe must find so. */
async function tracking (t: Test): Promise<void> {
  const { probeTls } = await import('../../src/tls/probe.js')
  t.equal((await probeTls()).endTracking, true, `the TLS probe finds that ${process.version} tells a bare TCP close from close_notify`)
}
