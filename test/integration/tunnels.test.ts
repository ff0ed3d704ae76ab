// Why: --upstream-tunnel carries app connections as HTTP/2 CONNECT streams of a
// few long-lived mTLS connections. Each stream must behave as a plain connection
// does (every byte both ways, half-close, the intention asked per stream, a reset
// is a reset), a stream's trouble must stay its own, rotation must not fail a
// connection, a peer that vanishes must reset every app connection it carried
// (the tunnel's end resets every stream on it),
// and a client that is not mesh-proxy must still be served over plain mTLS.
import t, { type Test } from 'tap'
import { spawnSync, spawn } from 'node:child_process'
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'
import { echo, echoSha, makeMesh, mtlsTry, startApp, startSidecar, type TestMesh } from '../helpers/mesh.js'
import { MB, downloadApp, drain, meshAllowing, patternSha, spawnSidecar, stream } from '../helpers/faults.js'

async function pair (t: Test, mesh: TestMesh, appPort: number): Promise<{ db: Awaited<ReturnType<typeof startSidecar>>, web: Awaited<ReturnType<typeof startSidecar>>, upstream: number }> {
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${appPort}`, meshDir: mesh.dir, admin: 'off' })
  const web = await startSidecar(t, { service: 'web', upstream: [`db:0=127.0.0.1:${db.addrs.inbound!.port}`], upstreamTunnel: ['db'], meshDir: mesh.dir, admin: 'off' })
  return { db, web, upstream: web.addrs.upstreams.get('db')!.port }
}

t.test('50 MB each way through a tunnel, and many connections on one tunnel', async t => {
  const mesh = await meshAllowing(t)
  const app = await startApp(t, echo)
  const { db, web, upstream } = await pair(t, mesh, app.port)
  const [a, b] = await Promise.all([echoSha(upstream, 50 * MB), echoSha(upstream, 50 * MB)])
  t.equal(a.received, a.sent, 'stream 1: every byte back (sha256)')
  t.equal(b.received, b.sent, 'stream 2, beside it on the same tunnel: every byte back')
  t.equal(a.receivedBytes, 50 * MB)
  for (let i = 0; i < 20; i++) t.equal((await echoSha(upstream, 1000)).receivedBytes, 1000, `connection ${i + 3}`)
  t.equal(web.sink.msgs('tunnel opened').length, 1, 'one tunnel (one handshake) for 22 connections')
  t.equal(db.sink.msgs('tunnel opened').length, 1)
  const closed = db.sink.msgs('conn closed')
  t.equal(closed.length, 22, 'the inbound logs each stream as a connection')
  t.match(closed[0], { tunnel: true, source: 'web', destination: 'db', reason: 'eof', bytesToApp: 50 * MB })
  t.match(web.sink.msgs('conn closed')[0], { tunnel: true, reason: 'eof' })
  t.equal(web.metrics.get('mesh_proxy_tunnels_active', { direction: 'outbound' }), 1)
  t.equal(db.metrics.get('mesh_proxy_tunnels_active', { direction: 'inbound' }), 1)
  t.equal(db.metrics.get('mesh_proxy_connections_total', { direction: 'inbound', result: 'allowed' }), 22)
  await web.stop()
  await db.stop()
  t.equal(web.metrics.get('mesh_proxy_tunnels_active', { direction: 'outbound' }), 0, 'tunnels closed with the listener')
})

t.test('half-close both ways through a tunnel', async t => {
  const mesh = await meshAllowing(t)
  // The app answers only after the client's end (client half-closes first) ...
  const late = await startApp(t, s => { let n = 0; s.on('data', (d: Buffer) => { n += d.length }); s.on('end', () => s.end(`got ${n}`)) })
  const { db, web, upstream } = await pair(t, mesh, late.port)
  const c = connect({ port: upstream, host: '127.0.0.1', allowHalfOpen: true })
  c.end('x'.repeat(5000))
  t.same(await drain(c), { bytes: 8, sha: (await import('node:crypto')).createHash('sha256').update('got 5000').digest('hex'), reset: false, cleanEnd: true }, 'client FIN first, the answer after it, then the app\'s FIN')
  await web.stop()
  await db.stop()
  // ... and the app ends first while the client still sends.
  const early = await startApp(t, s => { s.end('bye'); s.resume() })
  const p2 = await pair(t, mesh, early.port)
  const c2 = connect({ port: p2.upstream, host: '127.0.0.1', allowHalfOpen: true })
  c2.on('end', () => c2.end('still talking')) // before drain's own 'end' handler
  const got = drain(c2)
  t.match(await got, { bytes: 3, reset: false, cleanEnd: true }, 'app FIN first, the client answers after it')
  t.match(await p2.db.sink.waitFor(l => l.msg === 'conn closed'), { reason: 'eof', bytesToApp: 'still talking'.length })
  await p2.web.stop()
  await p2.db.stop()
})

t.test('the intention is asked per stream; a reset stream does not disturb its siblings', async t => {
  const mesh = await meshAllowing(t)
  const app = await startApp(t, echo)
  const { db, web, upstream } = await pair(t, mesh, app.port)
  // A long stream A, open across the change.
  const a = connect({ port: upstream, host: '127.0.0.1', allowHalfOpen: true })
  const aDone = drain(a)
  a.write('before ')
  await db.sink.waitFor(l => l.msg === 'conn opened')
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'deny' }], 'deny', 2)
  await db.sink.waitFor(l => l.msg === 'intentions reloaded' && l.version === 2)
  const denied = await drain(connect(upstream, '127.0.0.1'))
  t.same(denied, { bytes: 0, sha: patternSha(0), reset: true, cleanEnd: false }, 'a new stream, now denied: the app is reset')
  t.match(await web.sink.waitFor(l => l.msg === 'conn refused'), { reason: 'peer_denied', err: /answered 403: its intentions deny us/ })
  t.match(db.sink.msgs('conn denied')[0], { tunnel: true, source: 'web', intention: 'web => db' })
  // A sibling reset by its app mid-transfer: A is untouched.
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }], 'deny', 3)
  await db.sink.waitFor(l => l.msg === 'intentions reloaded' && l.version === 3)
  const r = connect(upstream, '127.0.0.1')
  r.on('error', () => {})
  stream(r, 64 * MB, false)
  await new Promise<void>(resolve => r.once('data', () => resolve()))
  r.resetAndDestroy()
  t.match(await db.sink.waitFor(l => l.msg === 'conn closed' && l.reason === 'peer_aborted'), { tunnel: true }, 'the reset stream: its far end sees an abort (RST_STREAM), the app there is reset')
  a.end('after')
  t.match(await aDone, { bytes: 'before after'.length, reset: false, cleanEnd: true }, 'stream A, on the same tunnel throughout: unharmed')
  t.equal(web.sink.msgs('tunnel opened').length, 1, 'all of it on one tunnel')
  await web.stop()
  await db.stop()
})

t.test('rotation mid-stream: 0 failed connections, new streams on a new tunnel', async t => {
  const mesh = await meshAllowing(t)
  const app = await startApp(t, echo)
  const { db, web, upstream } = await pair(t, mesh, app.port)
  const running = echoSha(upstream, 32 * MB)
  await db.sink.waitFor(l => l.msg === 'tunnel opened')
  // A new leaf for web in the mesh dir: its TLS generation changes, its tunnels retire.
  const leaf = await mesh.leaf('web')
  const { writeFile } = await import('node:fs/promises')
  await writeFile(mesh.layout.keyFor('web'), leaf.keyPem)
  await writeFile(mesh.layout.certFor('web'), leaf.certPem)
  await web.sidecar.reload()
  await web.sink.waitFor(l => l.msg === 'certificates reloaded')
  for (let i = 0; i < 5; i++) t.equal((await echoSha(upstream, 10_000)).receivedBytes, 10_000, `after rotation, connection ${i + 1}`)
  const r = await running
  t.equal(r.received, r.sent, 'the stream across the rotation: every byte back')
  t.equal(web.sink.msgs('tunnel opened').length, 2, 'a second tunnel, made with the new leaf')
  t.equal(web.sink.msgs('conn refused').length + db.sink.msgs('conn rejected').length, 0, '0 failed connections')
  await web.stop()
  await db.stop()
})

t.test('a client that is not mesh-proxy is still served over plain mTLS, whatever ALPN it offers', async t => {
  const mesh = await meshAllowing(t)
  const app = await startApp(t, echo)
  const { db, web } = await pair(t, mesh, app.port)
  const port = db.addrs.inbound!.port
  const webLeaf = await mesh.leaf('web')
  t.equal((await mtlsTry(port, webLeaf, mesh.ca.certPem)).received, 'hello', 'Node, no ALPN')
  const has = spawnSync('openssl', ['version']).status === 0
  if (!has) { t.comment('openssl is not installed: its client is skipped'); await web.stop(); await db.stop(); return }
  const s = spawn('openssl', ['s_client', '-quiet', '-no_ign_eof', '-verify_return_error', '-connect', `127.0.0.1:${port}`, '-servername', 'db', '-alpn', 'h2,http/1.1',
    '-CAfile', mesh.layout.bundle, '-cert', mesh.layout.certFor('web'), '-key', mesh.layout.keyFor('web')], { stdio: ['pipe', 'pipe', 'pipe'] })
  let out = ''
  // s_client closes the whole connection at stdin EOF, so stdin stays open until the echo is back.
  s.stdout.on('data', (d: Buffer) => { out += d.toString(); if (out.endsWith('\n')) s.stdin.end() })
  s.stdin.write('through openssl\n')
  t.equal(await new Promise(resolve => s.once('exit', resolve)), 0)
  t.ok(out.includes('through openssl'), 'openssl s_client offering h2,http/1.1: echoed as plain mTLS')
  const line = await db.sink.waitFor(l => l.msg === 'conn closed' && l.tunnel === undefined && Number(l.bytesToApp) > 5)
  t.equal(line.source, 'web')
  await web.stop()
  await db.stop()
})

t.test('the inbound sidecar is killed (-9): every app connection its tunnel carried is reset, on every Node', async t => {
  const mesh = await meshAllowing(t)
  const total = 256 * MB
  const db = await spawnSidecar(t, ['--service', 'db', '--listen', '127.0.0.1:0', '--to', `127.0.0.1:${await downloadApp(t, total)}`, '--mesh-dir', mesh.dir])
  const web = await startSidecar(t, { service: 'web', upstream: [`db:0=127.0.0.1:${db.inbound!}`], upstreamTunnel: ['db'], meshDir: mesh.dir, admin: 'off' })
  const port = web.addrs.upstreams.get('db')!.port
  let killing: Promise<void> | undefined
  const flowing = new Set<number>() // the streams past 2 MB: the kill comes once both are
  const both = [0, 1].map(i => drain(connect(port, '127.0.0.1'), n => { if (n >= 2 * MB && flowing.add(i).size === 2) killing ??= db.kill() }))
  const got = await Promise.all(both)
  await killing
  for (const [i, g] of got.entries()) {
    t.ok(g.bytes >= 2 * MB && g.bytes < total, `stream ${i + 1} cut mid-stream (${g.bytes} bytes)`)
    t.same({ reset: g.reset, cleanEnd: g.cleanEnd }, { reset: true, cleanEnd: false }, `stream ${i + 1}: the app is reset, no orderly end`)
  }
  t.equal(web.sink.msgs('tunnel opened').length, 1, 'both on one tunnel')
  const closed = web.sink.msgs('conn closed')
  t.same(closed.map(l => l.reason), ['peer_aborted', 'peer_aborted'], 'both logged as the peer aborting')
  t.equal(web.metrics.get('mesh_proxy_connections_total', { direction: 'outbound', result: 'peer_aborted' }), 2)
  await web.stop()
})

t.test('--upstream-tunnel names upstreams of this sidecar', async t => {
  const mesh = await makeMesh(t)
  const { resolveConfig } = await import('../../src/core/config/resolve.js')
  t.throws(() => resolveConfig({ flags: { service: 'web', upstream: ['db:0=127.0.0.1:1'], upstreamTunnel: ['dbb'], meshDir: mesh.dir }, env: {}, file: null }), /--upstream-tunnel: dbb is not an upstream of this sidecar \(it has: db\)/)
  t.throws(() => resolveConfig({ flags: { service: 'web', upstream: ['db:0=127.0.0.1:1'], upstreamTunnel: ['no such'], meshDir: mesh.dir }, env: {}, file: null }), /is not an upstream service name \(or \* for every upstream\)/)
  t.same(resolveConfig({ flags: { service: 'web', upstream: ['db:0=127.0.0.1:1'], upstreamTunnel: ['*'], meshDir: mesh.dir }, env: {}, file: null }).tunnelUpstreams, ['*'])
})

t.test('the tunnel\'s connection ends with a bare FIN (a peer gone, its kernel closing in order): every stream on it is reset, none hangs', async t => {
  const mesh = await meshAllowing(t)
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${await downloadApp(t, 256 * MB)}`, meshDir: mesh.dir, admin: 'off' })
  // Between web and db, a TCP relay of ours that can end web's side with a FIN and no close_notify.
  const pairs: Array<{ web: Socket, db: Socket }> = []
  const middle = createServer(w => {
    const d = connect(db.addrs.inbound!.port, '127.0.0.1')
    w.on('error', () => {}); d.on('error', () => {})
    w.pipe(d); d.pipe(w)
    pairs.push({ web: w, db: d })
  })
  await new Promise<void>(resolve => middle.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { for (const p of pairs) { p.web.destroy(); p.db.destroy() } middle.close() })
  const web = await startSidecar(t, { service: 'web', upstream: [`db:0=127.0.0.1:${(middle.address() as AddressInfo).port}`], upstreamTunnel: ['db'], meshDir: mesh.dir, admin: 'off' })
  const port = web.addrs.upstreams.get('db')!.port
  let cut = false
  const flowing = new Set<number>() // the streams past 2 MB: the cut comes once both are
  const both = [0, 1].map(i => drain(connect(port, '127.0.0.1'), n => {
    if (n >= 2 * MB && flowing.add(i).size === 2 && !cut) {
      cut = true
      for (const p of pairs) { p.db.unpipe(p.web); p.web.unpipe(p.db); p.db.destroy(); p.web.end() }
    }
  }))
  const got = await Promise.all(both)
  for (const [i, g] of got.entries()) t.same({ reset: g.reset, cleanEnd: g.cleanEnd }, { reset: true, cleanEnd: false }, `stream ${i + 1}: reset, no orderly end (${g.bytes} bytes)`)
  t.same(web.sink.msgs('conn closed').map(l => l.reason), ['peer_aborted', 'peer_aborted'])
  await web.stop()
  await db.stop()
})

