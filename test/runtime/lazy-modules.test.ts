// Why: a sidecar that only reads certificates must not pay for the library that
// writes them (@peculiar/x509 costs 136-280 ms and 13 MB at start). The SVID
// checks read DER with node:crypto and core/identity/der.ts; the TLS probe's
// chain is made ahead of time. Proved by running sidecars under a module hook
// that refuses to load @peculiar/x509 or pkijs: they must still serve.
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'node:http'
import { ROOT } from '../helpers/paths.js'
import { LogSink } from '../helpers/mesh.js'
import { freePort } from '../helpers/ports.js'
import { seedMeshDir } from '../../src/meshdir/seed.js'

const dev = (f: string): string => join(ROOT, 'certs-dev', f)

function hookFile (dir: string): string {
  const hook = join(dir, 'refuse-cert-writers.mjs')
  const resolve = 'export async function resolve (s, c, next) { if (s.startsWith("@peculiar/") || s === "pkijs") throw new Error("refused to load " + s); return next(s, c) }'
  writeFileSync(hook, `import { register } from 'node:module'\nregister('data:text/javascript,' + encodeURIComponent(${JSON.stringify(resolve)}))\n`)
  return hook
}

async function readyStatus (admin: string): Promise<number> {
  return await new Promise((resolve, reject) => {
    const req = request(`http://${admin}/ready`, res => { res.resume(); resolve(res.statusCode ?? 0) })
    req.on('error', reject)
    req.end()
  })
}

t.test('the hook itself refuses @peculiar/x509 (so the rows below can fail)', async t => {
  const hook = hookFile(t.testdir({}))
  const r = spawnSync(process.execPath, ['--import', hook, '--input-type=module', '-e', "await import('@peculiar/x509')"], { cwd: ROOT, encoding: 'utf8' })
  t.not(r.status, 0)
  t.match(r.stderr, /refused to load @peculiar\/x509/)
})

t.test('sidecars that only read certificates serve without @peculiar/x509 or pkijs', async t => {
  const dir = t.testdir({})
  const hook = hookFile(dir)
  const mesh = await seedMeshDir(join(dir, 'mesh')) // certs-dev's leaves, already on disk
  const app = `127.0.0.1:${await freePort()}`
  const rows: Array<[string, string[]]> = [
    ['--cert/--key/--ca and --intentions', ['--cert', dev('db.pem'), '--key', dev('db.key'), '--ca', dev('ca.pem'), '--intentions', dev('intentions.json')]],
    ['a mesh dir whose leaf is on disk', ['--mesh-dir', mesh.root]]
  ]
  for (const [why, flags] of rows) {
    const child = spawn(process.execPath, ['--import', hook, join(ROOT, 'bin', 'mesh-proxy.js'), 'run', '--service', 'db', '--listen', '127.0.0.1:0', '--to', app, '--admin', '127.0.0.1:0', ...flags], { stdio: ['ignore', 'pipe', 'pipe'] })
    t.teardown(() => { child.kill('SIGKILL') })
    const sink = new LogSink()
    child.stdout.pipe(sink)
    let err = ''
    child.stderr.on('data', (d: Buffer) => { err += d.toString() })
    const exited = new Promise<number | null>(resolve => child.once('exit', resolve))
    const admin = await Promise.race([sink.waitFor(l => l.msg === 'admin listening'), exited.then(code => { throw new Error(`${why}: exited ${String(code)}: ${err}`) })])
    await sink.waitFor(l => l.msg === 'sidecar started')
    t.equal(await readyStatus(admin.admin as string), 200, `${why}: /ready is 200`)
    child.kill('SIGTERM')
    t.equal(await exited, 0, `${why}: a clean stop`)
    t.notMatch(err, /refused to load/, `${why}: nothing asked for a certificate writer`)
  }
})
