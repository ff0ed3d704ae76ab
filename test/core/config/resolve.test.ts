// Why: one validated Config from flags, env and file; every bad value is an
// error that names the flag or JSON path and says how to fix it.
import t from 'tap'
import { resolveConfig, parseUpstream, parseDuration, parseHostPort } from '../../../src/core/config/resolve.js'

const base = { service: 'web', meshDir: '/m' }
const errs = (flags: Record<string, unknown>, file: unknown = null, env: Record<string, string> = {}): string[] => {
  try {
    resolveConfig({ flags, env, file, fileName: 'sidecar.json' })
    return []
  } catch (err) {
    return (err as AggregateError).errors.map((e: Error) => e.message)
  }
}

t.test('upstream syntax', async t => {
  t.same(parseUpstream('db:9191', 'x'), { service: 'db', bind: { host: '127.0.0.1', port: 9191 }, instances: null })
  t.same(parseUpstream('db:127.0.0.2:9191', 'x').bind, { host: '127.0.0.2', port: 9191 })
  t.same(parseUpstream('db:9191=10.0.0.5:21000,10.0.0.6:21000', 'x').instances, [{ host: '10.0.0.5', port: 21000 }, { host: '10.0.0.6', port: 21000 }])
  t.same(parseHostPort('[::1]:80', 'x'), { host: '::1', port: 80 })
  t.throws(() => parseUpstream('db', '--upstream'), { message: /--upstream: "db" is not service:port/ })
  t.throws(() => parseHostPort('1.2.3.4:99999', '--listen'), { message: /--listen: port 99999 is out of range/ })
  t.equal(parseDuration('10s', 'x'), 10_000)
  t.equal(parseDuration('250ms', 'x'), 250)
  t.equal(parseDuration(42, 'x'), 42)
  t.throws(() => parseDuration('ten', '--idle-timeout'), { message: /--idle-timeout: "ten" is not a duration/ })
})

t.test('precedence flags > env > file > defaults', async t => {
  const file = { service: 'db', listen: '127.0.0.1:1', to: '127.0.0.1:2', meshDir: '/file', idleTimeout: '5s', logLevel: 'warn' }
  const c = resolveConfig({ flags: { listen: '127.0.0.1:3' }, env: { MESH_DIR: '/env' }, file, fileName: 'f.json' })
  t.equal(c.service, 'db', 'file')
  t.same(c.listen, { host: '127.0.0.1', port: 3 }, 'flag beats file')
  t.same(c.plane, { kind: 'mesh-dir', meshDir: '/env' }, 'env beats file')
  t.equal(c.timeouts.idleTimeoutMs, 5000)
  t.equal(c.timeouts.connectTimeoutMs, 5000, 'default')
  t.equal(c.logLevel, 'warn')
  t.ok(Object.isFrozen(c) && Object.isFrozen(c.timeouts), 'frozen')
  const d = resolveConfig({ flags: { ...base, to: '127.0.0.1:8080' }, env: {}, file: null })
  t.same(d.listen, { host: '0.0.0.0', port: 21000 }, 'Consul default public listener when only --to is given')
})