t.test('many streams of one tunnel, all two-way at once: every byte back on each, and the tunnel still serves after', async t => {
  const mesh = await meshAllowing(t)
  const app = await startApp(t, echo)
  const { db, web, upstream } = await pair(t, mesh, app.port)
  const all = await Promise.all(Array.from({ length: 16 }, () => echoSha(upstream, 4 * MB)))
  for (const [i, r] of all.entries()) t.same({ bytes: r.receivedBytes, same: r.received === r.sent }, { bytes: 4 * MB, same: true }, `stream ${i + 1}: 4 MiB up and back`)
  t.equal(web.sink.msgs('tunnel opened').length, 1, 'all on one tunnel')
  t.equal((await echoSha(upstream, 1000)).receivedBytes, 1000, 'a new connection after them')
  await web.stop()
  await db.stop()
})

t.test('a stream revoked by --enforce-on-change reaches the calling app as a reset, not an end', async t => {
  const mesh = await meshAllowing(t)
  const app = await startApp(t, echo)
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, meshDir: mesh.dir, admin: 'off', enforceOnChange: true })
  const web = await startSidecar(t, { service: 'web', upstream: [`db:0=127.0.0.1:${db.addrs.inbound!.port}`], upstreamTunnel: ['db'], meshDir: mesh.dir, admin: 'off' })
  const c = connect(web.addrs.upstreams.get('db')!.port, '127.0.0.1')
  const ended = drain(c)
  c.write('held')
  await new Promise<void>(resolve => c.once('data', () => resolve()))
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'deny' }], 'deny', 2)
  t.match(await db.sink.waitFor(l => l.msg === 'intentions reloaded' && l.version === 2), { closedConnections: 1 })
  t.match(await ended, { bytes: 4, reset: true, cleanEnd: false }, 'the calling app is reset')
  t.match(await db.sink.waitFor(l => l.msg === 'conn closed'), { tunnel: true, reason: 'revoked', intention: 'web => db' })
  t.match(await web.sink.waitFor(l => l.msg === 'conn closed'), { tunnel: true, reason: 'peer_aborted' })
  t.equal(web.metrics.get('mesh_proxy_connections_total', { direction: 'outbound', result: 'peer_aborted' }), 1)
  await web.stop()
  await db.stop()
})

