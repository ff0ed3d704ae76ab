// Why: with --authorize-via-agent each new inbound connection is decided by
// the agent's /v1/agent/connect/authorize, as Consul's built-in proxy does.
// An allow relays, a deny resets the caller before the app sees anything,
// and an agent that does not answer within AUTHORIZE_TIMEOUT_MS denies (fail
// closed). Answers are cached per client certificate (URI and serial), so a
// rotated leaf is asked about afresh. And L7 intentions (Permissions) are a
// deny at L4, with a log line, as the authorize endpoint treats them.
import t from 'tap'
import { once } from 'node:events'
import { agentForWebAndDb } from '../helpers/consul-double.js'
import { appTry, echo, makeMesh, startApp, startSidecar } from '../helpers/mesh.js'
import { AUTHORIZE_TIMEOUT_MS, colonHex } from '../../src/consul/authorize.js'

t.test('--authorize-via-agent: allow, deny (the app sees nothing) and fail closed when the agent hangs', async t => {
  const mesh = await makeMesh(t, [])
  const { agent, port } = await agentForWebAndDb(t, mesh)
  const app = await startApp(t, echo)
  const consul = { controlPlane: 'consul', consulAddr: `127.0.0.1:${port}`, admin: 'off' }
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, authorizeViaAgent: true, ...consul })
  agent.setInstances('db', [{ host: '127.0.0.1', port: db.addrs.inbound!.port }])
  const web = await startSidecar(t, { service: 'web', upstream: ['db:0'], ...consul })
  const upstream = web.addrs.upstreams.get('db')!.port
  // The local table would deny: the agent's answer is what decides.
  const denyLocally = db.sink.waitForNext(l => l.msg === 'intentions reloaded')
  agent.setIntentions('db', [{ source: 'web', action: 'deny' }])
  await denyLocally

  const asks: Array<Record<string, unknown>> = []
  agent.events.on('authorize', (b: Record<string, unknown>) => asks.push(b))
  agent.authorizeWith = () => ({ Authorized: true, Reason: 'Matched intention: web => db (allow)' })
  t.equal((await appTry(upstream, 'allowed')).got, 'allowed', 'the agent allows: bytes flow')
  t.same(asks, [{ Target: 'db', ClientCertURI: web.sidecar.tls.svid.id.uri, ClientCertSerial: colonHex(web.sidecar.tls.svid.chain[0]!.serial) }], 'Target, ClientCertURI and ClientCertSerial (colon hex), as Consul\'s proxy sends them')
  t.match(await db.sink.waitFor(l => l.msg === 'conn closed'), { source: 'web', intention: 'the Consul agent' })
  t.equal((await appTry(upstream, 'cached')).got, 'cached')
  t.equal(asks.length, 1, 'the same certificate again: answered from the cache, not asked')

  // A new leaf (a new serial) is asked about afresh; the agent denies.
  const rotate = async (): Promise<void> => {
    const next = await mesh.leaf('web')
    const reloaded = web.sink.waitForNext(l => l.msg === 'certificates reloaded')
    agent.setLeaf('web', next.certPem, next.keyPem)
    await reloaded
  }
  await rotate()
  agent.authorizeWith = () => ({ Authorized: false, Reason: 'Matched intention: web => db (deny)' })
  const accepted = app.accepted()
  const denied = db.sink.waitForNext(l => l.msg === 'conn denied')
  const tried = await appTry(upstream, 'denied')
  t.match(await denied, { source: 'web', intention: 'the Consul agent', reason: 'Matched intention: web => db (deny)' })
  t.same(tried, { got: '', reset: true }, 'the caller is reset, nothing comes back')
  t.equal(app.accepted(), accepted, 'the app never saw the connection')
  t.equal(asks.length, 2)

  // The agent hangs: after AUTHORIZE_TIMEOUT_MS the connection is denied.
  await rotate()
  agent.authorizeWith = () => 'hang'
  const asked = once(agent.events, 'authorize')
  const failed = db.sink.waitForNext(l => l.msg === 'conn denied')
  const hung = appTry(upstream, 'agent hangs')
  await asked
  const line = await failed
  t.match(line, { intention: 'the Consul agent (no answer: fail closed)', reason: new RegExp(`no answer from the agent at 127\\.0\\.0\\.1:${port} within ${AUTHORIZE_TIMEOUT_MS / 1000} s; denied \\(fail closed\\)`) })
  t.same(await hung, { got: '', reset: true }, 'fail closed: the caller is reset')
  t.equal(app.accepted(), accepted, 'and the app saw nothing')
  agent.authorizeWith = () => ({ Authorized: true, Reason: 'back' })
  t.equal((await appTry(upstream, 'agent back')).got, 'agent back', 'a failure is not cached: the next connection asks again')
  await web.stop()
  await db.stop()
})

t.test('intentions with L7 Permissions are a deny at L4, and the log says so', async t => {
  const mesh = await makeMesh(t, [])
  const { agent, port } = await agentForWebAndDb(t, mesh)
  const app = await startApp(t, echo)
  const consul = { controlPlane: 'consul', consulAddr: `127.0.0.1:${port}`, admin: 'off' }
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, defaultPolicy: 'allow', ...consul })
  agent.setInstances('db', [{ host: '127.0.0.1', port: db.addrs.inbound!.port }])
  const web = await startSidecar(t, { service: 'web', upstream: ['db:0'], ...consul })
  const warned = db.sink.waitForNext(l => l.msg === 'intentions with L7 permissions are treated as deny at L4')
  agent.set('intentions/db', { db: [{ ID: 'i1', SourceNS: 'default', SourceName: 'web', DestinationNS: 'default', DestinationName: 'db', SourceType: 'consul', Action: '', Permissions: [{ Action: 'allow', HTTP: { PathPrefix: '/api' } }], Precedence: 9 }] })
  t.same((await warned).sources, ['web'])
  t.same((await appTry(web.addrs.upstreams.get('db')!.port, 'l7')).got, '', 'denied, though the default policy allows')
  t.match(await db.sink.waitFor(l => l.msg === 'conn denied'), { intention: 'web => db' })
  t.match(db.sidecar.intentionsDoc?.intentions[0], { action: 'deny', description: 'L7 permissions: denied at L4' })
  await web.stop()
  await db.stop()
})
