// Why: codes are API (scripts branch on them), so each one is documented:
// docs/errors.md lists exactly the codes of src/core/errors.ts, one table
// row each, and says "exit 2" for exactly the codes the CLI exits 2 on.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT } from '../helpers/paths.js'
import { ERR, USAGE_ERROR_CODES, ConsulError, ListenError, ConfigError, MeshProxyError } from '../../src/core/errors.js'

const doc = readFileSync(join(ROOT, 'docs', 'errors.md'), 'utf8')
const codes = Object.values(ERR) as string[]

/** `code` → the cells of its table row. */
const rows = new Map<string, string[]>()
for (const line of doc.split('\n')) {
  const m = /^\|\s*`(MP_ERR_[A-Z0-9_]+)`\s*\|/.exec(line)
  if (m !== null) rows.set(m[1]!, line.split('|').slice(1, -1).map(c => c.trim()))
}

t.test('every code is a value of its own name', async t => {
  for (const [name, code] of Object.entries(ERR)) t.equal(code, `MP_ERR_${name}`, name)
  t.equal(new Set(codes).size, codes.length, 'no code twice')
})

t.test('docs/errors.md has a row for every code in src/core/errors.ts', async t => {
  t.same(codes.filter(c => !rows.has(c)), [], 'codes missing from docs/errors.md')
})

t.test('docs/errors.md names no code that does not exist', async t => {
  const mentioned = new Set(doc.match(/MP_ERR_[A-Z0-9_]+/g) ?? [])
  t.same([...mentioned].filter(c => !codes.includes(c)), [], 'codes in docs/errors.md but not in ERR')
  t.same([...rows.keys()].filter(c => !codes.includes(c)), [], 'rows for codes not in ERR')
})

t.test('docs/errors.md says exit 2 for exactly the usage codes', async t => {
  for (const [code, cells] of rows) {
    t.equal(/^\*exit 2\*/.test(cells.at(-1) ?? ''), USAGE_ERROR_CODES.has(code as never), `${code}: "Where it appears" starts with *exit 2* iff the CLI exits 2 on it`)
  }
})

t.test('the moved classes keep their codes and messages', async t => {
  const listen = new ListenError('--listen', '127.0.0.1:1 is already in use', new Error('EADDRINUSE'))
  t.ok(listen instanceof ConfigError && listen instanceof MeshProxyError)
  t.match(listen, { code: ERR.CONFIG, field: '--listen', message: '--listen: cannot listen: 127.0.0.1:1 is already in use', name: 'ListenError' })
  t.match(new ConsulError('roots response has no Roots[].RootCert'), { code: ERR.CONSUL_RESPONSE, name: 'ConsulError', message: 'roots response has no Roots[].RootCert' })
  t.equal(new ConsulError('no answer', { unreachable: true }).code, ERR.CONSUL_UNREACHABLE)
})
