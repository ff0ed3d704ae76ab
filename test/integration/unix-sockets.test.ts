// Why: `--to unix:/run/app.sock` and `--upstream db:unix:/run/db.sock` put the
// app's plaintext leg on a socket file whose permissions say who may use it, as
// Consul users ask of the built-in proxy. The bytes must cross both legs
// unchanged, half-close included; the file must get its mode and vanish on
// close; and what was at the path before must decide: a stale socket of a
// dead process is replaced, a live one or a plain file is an error that says so.
import t from 'tap'
import { connect, createServer, type Socket } from 'node:net'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { lstat, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { makeMesh, startSidecar } from '../helpers/mesh.js'
import { sendBulk, receiveAll } from '../helpers/data.js'

const MB = 1024 * 1024

/** A short directory for socket files (sun_path is 107 bytes; tap's test dirs are long). */
async function socketDir (t: Parameters<typeof makeMesh>[0]): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mp-uds-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** An app on a UNIX socket: reads each connection to its end, then answers `answer` bytes. */
async function unixApp (t: Parameters<typeof makeMesh>[0], path: string, answer: number): Promise<{ got: Array<Promise<{ bytes: number, sha256: string }>>, sent: Array<Promise<string>> }> {
  const got: Array<Promise<{ bytes: number, sha256: string }>> = []
  const sent: Array<Promise<string>> = []
  const sockets = new Set<Socket>()
  const server = createServer({ allowHalfOpen: true }, s => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    const r = receiveAll(s)
    got.push(r)
    sent.push(r.then(() => sendBulk(s, answer))) // after the peer's half-close: the return direction keeps flowing
  })
  server.listen(path)
  await once(server, 'listening')
  t.teardown(() => new Promise<void>(resolve => { for (const s of sockets) s.destroy(); server.close(() => resolve()) }))
  return { got, sent }
}

/** What `start` rejects with, as text. */
async function failure (start: Promise<unknown>): Promise<string> {
  try { await start } catch (err) { return (err as Error).message }
  return 'started'
}

t.test('app socket and upstream socket: 8 MB each way, sha256 equal, half-close kept; mode 0660; files removed on close', async t => {
  const dir = await socketDir(t)
  const mesh = await makeMesh(t)
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }])
  const app = await unixApp(t, join(dir, 'app.sock'), 8 * MB)
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `unix:${join(dir, 'app.sock')}`, meshDir: mesh.dir })
  const upPath = join(dir, 'db.sock')
  const web = await startSidecar(t, { service: 'web', upstream: [`db:unix:${upPath}`], meshDir: mesh.dir })
  t.same([...web.addrs.upstreamSockets], [['db', upPath]], 'the upstream listens on the path')
  t.equal(web.addrs.upstreams.size, 0, 'and on no TCP port')
  const st = await lstat(upPath)
  t.ok(st.isSocket(), 'a socket file')
  t.equal(st.mode & 0o777, 0o660, 'mode 0660 by default')

  const client = connect({ path: upPath, allowHalfOpen: true })
  await once(client, 'connect')
  const back = receiveAll(client)
  const clientSent = await sendBulk(client, 8 * MB) // ends (half-closes) after the last byte
  const clientGot = await back
  await once(client, 'close')
  const appGot = await app.got[0]!
  t.equal(appGot.bytes, 8 * MB, 'the app got every byte')
  t.equal(appGot.sha256, clientSent, 'client -> app identical')
  t.equal(clientGot.bytes, 8 * MB, 'the client got every byte back')
  t.equal(clientGot.sha256, await app.sent[0]!, 'app -> client identical, after the half-close')
  t.match(await db.sink.waitFor(l => l.msg === 'conn closed'), { app: `unix:${join(dir, 'app.sock')}`, reason: 'eof', bytesToApp: 8 * MB, bytesFromApp: 8 * MB }, 'the access line names the app socket')
  t.match(await web.sink.waitFor(l => l.msg === 'sidecar started'), { upstreams: [`unix:${upPath} => db`] })

  await web.stop()
  t.notOk(existsSync(upPath), 'the upstream socket file is gone after close')
  t.ok(existsSync(join(dir, 'app.sock')), 'the app\'s socket is the app\'s: left alone')
  await db.stop()
})

t.test('--unix-socket-mode 0600 is honoured', async t => {
  const dir = await socketDir(t)
  const mesh = await makeMesh(t)
  const path = join(dir, 'db.sock')
  const web = await startSidecar(t, { service: 'web', upstream: [`db:unix:${path}=127.0.0.1:1`], meshDir: mesh.dir, unixSocketMode: '0600' })
  t.equal((await lstat(path)).mode & 0o777, 0o600)
  await web.stop()
  t.notOk(existsSync(path), 'removed on close')
})

