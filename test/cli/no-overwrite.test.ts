// Why: a mesh dir's CA key is what every identity in the mesh rests on.
// `demo --seed-only --mesh-dir <a real mesh dir>` used to replace it, silently
// and with exit 0, by the dev CA whose private key is committed. No writer of a
// CA or a key may replace one without an explicit --force; without it, it says
// which dir and what to do, exits 2 and leaves every file as it was.
import t, { type Test } from 'tap'
import { readdir, readFile } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { runCli } from '../helpers/cli.js'
import { CERTS_DEV_DIR } from '../../src/meshdir/seed.js'

/** Every file under `root` with a hash of its bytes (temp files of a half-done write included). */
async function snapshot (root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const e of await readdir(root, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue
    const p = join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)
    out[p.slice(root.length + 1)] = createHash('sha256').update(await readFile(p)).digest('hex')
  }
  return out
}

/** A mesh dir made by `ca init`, with web's leaf issued. */
async function realMesh (t: Test): Promise<string> {
  const dir = join(t.testdir({}), 'mesh')
  t.equal((await runCli(['ca', 'init', '--mesh-dir', dir, '--trust-domain', 'prod.consul'])).code, 0)
  t.equal((await runCli(['cert', 'issue', 'web', '--mesh-dir', dir])).code, 0)
  return dir
}

const refusals: Array<{ name: string, args: (dir: string) => string[], says: RegExp }> = [
  { name: 'demo --seed-only --mesh-dir', args: d => ['demo', '--seed-only', '--mesh-dir', d], says: /already holds a CA \(ca\/root\.pem, ca\/root\.key, certs\/web\.key\).*dev CA, whose private key is public\. Nothing was written\. Give --force to replace it, or choose another --mesh-dir/ },
  { name: 'demo --mesh-dir', args: d => ['demo', '--mesh-dir', d], says: /already holds a CA .*Give --force/ },
  { name: 'ca init', args: d => ['ca', 'init', '--mesh-dir', d], says: /root\.pem and .*root\.key already exist; this mesh dir has a CA\. Nothing was written\. Give --force/ },
  { name: 'cert issue', args: d => ['cert', 'issue', 'web', '--mesh-dir', d], says: /web\.key already exists; web has a key\. Nothing was written\. Give --force/ },
  { name: 'dev gen-certs', args: d => ['dev', 'gen-certs', join(d, 'ca')], says: /already holds a CA or keys/ }
]

for (const r of refusals) {
  t.test(`${r.name} refuses to replace a CA or key: exit 2, nothing written`, async t => {
    const dir = await realMesh(t)
    if (r.name === 'dev gen-certs') { // a dir laid out as certs-dev/ is: ca.pem, ca.key
      const { copyFile } = await import('node:fs/promises')
      await copyFile(join(dir, 'ca', 'root.pem'), join(dir, 'ca', 'ca.pem'))
      await copyFile(join(dir, 'ca', 'root.key'), join(dir, 'ca', 'ca.key'))
    }
    const before = await snapshot(dir)
    const res = await runCli(r.args(dir))
    t.equal(res.code, 2, 'exit 2')
    t.match(res.err, r.says, 'says why and what to do')
    t.match(res.err, r.name === 'dev gen-certs' ? join(dir, 'ca') : dir, 'names the dir')
    t.same(await snapshot(dir), before, 'every file as it was, no temp file left')
  })
}

t.test('with --force each of them replaces', async t => {
  const dir = await realMesh(t)
  const caBefore = await readFile(join(dir, 'ca', 'root.key'), 'utf8')
  const webBefore = await readFile(join(dir, 'certs', 'web.key'), 'utf8')
  t.equal((await runCli(['cert', 'issue', 'web', '--mesh-dir', dir, '--force'])).code, 0)
  t.not(await readFile(join(dir, 'certs', 'web.key'), 'utf8'), webBefore, 'cert issue --force: a new key')
  t.equal((await runCli(['ca', 'init', '--mesh-dir', dir, '--force'])).code, 0)
  t.not(await readFile(join(dir, 'ca', 'root.key'), 'utf8'), caBefore, 'ca init --force: a new CA')
  t.equal((await runCli(['demo', '--seed-only', '--mesh-dir', dir, '--force'])).code, 0)
  t.equal(await readFile(join(dir, 'ca', 'root.pem'), 'utf8'), await readFile(join(CERTS_DEV_DIR, 'ca.pem'), 'utf8'), 'demo --force: the dev CA')
  const dev = join(t.testdir({}), 'dev')
  t.equal((await runCli(['dev', 'gen-certs', dev])).code, 0, 'gen-certs into a new dir needs no --force')
  t.equal((await runCli(['dev', 'gen-certs', dev])).code, 2, 'again: refused')
  t.equal((await runCli(['dev', 'gen-certs', dev, '--force'])).code, 0, 'again with --force')
})

t.test('demo --seed-only into a new or empty dir needs no --force', async t => {
  const dir = t.testdir({})
  t.equal((await runCli(['demo', '--seed-only', '--mesh-dir', join(dir, 'new')])).code, 0)
  t.equal((await runCli(['demo', '--seed-only', '--mesh-dir', dir])).code, 0, 'an existing empty dir')
})
