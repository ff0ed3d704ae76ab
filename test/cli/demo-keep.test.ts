// Why: `demo --keep` is where a newcomer first plays with the mesh. It printed
// an `nc` command (not on a plain Node image) and no admin address, and Ctrl-C
// printed nothing and left its temporary mesh dir, CA key included, behind. It
// now prints what runs where, a node-only way to try it and the equivalent
// `mesh-proxy run` lines; on SIGINT/SIGTERM it says so, stops, removes a
// temporary mesh dir (never one given with --mesh-dir) and exits 0.
import t, { type Test } from 'tap'
import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { ROOT } from '../helpers/paths.js'

const BIN = join(ROOT, 'bin', 'mesh-proxy.js')
const READY = 'Ctrl-C (SIGINT) or SIGTERM stops the mesh.'

/** `demo --keep` in its own process, admin ports ephemeral; resolves once it says it is running. */
async function keep (t: Test, extra: string[] = []): Promise<{ child: ChildProcess, out: () => string, exited: Promise<number | null> }> {
  const child = spawn(process.execPath, [BIN, 'demo', '--keep', '--admin-port', '0', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { child.kill('SIGKILL') })
  let out = ''
  let err = ''
  const exited = new Promise<number | null>(resolve => child.once('exit', resolve))
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); if (out.includes(READY)) resolve() })
    child.stderr!.on('data', (d: Buffer) => { err += d.toString() })
    void exited.then(code => { reject(new Error(`demo --keep exited ${String(code)} before it was running: ${err}`)) })
  })
  return { child, out: () => out, exited }
}

t.test('--keep prints where, how to try it with node, the run lines; SIGINT removes the temp dir, exit 0', async t => {
  const { child, out, exited } = await keep(t)
  const dir = /^mesh dir: (\S+)/m.exec(out())![1]!
  t.ok(existsSync(join(dir, 'ca', 'root.key')), 'the temporary mesh dir is there while it runs')
  t.notMatch(out(), /\bnc\b/, 'no nc')
  for (const s of ['db', 'web', 'billing']) t.match(out(), new RegExp(`mesh-proxy run --service ${s} .*--mesh-dir ${dir} --admin 127\\.0\\.0\\.1:\\d+`), `the run line of ${s}`)
  const admins = [...out().matchAll(/admin http:\/\/(127\.0\.0\.1:\d+)/g)].map(m => m[1]!)
  t.equal(admins.length, 3, 'an admin address per sidecar')
  const ready = await fetch(`http://${admins[1]!}/ready`)
  t.equal(ready.status, 200, "web's admin answers /ready")

  // The printed node one-liners, run as printed (with this node).
  const lines = [...out().matchAll(/^ {2}node -e "(.*)"\s+#/gm)].map(m => m[1]!)
  t.equal(lines.length, 2, 'a node-only client for web and for billing')
  const run = promisify(execFile)
  t.match((await run(process.execPath, ['-e', lines[0]!])).stdout, /^db: got "hi from web"/, 'web reaches db')
  t.match((await run(process.execPath, ['-e', lines[1]!])).stdout, /^(refused: ECONNRESET|connection closed, no answer)\n$/, 'billing is refused (a reset: the denying sidecar resets)')

  child.kill('SIGINT')
  t.equal(await exited, 0, 'exit 0')
  t.match(out(), /stopping \(SIGINT\): closing the sidecars and the db app/, 'says it is stopping')
  t.match(out(), `removed the temporary mesh dir ${dir}`, 'says the temp dir is gone')
  t.notOk(existsSync(dir), 'the temporary mesh dir is gone')
})

t.test('--keep --mesh-dir: SIGTERM stops, the given dir is kept', async t => {
  const dir = join(t.testdir({}), 'mesh')
  const { child, out, exited } = await keep(t, ['--mesh-dir', dir])
  t.notMatch(out(), /is removed when the demo stops/)
  child.kill('SIGTERM')
  t.equal(await exited, 0, 'exit 0')
  t.match(out(), /stopping \(SIGTERM\)/)
  t.match(out(), `kept the mesh dir ${dir}`)
  t.ok(existsSync(join(dir, 'ca', 'root.key')), 'a given mesh dir is never deleted')
})

t.test('--admin-port that is not a port: exit 2 before anything is written', async t => {
  const child = spawn(process.execPath, [BIN, 'demo', '--keep', '--admin-port', 'x'], { stdio: ['ignore', 'ignore', 'pipe'] })
  let err = ''
  child.stderr.on('data', (d: Buffer) => { err += d.toString() })
  t.equal(await new Promise(resolve => child.once('exit', resolve)), 2)
  t.match(err, /--admin-port: must be a port/)
})
