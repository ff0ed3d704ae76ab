// Why: the container preloads jemalloc (deploy/Dockerfile) because glibc's
// malloc kept the memory of released connections (bench/RESULTS.md, "Memory
// is given back"). A sidecar must work the same under it: the library is
// really mapped into the process, and bytes flow both ways intact.
import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { connect } from 'node:net'
import { makeMesh, startApp, startSidecar, echo } from '../helpers/mesh.js'
import { spawnCli } from '../helpers/cli.js'

const LIB = ['/usr/lib/x86_64-linux-gnu/libjemalloc.so.2', '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2'].find(p => existsSync(p))

if (LIB === undefined) {
  if (process.env.CI === 'true') t.fail('libjemalloc2 is not installed (Debian package libjemalloc2; .ci/run installs it)')
  else { t.comment('skipping: libjemalloc2 is not installed (apt-get install -y libjemalloc2)'); t.pass('skipped') }
} else {
  t.test('a sidecar with jemalloc preloaded, as in the container', async t => {
    const mesh = await makeMesh(t)
    await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }])
    const app = await startApp(t, echo)
    process.env.LD_PRELOAD = LIB
    process.env.MALLOC_CONF = 'background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:1000'
    const db = spawnCli(t, ['run', '--service', 'db', '--listen', '127.0.0.1:0', '--to', `127.0.0.1:${app.port}`, '--mesh-dir', mesh.dir, '--admin', '127.0.0.1:0'])
    delete process.env.LD_PRELOAD
    delete process.env.MALLOC_CONF
    const started = await db.sink.waitFor(l => l.msg === 'sidecar started')
    t.match(readFileSync(`/proc/${db.child.pid!}/maps`, 'utf8'), /libjemalloc\.so\.2/, 'jemalloc is mapped into the sidecar')
    const dbPort = Number(String(started.inbound).split(' => ')[0]!.split(':').at(-1))
    const web = await startSidecar(t, { service: 'web', upstream: [`db:0=127.0.0.1:${dbPort}`], meshDir: mesh.dir })
    const payload = Buffer.alloc(8 << 20)
    for (let k = 0; k < payload.length; k++) payload[k] = (k * 31 + 7) & 0xff
    const c = connect(web.addrs.upstreams.get('db')!.port, '127.0.0.1')
    const h = createHash('sha256')
    let n = 0
    c.on('data', (d: Buffer) => { h.update(d); n += d.length })
    c.end(payload)
    await new Promise(resolve => c.once('close', resolve))
    t.equal(n, payload.length, 'every byte came back')
    t.equal(h.digest('hex'), createHash('sha256').update(payload).digest('hex'), 'sha256 equal')
    await web.stop()
  })
}

if (LIB !== undefined) {
  t.test('`run` takes jemalloc up by itself where Node can re-exec (22, 24); MESH_PROXY_ALLOCATOR=system opts out', async t => {
    const mesh = await makeMesh(t, ['web'])
    const maps = async (env: Record<string, string>): Promise<string> => {
      const before = { ...process.env }
      Object.assign(process.env, env)
      const p = spawnCli(t, ['run', '--service', 'web', '--upstream', 'db:0=127.0.0.1:9', '--mesh-dir', mesh.dir, '--admin', '127.0.0.1:0'])
      for (const k of Object.keys(env)) { if (before[k] === undefined) delete process.env[k]; else process.env[k] = before[k] }
      await p.sink.waitFor(l => l.msg === 'sidecar started')
      return readFileSync(`/proc/${p.child.pid!}/maps`, 'utf8')
    }
    const canExec = typeof (process as { execve?: unknown }).execve === 'function'
    t.equal(/libjemalloc/.test(await maps({})), canExec, canExec ? 'mapped without any setting' : 'Node 20: not without LD_PRELOAD')
    t.notMatch(await maps({ MESH_PROXY_ALLOCATOR: 'system' }), /libjemalloc/, 'opted out')
  })
}
