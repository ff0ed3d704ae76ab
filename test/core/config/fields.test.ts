// Why: the settings of `run` are listed once, in src/core/config/fields.ts.
// The command line and resolveConfig read that table, and docs/flags.md is
// generated from it (test/docs/flags-doc.test.ts holds the page and `run
// --help` to it). This test holds each row to itself: the key is commander's
// name for the flag, the help names the env var and the default, and the
// default the help states is the one resolveConfig applies.
import t from 'tap'
import { Option } from 'commander'
import { ConfigError } from '../../../src/core/errors.js'
import { FIELDS, RUN_CLI_FLAGS, type Field, type Flag } from '../../../src/core/config/fields.js'
import { parseDuration, resolveConfig } from '../../../src/core/config/resolve.js'

const fields = Object.entries(FIELDS) as Array<[string, Field<unknown>]>
const cliOnly = Object.entries(RUN_CLI_FLAGS) as Array<[string, Flag]>

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
    ['proxyProtocol', c.proxyProtocol, FIELDS.proxyProtocol.default],
    ['unixSocketMode', `0${c.unixSocketMode.toString(8)}`, FIELDS.unixSocketMode.default],
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
