// Why: the mesh dir holds the CA's root key. Its directories must be the
// owner's alone whatever the umask, and a mistyped --mesh-dir must be named as
// such, not read as an empty table (exit 0) or created as a stray directory.
import t from 'tap'
import { readdir, stat } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { runCli } from '../helpers/cli.js'
import { startSidecar } from '../helpers/mesh.js'

/** Every directory under `root` (and root itself) with its permission bits. */
async function dirModes (root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = { '.': ((await stat(root)).mode & 0o777).toString(8) }
  for (const e of await readdir(root, { withFileTypes: true, recursive: true })) {
    if (!e.isDirectory()) continue
    const p = join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)
    out[p.slice(root.length + 1)] = ((await stat(p)).mode & 0o777).toString(8)
  }
  return out
}

t.test('under umask 000, every directory of the mesh dir is 0700', async t => {
  const old = process.umask(0o000)
  t.teardown(() => { process.umask(old) })
  const dir = join(t.testdir({}), 'mesh')
  t.equal((await runCli(['ca', 'init', '--mesh-dir', dir])).code, 0)
  t.equal((await runCli(['cert', 'issue', 'web', '--mesh-dir', dir])).code, 0)
  t.equal((await runCli(['ca', 'rotate', '--mesh-dir', dir])).code, 0)
  t.equal((await runCli(['intention', 'create', '-allow', 'web', 'db', '--mesh-dir', dir])).code, 0)
  const web = await startSidecar(t, { service: 'web', listen: '127.0.0.1:0', to: '127.0.0.1:9', meshDir: dir }) // registers in catalog/
  const modes = await dirModes(dir)
  t.ok(Object.keys(modes).length >= 4, `directories seen: ${Object.keys(modes).join(', ')}`)
  t.same(Object.entries(modes).filter(([, m]) => m !== '700'), [], 'no directory other than 0700')
  await web.stop()
})

t.test('a mesh dir that does not exist is named, and nothing is created', async t => {
  const missing = join(t.testdir({}), 'no-such-mesh')
  for (const args of [['intention', 'list'], ['intention', 'create', '-allow', 'web', 'db'], ['intention', 'check', 'web', 'db'], ['intention', 'delete', 'web', 'db'], ['intention', 'match', 'db']]) {
    const r = await runCli([...args, '--mesh-dir', missing])
    t.equal(r.code, 2, `${args.join(' ')}: exit 2`)
    t.match(r.err, new RegExp(`--mesh-dir: ${missing.replace(/[/.]/g, '\\$&')} does not exist; create the mesh dir with "mesh-proxy ca init`), `${args.join(' ')}: names the dir and the fix`)
  }
  t.notOk(existsSync(missing), 'no stray directory')
})
