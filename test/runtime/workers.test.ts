// Why: `run --workers 2` is one sidecar made of several processes. From the
// outside it must look like one: one listening port, one /ready that is 200
// only when every worker is, one valid /metrics, one catalog entry, one
// SIGTERM that drains everything and exits 0; a worker that dies is replaced,
// and a worker that cannot start stops the whole thing with exit 1. And a
// client resumes whichever worker it reaches: one resumption, one sidecar.
import t from 'tap'
import { createServer } from 'node:net'
import { once } from 'node:events'
import { readdir } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { spawnCli } from '../helpers/cli.js'
import { makeMesh, startApp, startSidecar, mtlsTry, echo, echoRoundTrip as roundTrip } from '../helpers/mesh.js'


const alive = (pid: number): boolean => {
  try { return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]![0] !== 'Z' } catch { return false }
}

t.test('two workers: one port, aggregated admin, one catalog entry, restart, drain', async t => {
  const mesh = await makeMesh(t)
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }])
  const app = await startApp(t, echo)
  const { child, sink } = spawnCli(t, ['run', '--service', 'db', '--listen', '127.0.0.1:0', '--to', `127.0.0.1:${app.port}`, '--mesh-dir', mesh.dir, '--admin', '127.0.0.1:0', '--workers', '2'])
  const exited = once(child, 'exit')
  await sink.waitFor(l => l.msg === 'workers ready')
  const admin = Number(String((await sink.waitFor(l => l.msg === 'admin listening')).admin).split(':')[1])
  // Each process writes its own lines: a worker's may reach the pipe after the primary's 'workers ready'.
  await sink.waitFor(() => sink.msgs('sidecar started').length === 2)
  const started = sink.msgs('sidecar started')
  t.equal(started.length, 2, 'each worker started a sidecar')
  t.same(started.map(l => l.worker).sort(), [0, 1])
  t.equal(started[0]!.inbound, started[1]!.inbound, 'both serve the same listening socket')
  const port = Number(String(started[0]!.inbound).split(' => ')[0]!.split(':')[1])
  const pids = Object.fromEntries(sink.msgs('worker started').map(l => [String(l.worker), Number(l.pid)]))

  const ready = await fetch(`http://127.0.0.1:${admin}/ready`)
  t.equal(ready.status, 200, '/ready 200 when every worker is ready')
  t.match(await ready.json(), { state: 'ready', workers: [{ worker: 0, ready: true, state: 'ready' }, { worker: 1, ready: true, state: 'ready' }] })

  const web = await mesh.leaf('web')
  for (let i = 0; i < 10; i++) t.equal((await mtlsTry(port, web, mesh.ca.certPem, `hello ${i}`)).received, `hello ${i}`)
  await sink.waitFor(() => sink.msgs('conn closed').length === 10)
  const metrics = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text()
  t.equal(metrics.split('\n').filter(l => l === '# TYPE mesh_proxy_connections_total counter').length, 1, 'one TYPE line per family')
  const allowed = [...metrics.matchAll(/^mesh_proxy_connections_total\{worker="[01]",direction="inbound",result="allowed"\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0)
  t.equal(allowed, 10, 'the workers\' allowed-connection counts add up to the connections made')
  t.match((await (await fetch(`http://127.0.0.1:${admin}/certs`)).json()) as object, { spiffeId: /\/svc\/db$/ }, '/certs answered by a worker')
  t.equal((await readdir(join(mesh.layout.catalog, 'db'))).filter(f => f.endsWith('.json')).length, 1, 'registered once, by worker 0')

  // A worker killed from outside is replaced; the port keeps serving meanwhile.
  process.kill(pids['1']!, 'SIGKILL')
  t.match(await sink.waitFor(l => l.msg === 'worker exited; restarting it'), { worker: 1, signal: 'SIGKILL' })
  const back = await sink.waitFor(l => l.msg === 'worker started' && l.worker === 1 && l.pid !== pids['1'])
  t.equal((await mtlsTry(port, web, mesh.ca.certPem, 'after restart')).received, 'after restart')
  t.equal((await fetch(`http://127.0.0.1:${admin}/ready`)).status, 200, 'ready again with the new worker')

  child.kill('SIGTERM')
  const [code] = await exited as [number]
  t.equal(code, 0, 'SIGTERM: every worker drained, exit 0')
  t.ok(sink.lines.some(l => l.msg === 'all workers stopped'))
  t.equal(sink.msgs('sidecar stopped').length, 2, 'both live workers stopped their sidecar')
  t.notOk(alive(pids['0']!), 'worker 0 is gone')
  t.notOk(alive(Number(back.pid)), 'the restarted worker 1 is gone')
})

t.test('a worker that cannot start stops everything with exit 1 and its error', async t => {
  const mesh = await makeMesh(t)
  const busy = createServer()
  busy.listen(0, '127.0.0.1')
  await once(busy, 'listening')
  t.teardown(() => busy.close())
  const taken = (busy.address() as { port: number }).port
  const { child, sink, stderr } = spawnCli(t, ['run', '--service', 'db', '--listen', `127.0.0.1:${taken}`, '--to', '127.0.0.1:9', '--mesh-dir', mesh.dir, '--admin', 'off', '--workers', '2'])
  const [code] = await once(child, 'exit') as [number]
  t.equal(code, 1)
  t.match(stderr(), new RegExp(`127\\.0\\.0\\.1:${taken}`), 'the worker\'s error names the address')
  t.ok(sink.lines.some(l => l.msg === 'worker failed to start; stopping all workers'))
})

