// Why: the settings of `run` are listed once, in src/core/config/fields.ts.
// The command line and resolveConfig read that table; the README's flags
// table is written by hand, so this test holds it to the field table (flag,
// file key, environment variable), and holds each row to itself: the key is
// commander's name for the flag, the help names the env var and the default,
// and the default the help states is the one resolveConfig applies.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Option } from 'commander'
import { ConfigError } from '../../../src/core/errors.js'
import { FIELDS, RUN_CLI_FLAGS, flagName, type Field, type Flag } from '../../../src/core/config/fields.js'
import { parseDuration, resolveConfig } from '../../../src/core/config/resolve.js'
import { ROOT } from '../../helpers/paths.js'

const fields = Object.entries(FIELDS) as Array<[string, Field<unknown>]>
const cliOnly = Object.entries(RUN_CLI_FLAGS) as Array<[string, Flag]>

interface Row { readonly flag: string, readonly fileKey: string, readonly env: string }

/** The rows of the README's "Flags of `run`" table: | flag | file key | env | default | meaning |. */
function readmeRows (): Row[] {
  const text = readFileSync(join(ROOT, 'README.md'), 'utf8')
  const start = text.indexOf('### Flags of `run`')
  if (start < 0) throw new Error('README.md has no "### Flags of `run`" section')
  const section = text.slice(start).split('\n').slice(1)
  const rows: Row[] = []
  for (const line of section) {
    if (line.startsWith('#')) break
    if (!line.startsWith('| `--')) continue
    const cells = line.slice(1, -1).split(' | ').map(c => c.trim().replace(/^`|`$/g, ''))
    rows.push({ flag: cells[0] ?? '', fileKey: cells[1] ?? '', env: cells[2] ?? '' })
  }
  return rows
}

t.test('the README flags table and the field table list the same flags, file keys and env vars', async t => {
  const rows = readmeRows()
  const want: Row[] = [
    ...fields.map(([key, f]) => ({ flag: flagName(f), fileKey: key, env: f.env ?? '—' })),
    ...cliOnly.map(([, f]) => ({ flag: flagName(f), fileKey: '—', env: '—' }))
  ]
  const byFlag = (l: readonly Row[]): Row[] => [...l].sort((a, b) => a.flag.localeCompare(b.flag))
  t.same(byFlag(rows), byFlag(want), 'README.md "Flags of `run`" rows: | `--flag` | `fileKey` | `ENV` or — | ...')
  t.equal(new Set(rows.map(r => r.flag)).size, rows.length, 'each flag once in the README')
})

t.test('each row is commander\'s name for its flag, and its help names the env var and the default', async t => {
  for (const [key, f] of [...fields, ...cliOnly]) {
    t.equal(new Option(f.flag).attributeName(), key, `${f.flag}: commander reads it as ${key}`)
  }
  for (const [, f] of fields) {
    if (f.env !== undefined) t.ok(f.help.includes(`env ${f.env}`), `${f.flag}: help names env ${f.env}`)
    if (f.default !== undefined) t.ok(f.help.includes(`default ${f.default}`) || f.help.includes(`default: ${f.default}`), `${f.flag}: help states the default ${f.default}`)
  }
})

t.test('every parser throws a ConfigError naming where the value came from', async t => {
  for (const [, f] of fields) {
    t.throws(() => f.parse({ not: 'a value' }, 'WHERE'), ConfigError, `${f.flag}: a ConfigError`)
    t.throws(() => f.parse({ not: 'a value' }, 'WHERE'), { field: 'WHERE', message: /^WHERE: / }, `${f.flag}: names WHERE`)
  }
})

t.test('the default the help states is the one resolveConfig applies', async t => {
  const c = resolveConfig({ flags: { service: 'web', meshDir: '/m', upstream: ['db:1'] }, env: {}, file: null })
  const consul = resolveConfig({ flags: { service: 'web', controlPlane: 'consul', upstream: ['db:1'] }, env: {}, file: null })
  const first = (d: string | undefined): string => (d ?? '').split(/[ ,]/, 1)[0] ?? ''
  const ms = (k: keyof typeof FIELDS): number => parseDuration(first(FIELDS[k].default), k)
  const rows: Array<[string, unknown, unknown]> = [
    ['handshakeTimeout', c.timeouts.handshakeTimeoutMs, ms('handshakeTimeout')],
    ['connectTimeout', c.timeouts.connectTimeoutMs, ms('connectTimeout')],
    ['idleTimeout', c.timeouts.idleTimeoutMs, ms('idleTimeout')],
    ['closeTimeout', c.timeouts.closeTimeoutMs, ms('closeTimeout')],
    ['maxConnLifetime', c.timeouts.maxConnLifetimeMs, ms('maxConnLifetime')],
    ['drainTimeout', c.timeouts.drainTimeoutMs, ms('drainTimeout')],
    ['leafTtl', c.leafTtlMs, ms('leafTtl')],
    ['workers', String(c.workers), first(FIELDS.workers.default)],
    ['maxConnections', String(c.maxConnections), first(FIELDS.maxConnections.default)],
    ['namespace', c.namespace, FIELDS.namespace.default],
    ['admin', c.admin === null ? 'off' : `${c.admin.host}:${c.admin.port}`, FIELDS.admin.default],
    ['sourceRateLimit', c.sourceRateLimit === null ? 'off' : 'on', FIELDS.sourceRateLimit.default],
    ['consulAddr', consul.plane.kind === 'consul' ? consul.plane.address : consul.plane.kind, FIELDS.consulAddr.default]
  ]
  for (const [name, got, shown] of rows) t.equal(got, shown, `${name}: default ${String(shown)}`)
  const inbound = resolveConfig({ flags: { service: 'web', meshDir: '/m', to: '127.0.0.1:8080' }, env: {}, file: null })
  t.equal(`${inbound.listen?.host}:${inbound.listen?.port} when --to is given`, FIELDS.listen.default)
})

t.test('a --leaf-ttl that is not a duration is an error, not 72h', async t => {
  // It was parsed after the error check and silently replaced by the default.
  const errors = (() => {
    try {
      resolveConfig({ flags: { service: 'web', meshDir: '/m', upstream: ['db:1'], leafTtl: 'forever' }, env: {}, file: null })
      return []
    } catch (err) { return (err as AggregateError).errors.map((e: Error) => e.message) }
  })()
  t.match(errors, [/^--leaf-ttl: "forever" is not a duration/])
})