t.test('the outbound sidecar is killed (-9): the inbound ends its tunnel and resets the app connection the tunnel carried', async t => {
  const mesh = await meshAllowing(t)
  const endings: Array<Promise<Awaited<ReturnType<typeof drain>>>> = []
  const app = await startApp(t, s => { endings.push(drain(s)); s.write('hi') })
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, meshDir: mesh.dir, admin: 'off' })
  const web = await spawnSidecar(t, ['--service', 'web', '--upstream', `db:0=127.0.0.1:${db.addrs.inbound!.port}`, '--upstream-tunnel', 'db', '--mesh-dir', mesh.dir])
  const c = connect(web.upstream!, '127.0.0.1')
  const client = drain(c)
  await new Promise<void>(resolve => c.once('data', () => resolve()))
  t.equal(db.metrics.get('mesh_proxy_tunnels_active', { direction: 'inbound' }), 1)
  await web.kill()
  // Its client is closed by the dead process's kernel: a FIN or a reset, the kernel's choice.
  t.equal((await client).bytes, 2, 'the client of the killed sidecar had the greeting, then was closed')
  t.match(await db.sink.waitFor(l => l.msg === 'conn closed'), { tunnel: true, reason: 'peer_aborted' })
  await db.sink.waitFor(l => l.msg === 'tunnel closed')
  t.match(await endings[0], { reset: true, cleanEnd: false }, 'the app behind the inbound is reset, not left open or ended')
  t.equal(db.metrics.get('mesh_proxy_tunnels_active', { direction: 'inbound' }), 0, 'no tunnel left')
  t.equal(db.metrics.get('mesh_proxy_connections_active', { direction: 'inbound' }), 0, 'no connection left')
  await db.stop()
})

