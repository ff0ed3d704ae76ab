// Why: beyond one machine our users already run Consul; the sidecar must take
// its leaf, roots, intentions and upstreams from the local agent and follow
// every change by blocking query, and keep serving from its cache while the
// agent is away. Tested against an API double (test/helpers/consul-double.ts),
// not a live Consul: our machines cannot install one.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect } from 'node:net'
import { once } from 'node:events'
import { connect as tlsConnect } from 'node:tls'
import { ConsulDouble, agentForWebAndDb } from '../helpers/consul-double.js'
import { makeMesh, startApp, startSidecar, echo, TD, captureLogger } from '../helpers/mesh.js'
import { CONFORMANCE } from '../helpers/paths.js'
import { createRootCa } from '../../src/ca/issue.js'
import { resolveConfig } from '../../src/core/config/resolve.js'
import { Sidecar } from '../../src/sidecar/sidecar.js'
import { MetricsRegistry } from '../../src/metrics/metrics.js'

async function ask (port: number, text: string): Promise<string> {
  const c = connect(port, '127.0.0.1')
  let got = ''
  c.on('data', (d: Buffer) => { got += d.toString() })
  c.on('error', () => {})
  c.end(text)
  await new Promise(resolve => c.on('close', resolve))
  return got
}

function serverSerial (port: number, ca: string, client: { certPem: string, keyPem: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ port, host: '127.0.0.1', servername: 'db', ca, cert: client.certPem, key: client.keyPem }, () => { resolve(s.getPeerCertificate().serialNumber.toLowerCase()); s.end() })
    s.on('error', reject)
  })
}

t.test('leaf, roots, intentions and upstreams from the agent, followed live', async t => {
  const mesh = await makeMesh(t, [])
  const { agent, port, webLeaf } = await agentForWebAndDb(t, mesh)
  agent.setInstances('db', [])
  const app = await startApp(t, echo)
  const consul = { controlPlane: 'consul', consulAddr: `127.0.0.1:${port}`, consulToken: 'secret-token' }
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, ...consul })
  const web = await startSidecar(t, { service: 'web', upstream: ['db:0'], ...consul })
  t.equal(agent.tokenSeen, 'secret-token', 'the ACL token is sent as X-Consul-Token')
  const upstream = web.addrs.upstreams.get('db')!.port

  const moved = web.sink.waitForNext(l => l.msg === 'upstream instances changed' && (l.instances as string[]).length === 1)
  agent.setInstances('db', [{ host: '127.0.0.1', port: db.addrs.inbound!.port }])
  await moved
  t.equal(await ask(upstream, 'via consul'), 'via consul', 'web -> db through instances from /v1/health/connect')
  t.match(db.sink.msgs('conn closed')[0], { source: 'web', intention: 'web => db' })

  const flipped = db.sink.waitForNext(l => l.msg === 'intentions reloaded')
  agent.setIntentions('db', [{ source: 'web', action: 'deny' }])
  await flipped
  t.equal(await ask(upstream, 'now denied'), '', 'the deny from Consul applies to new connections')
  t.equal((await db.sink.waitFor(l => l.msg === 'conn denied')).intention, 'web => db')

  const rotated = await mesh.leaf('db')
  const reloaded = db.sink.waitForNext(l => l.msg === 'certificates reloaded')
  agent.setLeaf('db', rotated.certPem, rotated.keyPem)
  await reloaded
  t.equal(await serverSerial(db.addrs.inbound!.port, mesh.ca.certPem, webLeaf), db.sidecar.tls.svid.chain[0]!.serial.toLowerCase(), 'new connections present the rotated leaf')

  const ca2 = await createRootCa({ trustDomain: TD })
  const rootsIn = db.sink.waitForNext(l => l.msg === 'certificates reloaded' && l.roots === 2)
  agent.setRoots(TD, [ca2.certPem, mesh.ca.certPem])
  await rootsIn
  t.equal(db.sidecar.tls.bundle.roots.length, 2, 'every listed root is trusted')

  const rejected = db.sink.waitForNext(l => l.msg === 'consul response rejected; keeping the previous state')
  agent.set('roots', { Roots: [{ RootCert: 'garbage' }] })
  await rejected
  t.equal(db.sidecar.tls.bundle.roots.length, 2, 'an invalid response does not replace good state')

  // The agent goes away: the cache keeps serving.
  const allow = db.sink.waitForNext(l => l.msg === 'intentions reloaded')
  agent.setIntentions('db', [{ source: 'web', action: 'allow' }])
  await allow
  const live = connect({ port: upstream, host: '127.0.0.1' })
  live.write('before')
  await once(live, 'data')
  const lost = db.sink.waitForNext(l => l.msg === 'consul agent unreachable; serving from the cache')
  await agent.stop()
  await lost
  t.equal(db.metrics.get('mesh_proxy_control_plane_up'), 0, 'control plane down in the metrics')
  t.equal(await ask(upstream, 'agent gone'), 'agent gone', 'new connections still work from the cache')
  live.write('still')
  const [d] = await once(live, 'data') as [Buffer]
  t.equal(d.toString(), 'still', 'and live ones too')
  live.end()
  await new Promise(resolve => live.on('close', resolve))

  // It comes back on the same port; changes flow again.
  await agent.start(port)
  const back = db.sink.waitForNext(l => l.msg === 'intentions reloaded')
  agent.setIntentions('db', [{ source: 'web', action: 'deny' }])
  await back
  t.equal(db.metrics.get('mesh_proxy_control_plane_up'), 1)
  t.equal(await ask(upstream, 'denied again'), '')
  await web.stop()
  await db.stop()
})

