// Why: a header only our own parser reads proves little; haproxy is the
// reference receiver of the PROXY protocol. haproxy, with `accept-proxy` on a
// tcp-mode frontend, must take our v2 header as the connection's true origin:
// it forwards the bytes after it to an echo server and, with `send-proxy-v2`
// towards that server, repeats the addresses it read from us (IPv4 and IPv6).
// Without our header the same frontend refuses the connection: the check is live.
// Skipped, saying so, where haproxy is not installed (Debian: apt-get install haproxy).
import t from 'tap'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { connect as tlsConnect } from 'node:tls'
import { createServer, type Socket } from 'node:net'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, watch, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { makeMesh, startSidecar, type TestMesh } from '../helpers/mesh.js'
import { readProxyV2, type ParsedProxyV2 } from '../helpers/proxy-v2.js'

const probe = spawnSync('haproxy', ['-v'], { encoding: 'utf8' })
const haproxyVersion = probe.error === undefined && probe.status === 0 ? probe.stdout.split('\n', 1)[0]! : null

/** Resolves once `path` exists (haproxy binds its socket under another name and renames it), or rejects when `child` exits first. */
async function appears (dir: string, path: string, child: ChildProcess, stderr: () => string): Promise<void> {
  const ac = new AbortController()
  const exited = once(child, 'exit').then(([code]) => { throw new Error(`haproxy exited (${String(code)}) before listening: ${stderr()}`) })
  const seen = (async () => {
    const events = watch(dir, { signal: ac.signal })
    if (existsSync(path)) return
    for await (const _ of events) if (existsSync(path)) return
  })()
  try { await Promise.race([seen, exited]) } finally { ac.abort(); seen.catch(() => {}); exited.catch(() => {}) }
}

/** haproxy: a tcp frontend with accept-proxy on `front`, to an echo server on `back` sent a PROXY v2 header of its own. */
async function startHaproxy (t: Parameters<typeof makeMesh>[0], dir: string): Promise<{ front: string, backHeaders: ParsedProxyV2[] }> {
  const front = join(dir, 'haproxy.sock')
  const back = join(dir, 'echo.sock')
  const backHeaders: ParsedProxyV2[] = []
  const sockets = new Set<Socket>()
  const echo = createServer({ allowHalfOpen: true }, s => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    s.on('error', () => {})
    readProxyV2(s).then(({ header, rest }) => { backHeaders.push(header); s.write(rest); s.pipe(s); s.resume() }, () => s.destroy())
  })
  echo.listen(back)
  await once(echo, 'listening')
  t.teardown(() => new Promise<void>(resolve => { for (const s of sockets) s.destroy(); echo.close(() => resolve()) }))
  const cfg = join(dir, 'haproxy.cfg')
  await writeFile(cfg, [
    'global',
    '  maxconn 100',
    'defaults',
    '  mode tcp',
    '  timeout connect 5s',
    '  timeout client 60s',
    '  timeout server 60s',
    'frontend from_mesh_proxy',
    `  bind unix@${front} accept-proxy`,
    '  default_backend echo',
    'backend echo',
    `  server echo unix@${back} send-proxy-v2`,
    ''
  ].join('\n'))
  let stderr = ''
  const child = spawn('haproxy', ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] })
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString() })
  t.teardown(async () => { if (child.exitCode === null && child.signalCode === null) { child.kill('SIGTERM'); await once(child, 'exit') } })
  await appears(dir, front, child, () => stderr)
  return { front, backHeaders }
}

/** One mTLS connection as web from `host` to db's inbound: send, half-close, read the echo. */
async function callDb (mesh: TestMesh, host: string, port: number, msg: string): Promise<{ echoed: string, local: { address: string, port: number } }> {
  const web = await mesh.leaf('web')
  const c = tlsConnect({ host, port, servername: 'db', ca: mesh.ca.certPem, cert: web.certPem, key: web.keyPem })
  c.on('error', () => {})
  await once(c, 'secureConnect')
  const local = { address: c.localAddress!, port: c.localPort! }
  let echoed = ''
  c.on('data', (d: Buffer) => { echoed += d.toString() })
  c.end(msg)
  await new Promise(resolve => c.once('close', resolve))
  return { echoed, local }
}

t.test('haproxy accepts our PROXY v2 header as the connection\'s origin', { skip: haproxyVersion === null ? `haproxy is not installed (${probe.error?.message ?? probe.stderr}); on Debian: apt-get install -y haproxy` : false }, async t => {
  t.comment(`receiver: ${haproxyVersion}`)
  const dir = await mkdtemp(join(tmpdir(), 'mp-hap-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const mesh = await makeMesh(t)
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }])
  const hap = await startHaproxy(t, dir)

  for (const [family, listen, host, mapped] of [['TCP4', '127.0.0.1:0', '127.0.0.1', '127.0.0.1'], ['TCP6', '[::1]:0', '::1', '0:0:0:0:0:0:0:1']] as const) {
    const db = await startSidecar(t, { service: 'db', listen, to: `unix:${hap.front}`, meshDir: mesh.dir, proxyProtocol: 'v2' })
    const inbound = db.addrs.inbound!
    const { echoed, local } = await callDb(mesh, host, inbound.port, `hello over ${family}`)
    t.equal(echoed, `hello over ${family}`, `${family}: haproxy took the header and relayed the bytes after it, both ways`)
    const h = hap.backHeaders.at(-1)
    t.match(h, { command: 'PROXY', family, source: { address: mapped, port: local.port }, destination: { address: mapped, port: inbound.port } }, `${family}: haproxy read our addresses (it repeats them to its own backend)`)
    await db.stop()
  }

  // The control: the same frontend, no header from us: haproxy refuses it and the echo server never hears of it.
  const before = hap.backHeaders.length
  const plain = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `unix:${hap.front}`, meshDir: mesh.dir })
  const { echoed } = await callDb(mesh, '127.0.0.1', plain.addrs.inbound!.port, 'no header')
  t.equal(echoed, '', 'without the header haproxy closes the connection')
  t.equal(hap.backHeaders.length, before, 'and nothing reached its backend')
  await plain.stop()
})
