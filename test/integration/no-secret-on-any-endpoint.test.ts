// Why: the Consul ACL token grants whatever its policy grants (often write on
// intentions). It must not be readable where a curious neighbour or a log
// shipper can read it: not at GET /config, not in `run --dry-run`, not in any
// log line, whether it came from --consul-token, CONSUL_HTTP_TOKEN or a token
// file. Where the field exists it shows [redacted]. A non-loopback admin
// address gets a warning at start.
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { request } from 'node:http'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ConsulDouble } from '../helpers/consul-double.js'
import { LogSink, makeMesh, TD } from '../helpers/mesh.js'
import { ROOT } from '../helpers/paths.js'
import { publicConfig } from '../../src/core/config/public.js'
import { resolveConfig } from '../../src/core/config/resolve.js'

const BIN = join(ROOT, 'bin', 'mesh-proxy.js')
const TOKEN = 'c0ffee00-aaaa-bbbb-cccc-0123456789ab'
const FILE_TOKEN = 'f11e7041-aaaa-bbbb-cccc-0123456789ab'

function get (port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path }, res => {
      let body = ''
      res.on('data', (d: Buffer) => { body += d.toString() })
      res.on('end', () => resolve(body))
    }).on('error', reject).end()
  })
}

t.test('publicConfig: the token is redacted, everything else kept, the input untouched', async t => {
  const cases: Array<{ name: string, flags: Record<string, unknown>, env: Record<string, string>, token: string | null }> = [
    { name: 'flag', flags: { consulToken: TOKEN }, env: {}, token: '[redacted]' },
    { name: 'environment', flags: {}, env: { CONSUL_HTTP_TOKEN: TOKEN }, token: '[redacted]' },
    { name: 'no token', flags: {}, env: {}, token: null }
  ]
  for (const c of cases) {
    const config = resolveConfig({ flags: { service: 'web', controlPlane: 'consul', upstream: ['db:9191'], ...c.flags }, env: c.env, file: null })
    const shown = publicConfig(config)
    t.equal((shown.plane.kind === 'consul' ? shown.plane.token : undefined), c.token, `${c.name}: token shows ${String(c.token)}`)
    t.notOk(JSON.stringify(shown).includes(TOKEN), `${c.name}: the token is nowhere in it`)
    t.same({ ...shown, plane: { ...shown.plane, token: null } }, { ...config, identityForm: config.identityForm.name, unixSocketMode: '0660', plane: { ...config.plane, token: null } }, `${c.name}: nothing else changed (the socket mode shown in octal)`)
    if (c.token !== null) t.equal((config.plane.kind === 'consul' ? config.plane.token : undefined), TOKEN, `${c.name}: the config itself still has it`)
  }
})

t.test('run --dry-run with CONSUL_HTTP_TOKEN prints [redacted]', async t => {
  const r = spawnSync(process.execPath, [BIN, 'run', '--service', 'web', '--control-plane', 'consul', '--upstream', 'db:9191', '--admin', 'off', '--dry-run'],
    { encoding: 'utf8', env: { ...process.env, CONSUL_HTTP_TOKEN: TOKEN } })
  t.equal(r.status, 0, r.stderr)
  t.notOk(r.stdout.includes(TOKEN), 'the token is not printed')
  t.equal(JSON.parse(r.stdout).plane.token, '[redacted]')
})

t.test('a running sidecar: no token at /config, in any log line, or in /certs and /intentions', async t => {
  const mesh = await makeMesh(t, [])
  const agent = new ConsulDouble()
  t.teardown(() => agent.stop())
  const agentPort = await agent.start()
  const leaf = await mesh.leaf('web')
  agent.setLeaf('web', leaf.certPem, leaf.keyPem)
  agent.setRoots(TD, [mesh.ca.certPem])
  agent.setIntentions('web', [])
  agent.setInstances('db', [])
  const tokenFile = join(mesh.dir, 'token')
  await writeFile(tokenFile, FILE_TOKEN + '\n', { mode: 0o600 })
  for (const [how, args, env, secret] of [
    ['CONSUL_HTTP_TOKEN', [], { CONSUL_HTTP_TOKEN: TOKEN }, TOKEN],
    ['--consul-token-file', ['--consul-token-file', tokenFile], {}, FILE_TOKEN]
  ] as const) {
    const child = spawn(process.execPath, [BIN, 'run', '--service', 'web', '--control-plane', 'consul', '--consul-addr', `127.0.0.1:${agentPort}`,
      '--upstream', 'db:0', '--admin', '127.0.0.1:0', '--log-level', 'debug', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
    t.teardown(() => { child.kill('SIGKILL') })
    const sink = new LogSink()
    child.stdout.pipe(sink)
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const admin = await sink.waitFor(l => l.msg === 'admin listening')
    await sink.waitFor(l => l.msg === 'sidecar started')
    t.equal(agent.tokenSeen, secret, `${how}: the agent got the token`)
    const port = Number(String(admin.admin).split(':').at(-1))
    const config = await get(port, '/config')
    t.equal(JSON.parse(config).plane.token, how === 'CONSUL_HTTP_TOKEN' ? '[redacted]' : null, `${how}: /config shows [redacted] where the field exists`)
    const bodies = [config, await get(port, '/certs'), await get(port, '/intentions'), await get(port, '/metrics'), await get(port, '/ready')]
    const exited = new Promise(resolve => child.once('exit', resolve))
    child.kill('SIGTERM')
    await exited
    t.notOk(bodies.some(b => b.includes(secret)), `${how}: no admin endpoint holds the token`)
    t.notOk(sink.lines.some(l => JSON.stringify(l).includes(secret)), `${how}: no log line holds the token (${sink.lines.length} lines)`)
    t.notOk(stderr.includes(secret), `${how}: nor stderr`)
  }
})

t.test('an admin address that is not loopback gets a warning at start', async t => {
  const mesh = await makeMesh(t, ['web'])
  const child = spawn(process.execPath, [BIN, 'run', '--service', 'web', '--upstream', 'db:0=127.0.0.1:9', '--mesh-dir', mesh.dir, '--admin', '0.0.0.0:0'], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { child.kill('SIGKILL') })
  const sink = new LogSink()
  child.stdout.pipe(sink)
  const warn = await sink.waitFor(l => String(l.msg).startsWith('admin endpoint is not on loopback'))
  t.match(warn, { level: 40, admin: '0.0.0.0:0' })
  await sink.waitFor(l => l.msg === 'sidecar started')
  const loopback = spawn(process.execPath, [BIN, 'run', '--service', 'web', '--upstream', 'db:0=127.0.0.1:9', '--mesh-dir', mesh.dir, '--admin', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { loopback.kill('SIGKILL') })
  const quiet = new LogSink()
  loopback.stdout.pipe(quiet)
  await quiet.waitFor(l => l.msg === 'sidecar started')
  t.same(quiet.msgs('admin endpoint is not on loopback: anyone who reaches it reads the configuration, certificates and intentions (bind it to 127.0.0.1, or put it behind a firewall)'), [], 'none for loopback')
})