t.test('a reload that drops a socket upstream removes its file; one that adds one creates it', async t => {
  const dir = await socketDir(t)
  const mesh = await makeMesh(t)
  const a = join(dir, 'a.sock')
  const b = join(dir, 'b.sock')
  const web = await startSidecar(t, { service: 'web', upstream: [`db:unix:${a}=127.0.0.1:1`], meshDir: mesh.dir })
  t.ok(existsSync(a))
  const diff = await web.sidecar.setUpstreams([{ service: 'cache', bind: { path: b }, instances: [{ host: '127.0.0.1', port: 1 }] }])
  t.same(diff, { added: ['cache'], removed: ['db'], updated: [] })
  t.notOk(existsSync(a), 'the dropped upstream\'s file is gone')
  t.equal((await lstat(b)).mode & 0o777, 0o660, 'the added one is there, mode 0660')
  await web.stop()
  t.notOk(existsSync(b), 'and gone on close')
})

t.test('a stale socket of a process that died is replaced, with a warning', async t => {
  const dir = await socketDir(t)
  const mesh = await makeMesh(t)
  const path = join(dir, 'db.sock')
  // A process that binds the path and is killed: the file stays, nobody listens.
  const child = spawn(process.execPath, ['-e', 'require("node:net").createServer().listen(process.argv[1], () => process.kill(process.pid, "SIGKILL"))', path], { stdio: 'ignore' })
  await once(child, 'exit')
  t.ok((await lstat(path)).isSocket(), 'the dead process left its socket file')
  const web = await startSidecar(t, { service: 'web', upstream: [`db:unix:${path}=127.0.0.1:1`], meshDir: mesh.dir })
  t.match(await web.sink.waitFor(l => l.msg === 'stale socket replaced'), { level: 40, path, flag: '--upstream db' })
  const c = connect({ path })
  await once(c, 'connect') // ours now: it accepts
  c.destroy()
  await web.stop()
})

t.test('a live socket, a plain file, a missing directory: errors that name the flag and say what to do', async t => {
  const dir = await socketDir(t)
  const mesh = await makeMesh(t)
  const live = join(dir, 'live.sock')
  const other = createServer(s => { s.on('error', () => {}); s.end('still mine') }) // (our probe hangs up at once: a reset)
  other.listen(live)
  await once(other, 'listening')
  t.teardown(() => new Promise(resolve => other.close(resolve)))
  const flags = (path: string): Record<string, unknown> => ({ service: 'web', upstream: [`db:unix:${path}=127.0.0.1:1`], meshDir: mesh.dir })

  t.match(await failure(startSidecar(t, flags(live))), new RegExp(`^--upstream db: cannot listen: ${live} is in use: another process is listening on it; stop that process or choose another path`))
  const c = connect({ path: live })
  let said = ''
  c.on('data', (d: Buffer) => { said += d.toString() })
  await once(c, 'close')
  t.equal(said, 'still mine', 'the live socket is untouched')

  const file = join(dir, 'notes.txt')
  await writeFile(file, 'keep me')
  t.match(await failure(startSidecar(t, flags(file))), /^--upstream db: cannot listen: .*notes\.txt exists and is not a socket; mesh-proxy does not remove it: move it away or choose another path/)
  t.equal(await readFile(file, 'utf8'), 'keep me', 'the file is untouched')

  t.match(await failure(startSidecar(t, flags(join(dir, 'nope', 'db.sock')))), /^--upstream db: cannot listen: the directory of .*nope\/db\.sock does not exist; create it first/)
})

t.test('--to unix: naming a regular file or a directory fails at start, saying which', async t => {
  const dir = await socketDir(t)
  const mesh = await makeMesh(t)
  const file = join(dir, 'app.sock')
  await writeFile(file, '')
  for (const [path, what] of [[file, 'a regular file'], [dir, 'a directory']] as const) {
    t.equal(await failure(startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `unix:${path}`, meshDir: mesh.dir, admin: 'off' })),
      `--to: ${path} is ${what}, not a socket: give the socket file the app listens on (e.g. --to unix:/run/app.sock)`, what)
  }
  t.equal(await readFile(file, 'utf8'), '', 'the file is untouched')
})

t.test('an app socket nobody listens on: the peer is reset, the log names the socket', async t => {
  const dir = await socketDir(t)
  const mesh = await makeMesh(t)
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }])
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `unix:${join(dir, 'absent.sock')}`, meshDir: mesh.dir })
  const web = await startSidecar(t, { service: 'web', upstream: ['db:0'], meshDir: mesh.dir })
  const c = connect({ port: web.addrs.upstreams.get('db')!.port, host: '127.0.0.1' })
  c.on('error', () => {})
  c.end('hello')
  await new Promise(resolve => c.once('close', resolve))
  t.match(await db.sink.waitFor(l => l.msg === 'conn closed'), { reason: 'app_connect_failed', err: new RegExp(`^connect to unix:${join(dir, 'absent.sock')} failed`) })
  await web.stop()
  await db.stop()
})