t.test('agent down at start: not ready, retries, then starts', async t => {
  const mesh = await makeMesh(t, [])
  const agent = new ConsulDouble()
  t.teardown(() => agent.stop())
  const port = await agent.start()
  await agent.stop()
  const leaf = await mesh.leaf('web')
  const { logger, sink } = captureLogger()
  const config = resolveConfig({ flags: { service: 'web', upstream: ['db:0=127.0.0.1:1'], controlPlane: 'consul', consulAddr: `127.0.0.1:${port}` }, env: {}, file: null })
  const sidecar = new Sidecar({ config, logger, metrics: new MetricsRegistry(), agentBackoffMs: 20 })
  t.teardown(() => sidecar.destroy())
  const starting = sidecar.start()
  await sink.waitFor(l => l.msg === 'consul agent unreachable; serving from the cache')
  t.match(sidecar.status(), { state: 'starting', ready: false, reason: /cannot reach the agent at 127\.0\.0\.1:\d+/ }, '/ready would say why')
  agent.setLeaf('web', leaf.certPem, leaf.keyPem)
  agent.setRoots(TD, [mesh.ca.certPem])
  agent.setIntentions('web', [])
  await agent.start(port)
  await starting
  t.equal(sidecar.status().ready, true, 'ready once the agent answered')
  await sidecar.close()
})

t.test('the real agent API shapes (conformance)', async t => {
  const dir = join(CONFORMANCE, 'consul')
  const read = (f: string): unknown => JSON.parse(readFileSync(join(dir, f), 'utf8'))
  const agent = new ConsulDouble()
  t.teardown(() => agent.stop())
  const port = await agent.start()
  agent.set('leaf/web', read('agent-connect-ca-leaf-web.json'))
  const roots = read('agent-connect-ca-roots.json') as Record<string, unknown>
  agent.set('roots', { ...roots, TrustDomain: '11111111-2222-3333-4444-555555555555.consul' })
  agent.set('intentions/web', { web: (read('connect-intentions-match-db.json') as { db: Array<Record<string, unknown>> }).db.map(i => ({ ...i, DestinationName: 'web' })) })
  const { logger } = captureLogger()
  const app = await startApp(t, echo)
  const config = resolveConfig({ flags: { service: 'web', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, controlPlane: 'consul', consulAddr: `127.0.0.1:${port}` }, env: {}, file: null })
  const sidecar = new Sidecar({ config, logger, metrics: new MetricsRegistry() })
  t.teardown(() => sidecar.destroy())
  await sidecar.start()
  t.equal(sidecar.tls.svid.id.uri, 'spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/web', 'CertPEM/PrivateKeyPEM load')
  t.equal(sidecar.tls.bundle.trustDomains[0], '11111111-2222-3333-4444-555555555555.consul', 'the trust domain comes from the roots response, not the root\'s URI')
  const doc = sidecar.intentionsDoc!
  t.same(doc.intentions.map(i => `${i.source}>${i.destination}:${i.action}`), ['billing>web:deny', 'web>web:allow'])
  await sidecar.close()
})
