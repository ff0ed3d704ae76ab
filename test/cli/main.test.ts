// Why: every bad input gets a one-line error that names the file or flag and
// the fix, exit code != 0, and nothing half-started. Run in-process through
// main(), which returns the exit code instead of exiting.
import t from 'tap'
import { createServer, type AddressInfo } from 'node:net'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { main } from '../../src/cli/main.js'
import { runCli } from '../helpers/cli.js'
import { makeMesh } from '../helpers/mesh.js'

const run = runCli

t.test('bad input: clear one-line errors and exit codes', async t => {
  // Hermetic: whatever holds the default admin port (a `demo --keep` in another terminal) changes nothing here.
  const admin = createServer()
  admin.on('error', () => {}) // already held by something else: the same situation
  admin.listen(19000, '127.0.0.1')
  await new Promise(resolve => { admin.once('listening', resolve); admin.once('error', resolve) })
  t.teardown(() => { admin.close() })
  const mesh = await makeMesh(t)
  const dir = mesh.dir
  const busy = createServer()
  await new Promise<void>(resolve => busy.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { busy.close() })
  const busyPort = (busy.address() as AddressInfo).port
  await writeFile(join(dir, 'bad.json'), '{"service": "web",')
  await writeFile(join(dir, 'unknown.json'), JSON.stringify({ service: 'web', meshDir: dir, upstream: ['db:0'], colour: 'blue' }))
  const web = await mesh.leaf('web')
  const db = await mesh.leaf('db')
  await writeFile(join(dir, 'web.pem'), web.certPem)
  await writeFile(join(dir, 'db.key'), db.keyPem)
  await writeFile(join(dir, 'web.key'), web.keyPem)

  const rows: Array<[string, string[], number, RegExp]> = [
    ['no service', ['run', '--mesh-dir', dir, '--upstream', 'db:0'], 2, /--service: is required/],
    ['missing cert file', ['run', '--service', 'web', '--cert', join(dir, 'nope.pem'), '--key', join(dir, 'db.key'), '--ca', mesh.layout.bundle, '--upstream', 'db:0=127.0.0.1:1'], 1, /--cert .*nope\.pem: cannot read \(no such file\)/],
    ['key does not match cert', ['run', '--service', 'web', '--cert', join(dir, 'web.pem'), '--key', join(dir, 'db.key'), '--ca', mesh.layout.bundle, '--upstream', 'db:0=127.0.0.1:1'], 1, /leaf certificate does not match private key \(is --key .*db\.key the key for --cert .*web\.pem\?\)/],
    ['cert for another service', ['run', '--service', 'db', '--cert', join(dir, 'web.pem'), '--key', join(dir, 'web.key'), '--ca', mesh.layout.bundle, '--upstream', 'x:0=127.0.0.1:1'], 1, /certificate is for service "web" .* but --service is "db"/],
    ['malformed config file', ['run', '--config', join(dir, 'bad.json')], 2, /--config: .*bad\.json is not valid JSON/],
    ['unknown config field', ['run', '--config', join(dir, 'unknown.json')], 2, /unknown\.json: colour: unknown field/],
    ['port in use', ['run', '--service', 'db', '--listen', `127.0.0.1:${busyPort}`, '--to', '127.0.0.1:1', '--mesh-dir', dir], 2, new RegExp(`--listen: cannot listen: 127\\.0\\.0\\.1:${busyPort} is already in use; stop what is listening there or choose another port$`, 'm')],
    ['admin port in use: the fix named', ['run', '--service', 'web', '--upstream', 'db:0=127.0.0.1:1', '--mesh-dir', dir, '--admin', `127.0.0.1:${busyPort}`], 2, new RegExp(`^mesh-proxy: error: --admin: cannot listen: 127\\.0\\.0\\.1:${busyPort} is already in use; stop what is listening there or choose another port \\(e\\.g\\. --admin 127\\.0\\.0\\.1:${busyPort + 1}, or --admin off\\)$`, 'm')],
    ['upstream port in use', ['run', '--service', 'web', '--upstream', `db:${busyPort}`, '--mesh-dir', dir], 2, /--upstream db: cannot listen: .* already in use/],
    ['unknown upstream without catalog', ['run', '--service', 'web', '--cert', join(dir, 'web.pem'), '--key', join(dir, 'db.key'), '--ca', mesh.layout.bundle, '--upstream', 'db:0'], 2, /upstream db has no instances/],
    ['not a mesh dir', ['run', '--service', 'web', '--upstream', 'db:0', '--mesh-dir', join(dir, 'certs')], 2, /is not a mesh dir \(no mesh\.json\); create one with "mesh-proxy ca init/],
    ['non-loopback app', ['run', '--service', 'db', '--to', '192.0.2.1:80', '--mesh-dir', dir], 2, /not a loopback address/],
    ['unknown command option', ['run', '--servce', 'web'], 2, /unknown option '--servce'/],
    ['an upstream given twice', ['run', '--service', 'web', '--upstream', 'db:0=127.0.0.1:1', '--upstream', 'db:0=127.0.0.1:2', '--mesh-dir', dir], 2, /--upstream: db is given twice .*; give each upstream service once/]
  ]
  for (const [name, args, code, re] of rows) {
    const r = await run(args)
    t.equal(r.code, code, `${name}: exit ${code}`)
    t.match(r.err, re, `${name}: message`)
    t.notMatch(r.err, /PRIVATE KEY|    at /, `${name}: no key material, no stack trace`)
  }
})

t.test('intention commands', async t => {
  const mesh = await makeMesh(t, [])
  const d = ['--mesh-dir', mesh.dir]
  t.equal((await run(['intention', 'create', '-allow', 'web', 'db', ...d])).code, 0)
  const dup = await run(['intention', 'create', '-deny', 'web', 'db', ...d])
  t.equal(dup.code, 2)
  t.match(dup.err, /an intention web -> db already exists \(allow\); use -replace/)
  t.equal((await run(['intention', 'create', '-replace', '-deny', 'web', 'db', ...d])).code, 0)
  t.equal((await run(['intention', 'create', '-allow', '*', 'db', ...d])).code, 0)
  const bad = await run(['intention', 'create', '-allow', 'we*', 'db', ...d])
  t.equal(bad.code, 2)
  t.match(bad.err, /wildcard character '\*' cannot be used with partial values/)
  const denied = await run(['intention', 'check', 'web', 'db', '-explain', ...d])
  t.equal(denied.code, 1)
  t.match(denied.out, /^Denied\ndecided by web => db \(precedence 9\): intention web => db \(deny, precedence 9\)/)
  const allowed = await run(['intention', 'check', 'billing', 'db', ...d])
  t.equal(allowed.code, 0)
  t.equal(allowed.out, 'Allowed')
  t.match((await run(['intention', 'list', ...d])).out, /web => db {2}deny {2}precedence 9\n\* => db {2}allow {2}precedence 8/)
  t.equal((await run(['intention', 'delete', 'web', 'db', ...d])).code, 0)
  t.match((await run(['intention', 'delete', 'web', 'db', ...d])).err, /no intention web -> db exists/)
  const json = JSON.parse((await run(['intention', 'list', '--json', ...d])).out)
  t.equal(json.index, 4, 'every write bumps the index')
})

t.test('ca init and cert issue', async t => {
  const dir = t.testdir({})
  const init = await run(['ca', 'init', '--mesh-dir', dir, '--trust-domain', 'example.consul'])
  t.equal(init.code, 0)
  t.match(init.out, /created CA for trust domain example\.consul/)
  t.match((await run(['ca', 'init', '--mesh-dir', dir])).err, /already exist.*Give --force/)
  const issued = await run(['cert', 'issue', 'web', '--mesh-dir', dir, '--ttl', '1h'])
  t.equal(issued.code, 0)
  t.match(issued.out, /issued spiffe:\/\/example\.consul\/ns\/default\/dc\/dc1\/svc\/web/)
  const { stat } = await import('node:fs/promises')
  t.equal((await stat(join(dir, 'certs', 'web.key'))).mode & 0o777, 0o600, 'key written 0600')
  t.equal((await stat(join(dir, 'ca', 'root.key'))).mode & 0o777, 0o600, 'CA key written 0600')
})

t.test('config validate and run --dry-run', async t => {
  const dir = t.testdir({
    'good.json': JSON.stringify({ service: 'web', meshDir: '/m', upstream: ['db:9191'], idleTimeout: '5m' }),
    'bad.json': JSON.stringify({ service: 'web', meshDir: '/m', upstream: ['db'], maxConnections: -1 })
  })
  const good = await run(['config', 'validate', join(dir, 'good.json')])
  t.equal(good.code, 0)
  t.match(good.out, /good\.json: valid/)
  const bad = await run(['config', 'validate', join(dir, 'bad.json')])
  t.equal(bad.code, 2)
  t.match(bad.err, /bad\.json: upstream: "db" is not service:port/)
  t.match(bad.err, /bad\.json: maxConnections: must be a whole number/)
  const writes: string[] = []
  const orig = process.stdout.write.bind(process.stdout)
  process.stdout.write = ((s: string) => { writes.push(String(s)); return true }) as typeof process.stdout.write
  let code: number
  try {
    code = await main(['node', 'mesh-proxy', 'run', '--config', join(dir, 'good.json'), '--admin', 'off', '--dry-run'])
  } finally {
    process.stdout.write = orig
  }
  t.equal(code, 0)
  t.match(JSON.parse(writes.join('')), { service: 'web', admin: null, timeouts: { idleTimeoutMs: 300000 }, upstreams: [{ service: 'db', bind: { host: '127.0.0.1', port: 9191 } }] })
})