t.test('the inbound sidecar is killed (-9) while its tunnel is idle: the held connection is reset, and a restarted sidecar gets a new tunnel', async t => {
  const mesh = await meshAllowing(t)
  const app = await startApp(t, echo)
  const first = await spawnSidecar(t, ['--service', 'db', '--listen', '127.0.0.1:0', '--to', `127.0.0.1:${app.port}`, '--mesh-dir', mesh.dir])
  const port = first.inbound!
  const web = await startSidecar(t, { service: 'web', upstream: [`db:0=127.0.0.1:${port}`], upstreamTunnel: ['db'], meshDir: mesh.dir, admin: 'off' })
  const upstream = web.addrs.upstreams.get('db')!.port
  const c = connect(upstream, '127.0.0.1')
  const held = drain(c)
  c.write('held')
  await new Promise<void>(resolve => c.once('data', () => resolve()))
  await first.kill()
  t.match(await held, { bytes: 4, reset: true, cleanEnd: false }, 'the idle, held connection is reset')
  await web.sink.waitFor(l => l.msg === 'tunnel closed')
  t.equal(web.metrics.get('mesh_proxy_tunnels_active', { direction: 'outbound' }), 0, 'the dead tunnel is gone')
  // db again, on the port web knows (the one the kernel gave the first).
  await spawnSidecar(t, ['--service', 'db', '--listen', `127.0.0.1:${port}`, '--to', `127.0.0.1:${app.port}`, '--mesh-dir', mesh.dir])
  t.equal((await echoSha(upstream, 100_000)).receivedBytes, 100_000, 'a new connection works, on a new tunnel')
  t.equal(web.sink.msgs('tunnel opened').length, 2)
  await web.stop()
})