t.test('errors name the flag or JSON path', async t => {
  const rows: Array<[Record<string, unknown>, unknown, RegExp]> = [
    [{ meshDir: '/m', upstream: ['db:1'] }, null, /^--service: is required/],
    [{ ...base }, null, /nothing to do/],
    [{ ...base, listen: '127.0.0.1:1' }, null, /^--to: is required with --listen/],
    [{ ...base, to: '10.1.2.3:80' }, null, /^--to: 10\.1\.2\.3 is not a loopback address.*--unsafe-target/],
    [{ service: 'web', upstream: ['db:1'] }, null, /^--mesh-dir: no certificates/],
    [{ ...base, upstream: ['db:1'], sourceRateLimit: '' }, null, /^--source-rate-limit: must be a non-empty string$/],
    [{ ...base, upstream: ['db:1'], leafTtl: '10ms' }, null, /^--leaf-ttl: "10ms" is too short: leaves live at least 1s/],
    [{ service: 'web', upstream: ['db:1'], controlPlane: 'consul', cert: 'a.pem', key: 'a.key', ca: 'ca.pem' }, null, /^--cert: --cert, --key, --ca are not used with --control-plane consul .*remove them/],
    [{ service: 'web', upstream: ['db:1'], controlPlane: 'consul', intentions: 'i.json' }, null, /^--intentions: --intentions is not used with --control-plane consul/],
    [{ service: 'web', upstream: ['db:1'], controlPlane: 'consul', consulAddr: 'ftp://x' }, null, /^--consul-addr: "ftp:\/\/x" is not a Consul agent address/],
    [{ service: 'db', listen: '127.0.0.1:1', to: '127.0.0.1:2', cert: 'a.pem', key: 'a.key', ca: 'ca.pem' }, null, /^--intentions: is required with --listen and --cert\/--key\/--ca when there is no --mesh-dir/],
    [{ service: 'web', cert: 'a.pem', upstream: ['db:1=127.0.0.1:2'] }, null, /--cert, --key and --ca go together; missing --key, --ca/],
    [{ service: 'web', cert: 'a', key: 'b', ca: 'c', upstream: ['db:1'] }, null, /upstream db has no instances/],
    [{ ...base, upstream: ['db:9000', 'cache:9000'] }, null, /127\.0\.0\.1:9000 is also used by --upstream db/],
    [{ ...base, upstream: ['db:1'], handshakeTimeout: '0' }, null, /^--handshake-timeout: must be greater than 0/],
    [{ ...base, upstream: ['db:1'], logLevel: 'loud' }, null, /^--log-level: must be one of/],
    [{ ...base, upstream: ['db:1'], workers: '0' }, null, /^--workers: must be a whole number from 1 to 64/],
    [{ ...base, upstream: ['db:1'], workers: 'two' }, null, /^--workers: must be a whole number from 1 to 64 .*got "two"/],
    [{}, { service: 'web', meshDir: '/m', upstream: ['db:1'], workers: 65 }, /^sidecar\.json: workers: must be a whole number from 1 to 64/],
    [{}, { service: 'web', meshDir: '/m', upstream: ['db:1'], idleTimeout: 'forever' }, /^sidecar\.json: idleTimeout: "forever" is not a duration/],
    [{}, { service: 'web', meshDir: '/m', upstreams: ['db:1'] }, /^sidecar\.json: upstreams: unknown field/],
    [{}, ['web'], /^sidecar\.json: must be a JSON object/]
  ]
  for (const [flags, file, re] of rows) {
    const e = errs(flags, file)
    t.ok(e.some(m => re.test(m)), `${re.source} in ${JSON.stringify(e)}`)
  }
})

t.test('--workers: default 1, from flag, env or file', async t => {
  const r = (flags: Record<string, unknown>, env: Record<string, string> = {}, file: unknown = null): number =>
    resolveConfig({ flags: { ...base, upstream: ['db:1'], ...flags }, env, file }).workers
  t.equal(r({}), 1)
  t.equal(r({ workers: '2' }), 2)
  t.equal(r({}, { MESH_PROXY_WORKERS: '3' }), 3)
  t.equal(r({}, {}, { workers: 4 }), 4)
  t.equal(r({ workers: '2' }, { MESH_PROXY_WORKERS: '3' }), 2, 'flag beats env')
})

t.test('an upstream service given twice is an error naming both', async t => {
  const rows: Array<[string, string[], RegExp | null]> = [
    ['two ports', ['db:9195=127.0.0.1:1', 'db:9196=127.0.0.1:2'], /--upstream: db is given twice \(db:127\.0\.0\.1:9195 and db:127\.0\.0\.1:9196\); give each upstream service once/],
    ['the same port twice', ['db:9195', 'db:9195'], /db is given twice/],
    ['two services', ['db:9195', 'cache:9196'], null]
  ]
  for (const [name, upstream, want] of rows) {
    const got = errs({ ...base, upstream })
    if (want === null) t.same(got, [], `${name}: fine`)
    else t.match(got.join('\n'), want, `${name}: refused`)
  }
})

t.test('--consul-addr takes what CONSUL_HTTP_ADDR takes', async t => {
  for (const a of ['127.0.0.1:8500', 'consul.service:8500', '[::1]:8500', 'http://127.0.0.1:8500', 'https://consul.local:8501', 'unix:///run/consul/http.sock']) {
    const c = resolveConfig({ flags: { service: 'web', upstream: ['db:1'], controlPlane: 'consul', consulAddr: a }, env: {}, file: null })
    t.match(c.plane, { kind: 'consul', address: a }, a)
  }
})
