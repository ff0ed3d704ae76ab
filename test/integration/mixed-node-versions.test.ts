// Why: sidecars are upgraded one at a time, so a mesh runs several Node
// versions at once: an inbound on Node 24 with an outbound on Node 20 refused
// every resumed connection. Each other Node version found in the cache
// .ci/run fills (or in MESH_PROXY_OTHER_NODES, colon-separated paths) runs one
// side of a pair against this process's Node on the other: full handshake
// first, PSK resumption after, every connection served, both ways round.
import t, { type Test } from 'tap'
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { makeMesh, startApp, startSidecar, echo, echoRoundTrip, type TestMesh } from '../helpers/mesh.js'
import { spawnCli } from '../helpers/cli.js'

/** Node binaries other than this one: path and version. */
function otherNodes (): Array<{ path: string, version: string }> {
  const given = process.env.MESH_PROXY_OTHER_NODES?.split(':').filter(p => p !== '')
  const cache = join(process.env.MESH_PROXY_CACHE ?? join(homedir(), '.cache', 'mesh-proxy'), 'node')
  const found = given ?? (existsSync(cache) ? readdirSync(cache).map(v => join(cache, v, 'bin', 'node')).filter(p => existsSync(p)) : [])
  return found.map(path => ({ path, version: execFileSync(path, ['--version'], { encoding: 'utf8' }).trim() })).filter(n => n.version !== process.version)
}

const ROUNDS = 4

async function allowing (t: Test): Promise<TestMesh> {
  const mesh = await makeMesh(t)
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }])
  return mesh
}

const others = otherNodes()
if (others.length === 0) {
  if (process.env.CI === 'true') t.fail('no other Node version found (.ci/run fetches them into the cache): the mixed-version tests did not run')
  else { t.comment('skipping: no other Node version in the cache (run .ci/run, or set MESH_PROXY_OTHER_NODES)'); t.pass('skipped') }
}
for (const other of others) {
  t.test(`inbound on ${other.version}, outbound on ${process.version}`, async t => {
    const mesh = await allowing(t)
    const app = await startApp(t, echo)
    const db = spawnCli(t, ['run', '--service', 'db', '--listen', '127.0.0.1:0', '--to', `127.0.0.1:${app.port}`, '--mesh-dir', mesh.dir, '--admin', '127.0.0.1:0'], other.path)
    const started = await db.sink.waitFor(l => l.msg === 'sidecar started')
    const dbPort = Number(String(started.inbound).split(' => ')[0]!.split(':').at(-1))
    const web = await startSidecar(t, { service: 'web', upstream: [`db:0=127.0.0.1:${dbPort}`], meshDir: mesh.dir })
    const port = web.addrs.upstreams.get('db')!.port
    for (let i = 0; i < ROUNDS; i++) t.equal(await echoRoundTrip(port, `m${i}`), `m${i}`, `connection ${i} served`)
    await db.sink.waitFor(() => db.sink.msgs('conn closed').length === ROUNDS)
    t.same(db.sink.msgs('conn rejected'), [], 'the inbound rejected nothing')
    t.same(web.sink.msgs('conn closed').map(l => l.psk), [false, ...Array(ROUNDS - 1).fill(true)], 'a full handshake, then PSK resumption')
    await web.stop()
  })

  t.test(`inbound on ${process.version}, outbound on ${other.version}`, async t => {
    const mesh = await allowing(t)
    const app = await startApp(t, echo)
    const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, meshDir: mesh.dir })
    const web = spawnCli(t, ['run', '--service', 'web', '--upstream', `db:0=127.0.0.1:${db.addrs.inbound!.port}`, '--mesh-dir', mesh.dir, '--admin', '127.0.0.1:0'], other.path)
    const started = await web.sink.waitFor(l => l.msg === 'sidecar started')
    const port = Number(String((started.upstreams as string[])[0]).split(' => ')[0]!.split(':').at(-1))
    for (let i = 0; i < ROUNDS; i++) t.equal(await echoRoundTrip(port, `m${i}`), `m${i}`, `connection ${i} served`)
    await db.sink.waitFor(() => db.sink.msgs('conn closed').length === ROUNDS)
    t.same(db.sink.msgs('conn rejected'), [], 'the inbound rejected nothing')
    t.same(db.sink.msgs('conn closed').map(l => l.psk), [false, ...Array(ROUNDS - 1).fill(true)], 'a full handshake, then PSK resumption')
    await db.stop()
  })
}