t.test('SIGTERM while the peer has stopped reading (SIGSTOP): the drain is bounded by --drain-timeout, the app is reset', async t => {
  const mesh = await meshAllowing(t)
  let appBytes = 0
  let flowing: () => void = () => {}
  const flows = new Promise<void>(resolve => { flowing = resolve })
  const app = await startApp(t, s => { s.on('data', (d: Buffer) => { appBytes += d.length; if (appBytes >= 2 * MB) flowing() }) })
  const db = await spawnSidecar(t, ['--service', 'db', '--listen', '127.0.0.1:0', '--to', `127.0.0.1:${app.port}`, '--mesh-dir', mesh.dir])
  t.teardown(() => { db.child.kill('SIGCONT') })
  const web = await startSidecar(t, { service: 'web', upstream: [`db:0=127.0.0.1:${db.inbound!}`], upstreamTunnel: ['db'], meshDir: mesh.dir, admin: 'off', drainTimeout: '300ms' })
  const c = connect(web.addrs.upstreams.get('db')!.port, '127.0.0.1')
  const ended = drain(c)
  stream(c, 256 * MB, true)
  await flows
  db.child.kill('SIGSTOP')
  await web.stop()
  t.pass('stop() returned with the peer stopped')
  t.match(await ended, { reset: true, cleanEnd: false }, 'the app of the cut connection is reset')
  t.match(web.sink.msgs('conn closed')[0], { tunnel: true, reason: 'aborted' })
  t.equal(web.metrics.get('mesh_proxy_tunnels_active', { direction: 'outbound' }), 0)
})

