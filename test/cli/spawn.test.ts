// Why: the real launcher, as a user runs it: `mesh-proxy demo` prints the
// outcome in plain words and exits 0; `mesh-proxy run` logs JSON, serves, and
// on SIGTERM drains and exits 0.
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { ROOT } from '../helpers/paths.js'
import { makeMesh, startApp, mtlsTry, echo } from '../helpers/mesh.js'
import { spawnCli } from '../helpers/cli.js'

const BIN = join(ROOT, 'bin', 'mesh-proxy.js')

/** `mesh-proxy run` for db in a real process, its JSON log parsed as it comes; killed at teardown. */
async function spawnDb (t: Test, extra: string[] = []): Promise<{ child: ChildProcess, lines: Array<Record<string, unknown>>, waitFor: (msg: string) => Promise<Record<string, unknown>>, mesh: Awaited<ReturnType<typeof makeMesh>>, port: number }> {
  const mesh = await makeMesh(t)
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }])
  const app = await startApp(t, echo)
  const { child, sink } = spawnCli(t, ['run', '--service', 'db', '--listen', '127.0.0.1:0', '--to', `127.0.0.1:${app.port}`, '--mesh-dir', mesh.dir, '--admin', '127.0.0.1:0', ...extra])
  const waitFor = (msg: string): Promise<Record<string, unknown>> => sink.waitFor(l => l.msg === msg)
  const started = await waitFor('sidecar started')
  return { child, lines: sink.lines, waitFor, mesh, port: Number(String(started.inbound).split(' => ')[0]!.split(':')[1]) }
}

t.test('demo', async t => {
  const child = spawn(process.execPath, [BIN, 'demo'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  const code = await new Promise(resolve => child.on('exit', resolve))
  t.equal(code, 0, 'exit 0')
  t.match(out, /OK {3}web -> db: sent "hello from web", db answered: db: got "hello from web"/)
  t.match(out, /over mTLS: db's sidecar verified spiffe:\/\/11111111-2222-3333-4444-555555555555\.consul\/ns\/default\/dc\/dc1\/svc\/web/)
  t.match(out, /OK {3}billing -> db: refused; db app received nothing/)
  t.match(out, /decided by intention "billing => db" \(precedence 9\)/)
})

t.test('run, serve, SIGTERM drains and exits 0', async t => {
  const { child, lines, mesh, port } = await spawnDb(t)
  const r = await mtlsTry(port, await mesh.leaf('web'), mesh.ca.certPem, 'through a real process')
  t.equal(r.received, 'through a real process')
  const exited = new Promise(resolve => child.on('exit', resolve))
  child.kill('SIGTERM')
  t.equal(await exited, 0, 'exit 0 after SIGTERM')
  t.ok(lines.some(l => l.msg === 'sidecar stopped'), 'logged the stop')
  t.equal(lines.filter(l => l.msg === 'conn opened').length, 0, "'conn opened' is at debug level")
  const closed = lines.filter(l => l.msg === 'conn closed')
  t.equal(closed.length, 1, 'one access-log line per connection at info')
  t.match(closed[0], { source: 'web', destination: 'db', intention: 'web => db', peer: /\/svc\/web$/, bytesToApp: 22, bytesFromApp: 22, reason: 'eof' })
})

t.test('SIGTERM drains a live connection; a second SIGTERM closes at once', async t => {
  const { child, lines, waitFor, mesh, port } = await spawnDb(t, ['--drain-timeout', '1h'])
  const admin = Number(String((await waitFor('admin listening')).admin).split(':')[1])
  const web = await mesh.leaf('web')
  const { connect: tlsConnect } = await import('node:tls')
  const live = tlsConnect({ port, host: '127.0.0.1', servername: 'db', ca: mesh.ca.certPem, cert: web.certPem, key: web.keyPem })
  live.on('error', () => {})
  live.write('hold')
  await new Promise(resolve => live.once('data', resolve))
  const exited = new Promise(resolve => child.on('exit', resolve))
  child.kill('SIGTERM')
  await waitFor('shutting down: draining connections')
  const ready = await fetch(`http://127.0.0.1:${admin}/ready`)
  t.equal(ready.status, 503, '/ready is 503 while draining')
  t.match(await ready.json(), { state: 'draining' })
  live.write('still served')
  const [d] = await new Promise<[Buffer]>(resolve => live.once('data', (...a: [Buffer]) => resolve(a)))
  t.equal(d.toString(), 'still served', 'the live connection is served during the drain')
  child.kill('SIGTERM')
  t.equal(await exited, 0, 'the second SIGTERM closes at once, exit 0 (not the 1 h drain)')
  t.ok(lines.some(l => l.msg === 'second signal: closing live connections now'))
  await new Promise(resolve => { if (live.closed) resolve(null); else live.on('close', resolve) })
})
