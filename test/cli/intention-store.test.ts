// Why: the intentions store is shared by every CLI call and sidecar. Several
// processes creating intentions at once must not lose any write (lock + atomic
// rename); get/match/-meta/-audit/default-policy behave as documented; a
// corrupt store makes `check` exit 2, not "Denied".
import t from 'tap'
import { spawn } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ROOT } from '../helpers/paths.js'
import { runCli } from '../helpers/cli.js'
import { readIntentions } from '../../src/meshdir/intentions-store.js'

const BIN = join(ROOT, 'bin', 'mesh-proxy.js')

const run = runCli

t.test('concurrent creates from several processes: none lost', async t => {
  const dir = t.testdir({})
  const N = 8
  const codes = await Promise.all(Array.from({ length: N }, (_, i) => new Promise<number | null>(resolve => {
    const c = spawn(process.execPath, [BIN, 'intention', 'create', '-allow', `svc-${i}`, 'db', '--mesh-dir', dir], { stdio: 'ignore' })
    c.on('exit', resolve)
  })))
  t.same(codes, Array(N).fill(0), 'every process succeeded')
  const doc = await readIntentions(join(dir, 'intentions.json'))
  t.equal(doc.intentions.length, N, 'all intentions present')
  t.equal(doc.index, N, 'one index bump per write')
  t.same(doc.intentions.map(i => i.source).sort(), Array.from({ length: N }, (_, i) => `svc-${i}`).sort())
})

t.test('get, match, meta, audit, default-policy', async t => {
  const d = ['--mesh-dir', t.testdir({})]
  t.equal((await run(['intention', 'create', '-deny', '*', 'db', '-description', 'lock down db', ...d])).code, 0)
  t.equal((await run(['intention', 'create', '-allow', 'web', 'db', '-meta', 'owner=team-a', '-meta', 'ticket=42', ...d])).code, 0)
  t.equal((await run(['intention', 'create', '-deny', 'billing', 'db', '-audit', ...d])).code, 0)
  t.equal((await run(['intention', 'create', '-deny', 'web', '*', ...d])).code, 0)
  const got = JSON.parse((await run(['intention', 'get', 'web', 'db', '--json', ...d])).out)
  t.same(got.meta, { owner: 'team-a', ticket: '42' })
  t.match((await run(['intention', 'get', '*', 'db', ...d])).out, /^\* => db {2}deny {2}precedence 8 {2}"lock down db"$/)
  t.equal((await run(['intention', 'get', 'cache', 'db', ...d])).code, 2)
  t.equal((await run(['intention', 'match', 'db', ...d])).out, [
    'billing => db  deny  precedence 9  audit',
    'web => db  allow  precedence 9  owner=team-a,ticket=42',
    '* => db  deny  precedence 8  "lock down db"',
    'web => *  deny  precedence 6'
  ].join('\n'))
  t.equal((await run(['intention', 'match', '-source', 'web', ...d])).out.split('\n').length, 3, 'web => db, * => db, web => *')
  const audit = await run(['intention', 'check', 'billing', 'db', '-explain', ...d])
  t.equal(audit.code, 0, 'audit-mode deny still allows')
  t.match(audit.out, /Allowed\ndecided by billing => db \(precedence 9\): would deny/)
  t.equal((await run(['intention', 'check', 'cache', 'db', ...d])).code, 1, '* => db denies cache')
  t.equal((await run(['intention', 'default-policy', ...d])).out, 'deny')
  t.equal((await run(['intention', 'default-policy', 'allow', ...d])).code, 0)
  t.equal((await run(['intention', 'check', 'cache', 'web', ...d])).code, 0, 'no match: default policy allow')
  t.match((await run(['intention', 'default-policy', 'maybe', ...d])).err, /default policy must be "allow" or "deny"/)
})

t.test('a corrupt store is exit 2 with the file named', async t => {
  const dir = t.testdir({})
  await writeFile(join(dir, 'intentions.json'), '{"intentions": [')
  const r = await run(['intention', 'check', 'web', 'db', '--mesh-dir', dir])
  t.equal(r.code, 2)
  t.match(r.err, /intentions file .*intentions\.json is not valid JSON/)
})

t.test('intention create -source-trust-domain: a source of a federated trust domain, beside ours', async t => {
  const dir = t.testdir({})
  const d = ['--mesh-dir', dir]
  t.equal((await run(['intention', 'create', '-deny', 'web', 'db', ...d])).code, 0)
  const r = await run(['intention', 'create', '-allow', 'web', 'db', '-source-trust-domain', 'other.org', ...d])
  t.equal(r.code, 0)
  t.match(r.out, /^Created: web \(other\.org\) => db \(allow\)/)
  t.equal((await run(['intention', 'create', '-allow', 'web', 'db', '-source-trust-domain', 'other.org', ...d])).code, 2, 'the same pair of that trust domain again: refused without -replace')
  t.equal((await run(['intention', 'create', '-allow', 'web', 'db', '-source-trust-domain', 'Not A Domain', ...d])).code, 2)
  const doc = await readIntentions(join(dir, 'intentions.json'))
  t.same(doc.intentions.map(i => [i.source, i.sourceTrustDomain, i.action]), [['web', undefined, 'deny'], ['web', 'other.org', 'allow']])
})