t.test('a stream whose app stops reading holds only its own window: a sibling on the same tunnel moves 16 MiB both ways meanwhile', async t => {
  const mesh = await meshAllowing(t)
  let stalled: Socket | undefined
  let stalledRead = 0
  let stalledEnded: () => void = () => {}
  const allIn = new Promise<void>(resolve => { stalledEnded = resolve })
  const app = await startApp(t, s => {
    if (stalled !== undefined) { echo(s); return }
    // The first connection's app reads nothing until the sibling is done.
    stalled = s
    s.pause()
    s.on('data', (d: Buffer) => { stalledRead += d.length })
    s.on('end', () => { stalledEnded(); s.end() })
  })
  const { db, web, upstream } = await pair(t, mesh, app.port)
  const total = 64 * MB // far more than its stream window and every socket buffer on the way
  const c = connect(upstream, '127.0.0.1')
  let written = false
  c.once('finish', () => { written = true })
  stream(c, total, true)
  await db.sink.waitFor(l => l.msg === 'tunnel opened')
  const sibling = await echoSha(upstream, 16 * MB)
  t.same({ bytes: sibling.receivedBytes, same: sibling.received === sibling.sent }, { bytes: 16 * MB, same: true }, 'the sibling: every byte up and back')
  t.equal(written, false, 'the stalled stream was still held back all that time')
  t.equal(web.sink.msgs('tunnel opened').length, 1, 'both on one tunnel')
  stalled!.resume()
  await allIn
  t.equal(stalledRead, total, 'once its app reads, the stalled stream delivers every byte')
  await web.stop()
  await db.stop()
})