t.test('workers whose primary is killed do not live on as orphans', async t => {
  const mesh = await makeMesh(t)
  const app = await startApp(t, echo)
  const { child, sink } = spawnCli(t, ['run', '--service', 'db', '--listen', '127.0.0.1:0', '--to', `127.0.0.1:${app.port}`, '--mesh-dir', mesh.dir, '--admin', 'off', '--workers', '2'])
  await sink.waitFor(l => l.msg === 'workers ready')
  const pids = sink.msgs('worker started').map(l => Number(l.pid))
  t.teardown(() => { for (const p of pids) { try { process.kill(p, 'SIGKILL') } catch {} } })
  child.kill('SIGKILL')
  await once(child, 'exit')
  // node:cluster exits a worker whose IPC channel to the primary closed. Another
  // process's exit gives this one no event to await: poll /proc.
  for (const pid of pids) {
    while (alive(pid)) await new Promise(resolve => setTimeout(resolve, 10))
    t.notOk(alive(pid), `worker ${pid} exited`)
  }
})

t.test('only worker 0 renews the mesh dir leaf; the other follows the files', async t => {
  const mesh = await makeMesh(t)
  const app = await startApp(t, echo)
  // makeMesh's leaf lives for a year: remove it, so that the primary issues one with --leaf-ttl.
  const { rm } = await import('node:fs/promises')
  await rm(mesh.layout.certFor('db'))
  const { child, sink } = spawnCli(t, ['run', '--service', 'db', '--listen', '127.0.0.1:0', '--to', `127.0.0.1:${app.port}`, '--mesh-dir', mesh.dir, '--admin', 'off', '--workers', '2', '--leaf-ttl', '8s'])
  await sink.waitFor(() => sink.msgs('sidecar started').length === 2) // each worker's own line (see the first test)
  const first = sink.msgs('sidecar started').map(l => l.notAfter)
  t.equal(first[0], first[1], 'both workers start on the leaf the primary issued')
  const renewed = await sink.waitFor(l => l.msg === 'certificates reloaded' && l.worker === 0 && l.why === 'renewal due')
  const followed = await sink.waitFor(l => l.msg === 'certificates reloaded' && l.worker === 1 && l.serial === renewed.serial)
  t.equal(followed.why, 'file changed', 'worker 1 picked the new leaf up from the files')
  t.notOk(sink.lines.some(l => l.worker === 1 && l.why === 'renewal due'), 'worker 1 never issued a leaf itself')
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  t.equal((await exited as [number])[0], 0)
})

t.test('connections to a multi-worker sidecar are served whichever worker made their TLS session', async t => {
  const mesh = await makeMesh(t)
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }])
  const app = await startApp(t, echo)
  const { child, sink } = spawnCli(t, ['run', '--service', 'db', '--listen', '127.0.0.1:0', '--to', `127.0.0.1:${app.port}`, '--mesh-dir', mesh.dir, '--admin', 'off', '--workers', '2'])
  await sink.waitFor(l => l.msg === 'workers ready')
  const web = await startSidecar(t, { service: 'web', upstream: ['db:0'], meshDir: mesh.dir })
  const port = web.addrs.upstreams.get('db')!.port
  for (let i = 0; i < 12; i++) t.equal(await roundTrip(port, `m${i}`), `m${i}`, `connection ${i} served`)
  await sink.waitFor(() => sink.msgs('conn closed').length === 12)
  t.same(sink.msgs('conn rejected'), [], 'no refusals')
  t.ok(sink.msgs('conn closed').every(l => l.source === 'web' && l.reason === 'eof'), 'every connection identified as web and relayed to its end')
  t.ok(sink.msgs('conn closed').some(l => l.resumed === true), 'workers issue tickets: later connections resume')
  await web.stop()
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  t.equal((await exited as [number])[0], 0)
})

t.test('a PSK one worker made resumes on the other: the workers pass it on', async t => {
  const mesh = await makeMesh(t)
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }])
  const app = await startApp(t, echo)
  // debug: the 'sibling psk' line says when the other worker has it.
  const { child, sink } = spawnCli(t, ['run', '--service', 'db', '--listen', '127.0.0.1:0', '--to', `127.0.0.1:${app.port}`, '--mesh-dir', mesh.dir, '--admin', 'off', '--workers', '2', '--log-level', 'debug'])
  await sink.waitFor(l => l.msg === 'workers ready')
  const web = await startSidecar(t, { service: 'web', upstream: ['db:0'], meshDir: mesh.dir })
  const port = web.addrs.upstreams.get('db')!.port
  const closed = (n: number) => sink.waitFor(l => l.msg === 'conn closed' && sink.msgs('conn closed').indexOf(l) === n)
  t.equal(await roundTrip(port, 'm0'), 'm0')
  const first = await closed(0)
  t.match(first, { resumed: false, psk: false }, 'the first connection is a full handshake')
  const other = first.worker === 0 ? 1 : 0
  await sink.waitFor(l => l.msg === 'sibling psk' && l.worker === other && l.result === 'adopted')
  // The kernel picks the worker of each connection: go on until one lands on the other.
  let line = first
  for (let i = 1; i <= 50 && line.worker !== other; i++) {
    t.equal(await roundTrip(port, `m${i}`), `m${i}`)
    line = await closed(i)
  }
  t.match(line, { worker: other, resumed: true, psk: true, source: 'web' }, 'the other worker resumed a PSK it did not make')
  t.equal(sink.msgs('conn closed').filter(l => l.resumed !== true).length, 1, 'one full handshake for every connection')
  await web.stop()
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  t.equal((await exited as [number])[0], 0)
})
