// Why: people who run `consul connect proxy` should swap the binary and keep
// their service definitions and flags: `mesh-proxy consul-proxy -sidecar-for
// web` takes everything from the agent's proxy registration and follows it,
// so a changed upstream list applies while connections run. Against the API
// double (test/helpers/consul-double.ts), seeded from the documented shapes
// in test/fixtures/consul/.
import t, { type Test } from 'tap'
import { EventEmitter, once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { agentForWebAndDb, consulFixture, type ConsulDouble } from '../helpers/consul-double.js'
import { appTry, captureLogger, echo, echoRoundTrip, makeMesh, startApp, startSidecar, TD, type LogSink, type TestMesh } from '../helpers/mesh.js'
import { issueCert } from '../../src/ca/issue.js'
import { runConsulProxy, type ConsulProxyFlags } from '../../src/runtime/consul-proxy.js'
import type { SidecarAddresses } from '../../src/sidecar/sidecar.js'
import { main } from '../../src/cli/main.js'
import { freePort } from '../helpers/ports.js'

type Registration = Record<string, unknown> & { Proxy: Record<string, unknown> & { Upstreams: Array<Record<string, unknown>> } }

/** The documented web-sidecar-proxy registration, on loopback with port 0 everywhere and web's app at `appPort`. */
function webRegistration (appPort: number, upstreams: Array<Record<string, unknown>>): Registration {
  const r = consulFixture<Registration>('agent-service-web-sidecar-proxy.json')
  return { ...r, Address: '127.0.0.1', Port: 0, Proxy: { ...r.Proxy, LocalServicePort: appPort, Upstreams: upstreams } }
}

/** A backend (db, billing, cache): its leaf on the agent, web => it allowed, its sidecar (run --control-plane consul) before an echo app. */
async function backend (t: Test, mesh: TestMesh, agent: ConsulDouble, port: number, name: string): Promise<number> {
  if (name !== 'db') {
    const leaf = await mesh.leaf(name)
    agent.setLeaf(name, leaf.certPem, leaf.keyPem)
    agent.setIntentions(name, [{ source: 'web', action: 'allow' }])
  }
  const app = await startApp(t, echo)
  const s = await startSidecar(t, { service: name, listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, controlPlane: 'consul', consulAddr: `127.0.0.1:${port}`, admin: 'off' })
  agent.setInstances(name, [{ host: '127.0.0.1', port: s.addrs.inbound!.port }])
  return s.addrs.inbound!.port
}

/** `consul-proxy` in this process; resolves once it serves, with its addresses and a stop(). */
async function startProxy (t: Test, flags: ConsulProxyFlags, env: Record<string, string> = {}): Promise<{ addrs: SidecarAddresses, sink: LogSink, stop: () => Promise<number> }> {
  const { logger, sink } = captureLogger()
  const signals = new EventEmitter()
  let up!: (a: SidecarAddresses) => void
  const started = new Promise<SidecarAddresses>(resolve => { up = resolve })
  const running = runConsulProxy({ admin: 'off', ...flags }, env, { logger, signals, agentBackoffMs: 20, started: (_s, addrs) => { up(addrs); return undefined } })
  running.catch(() => {})
  const addrs = await Promise.race([started, running.then(code => { throw new Error(`consul-proxy exited with ${code} before serving`) })])
  let stopped: Promise<number> | undefined
  const stop = (): Promise<number> => { stopped ??= (signals.emit('SIGTERM', 'SIGTERM'), running); return stopped }
  t.teardown(async () => { await stop() })
  return { addrs, sink, stop }
}

/** One plaintext round trip to host:port (an upstream listener on any loopback address). */
async function roundTrip (host: string, port: number, msg: string): Promise<string> {
  const s = connect(port, host)
  let got = ''
  s.on('error', () => {})
  s.on('data', (d: Buffer) => { got += d.toString(); if (got === msg) s.end() })
  s.write(msg)
  await new Promise(resolve => s.once('close', resolve))
  return got
}

async function refused (host: string, port: number): Promise<boolean> {
  const s = connect(port, host)
  const outcome = await new Promise<string | undefined>(resolve => {
    s.once('connect', () => resolve('connected'))
    s.once('error', (e: Error & { code?: string }) => resolve(e.code))
  })
  s.destroy()
  return outcome === 'ECONNREFUSED'
}

const hostPort = (s: string): { host: string, port: number } => {
  const i = s.lastIndexOf(':')
  return { host: s.slice(0, i), port: Number(s.slice(i + 1)) }
}

t.test('-sidecar-for: a registration with two upstreams drives a working pair, and its changes apply while connections run', async t => {
  const mesh = await makeMesh(t, [])
  const { agent, port } = await agentForWebAndDb(t, mesh)
  await backend(t, mesh, agent, port, 'db')
  await backend(t, mesh, agent, port, 'billing')
  await backend(t, mesh, agent, port, 'cache')
  const webApp = await startApp(t, echo)
  const db = { DestinationType: 'service', DestinationName: 'db', LocalBindPort: 0 }
  const billing = { DestinationType: 'service', DestinationName: 'billing', LocalBindAddress: '127.0.0.1', LocalBindPort: 0, Config: { connect_timeout_ms: 5000 } }
  agent.setService('web', consulFixture<Record<string, Record<string, unknown>>>('agent-services.json').web!)
  agent.setService('web-sidecar-proxy', webRegistration(webApp.port, [db, billing]))

  const proxy = await startProxy(t, { sidecarFor: 'web', httpAddr: `127.0.0.1:${port}` })
  t.ok(agent.requests.includes('/v1/agent/services'), '-sidecar-for looked the proxy up in /v1/agent/services')
  t.ok(agent.requests.includes('/v1/agent/self'), 'the datacenter comes from /v1/agent/self')
  t.match(await proxy.sink.waitFor(l => l.msg === 'consul-proxy configured'), { configuration: 'agent registration', sidecarFor: 'web', proxyId: 'web-sidecar-proxy' }, 'says where its configuration came from, as Consul\'s "Configuration mode" lines')
  const started = await proxy.sink.waitFor(l => l.msg === 'sidecar started')
  t.match(started, { service: 'web', spiffeId: /\/dc\/dc1\/svc\/web$/ })
  const dbPort = proxy.addrs.upstreams.get('db')!.port
  const billingAt = proxy.addrs.upstreams.get('billing')!
  t.equal(await echoRoundTrip(dbPort, 'to db'), 'to db', 'web -> db, as the registration says')
  t.equal(await echoRoundTrip(billingAt.port, 'to billing'), 'to billing', 'web -> billing')
  t.ok(proxy.addrs.inbound !== null && proxy.addrs.inbound.port > 0, 'the public listener from Address/Port')

  // A connection that runs across every change below.
  const live: Socket = connect(dbPort, '127.0.0.1')
  live.on('error', () => {})
  live.write('live 1')
  t.equal(String((await once(live, 'data'))[0]), 'live 1')

  // Upstream added.
  const cache = { DestinationName: 'cache', LocalBindPort: 0 }
  let reloaded = proxy.sink.waitForNext(l => l.msg === 'upstreams reloaded')
  agent.setService('web-sidecar-proxy', webRegistration(webApp.port, [db, billing, cache]))
  let r = await reloaded
  t.same({ added: r.added, removed: r.removed }, { added: ['cache'], removed: [] }, 'the new upstream is listening without a restart')
  const cacheAt = hostPort((r.listening as Record<string, string>).cache!)
  t.equal(await roundTrip(cacheAt.host, cacheAt.port, 'to cache'), 'to cache', 'web -> cache')

  // Upstream moved (to another loopback address, port 0 still).
  reloaded = proxy.sink.waitForNext(l => l.msg === 'upstreams reloaded')
  agent.setService('web-sidecar-proxy', webRegistration(webApp.port, [db, { ...billing, LocalBindAddress: '127.0.0.2' }, cache]))
  r = await reloaded
  t.same({ added: r.added, removed: r.removed }, { added: ['billing'], removed: ['billing'] }, 'a moved upstream is a new listener')
  const movedAt = hostPort((r.listening as Record<string, string>).billing!)
  t.equal(movedAt.host, '127.0.0.2')
  t.equal(await roundTrip(movedAt.host, movedAt.port, 'moved'), 'moved', 'web -> billing at its new address')
  t.ok(await refused(billingAt.host, billingAt.port), 'the old address no longer accepts')

  // Upstream removed: the live connection through it keeps running.
  reloaded = proxy.sink.waitForNext(l => l.msg === 'upstreams reloaded')
  agent.setService('web-sidecar-proxy', webRegistration(webApp.port, [{ ...billing, LocalBindAddress: '127.0.0.2' }, cache]))
  r = await reloaded
  t.same({ added: r.added, removed: r.removed }, { added: [], removed: ['db'] })
  t.ok(proxy.sink.lines.some(l => l.msg === 'upstream no longer followed' && l.upstream === 'db'), 'its instances are no longer followed')
  t.ok(await refused('127.0.0.1', dbPort), 'db no longer accepts new connections')
  live.write('live 2')
  t.equal(String((await once(live, 'data'))[0]), 'live 2', 'the connection that was running through db still runs')
  live.end()
  await once(live, 'close')

  // A registration that breaks the rules is refused; what runs stays.
  const twice = proxy.sink.waitForNext(l => l.msg === 'proxy registration rejected; keeping the current upstreams')
  agent.setService('web-sidecar-proxy', webRegistration(webApp.port, [cache, { ...cache, LocalBindAddress: '127.0.0.3' }]))
  t.match((await twice).err, /^proxy registration web-sidecar-proxy: Proxy\.Upstreams: cache is given twice/)
  const rejected = proxy.sink.waitForNext(l => l.msg === 'proxy registration not read; keeping the current upstreams')
  agent.setService('web-sidecar-proxy', webRegistration(webApp.port, [{ DestinationName: 'cache', LocalBindPort: 'x' }]))
  t.match((await rejected).err, /Proxy\.Upstreams\[0\]\.LocalBindPort: must be a port/)
  t.equal(await roundTrip(cacheAt.host, cacheAt.port, 'still'), 'still', 'the upstreams in force stay')
  t.equal(await proxy.stop(), 0, 'SIGTERM: exit 0')
})

t.test('-sidecar-for matching no proxy, or two, fails with Consul\'s errors', async t => {
  const mesh = await makeMesh(t, [])
  const { agent, port } = await agentForWebAndDb(t, mesh)
  const http = `127.0.0.1:${port}`
  agent.setService('web', consulFixture<Record<string, Record<string, unknown>>>('agent-services.json').web!)
  await t.rejects(runConsulProxy({ sidecarFor: 'web', httpAddr: http, admin: 'off' }, {}), { message: /^-sidecar-for: No sidecar proxy registered for web \(/ })
  const reg = webRegistration(await freePort(), []) // never dialled: every call below is refused first
  agent.setService('web-sidecar-proxy', reg)
  agent.setService('web-sidecar-proxy-2', { ...reg, ID: 'web-sidecar-proxy-2' })
  await t.rejects(runConsulProxy({ sidecarFor: 'web', httpAddr: http, admin: 'off' }, {}), { message: '-sidecar-for: More than one sidecar proxy registered for web. Start proxy with -proxy-id and one of the following IDs: web-sidecar-proxy, web-sidecar-proxy-2' })
  await t.rejects(runConsulProxy({ proxyId: 'nope', httpAddr: http, admin: 'off' }, {}), { message: /^-proxy-id: no service with ID nope on the agent/ })
  await t.rejects(runConsulProxy({ proxyId: 'web', httpAddr: http, admin: 'off' }, {}), { message: /Kind: is "", not "connect-proxy"/ }, 'the ID of a service that is not a proxy')
  await t.rejects(runConsulProxy({ sidecarFor: 'web', service: 'web', httpAddr: http }, { CONNECT_SIDECAR_FOR: 'web' }), { message: '-service: -service configures a proxy by flags; with -sidecar-for the agent\'s registration configures it (Consul would ignore it): remove it, or drop -sidecar-for' })
  await t.rejects(runConsulProxy({ service: 'web', listen: ':0', serviceAddr: `10.0.0.5:${await freePort()}`, httpAddr: http }, {}), { errors: [{ message: /^-service-addr: 10\.0\.0\.5 is not a loopback address; .* unless you pass --unsafe-target/ }] }, 'errors name Consul\'s flag')
  agent.setService('lonely-proxy', { ...reg, ID: 'lonely-proxy', Proxy: { ...reg.Proxy, LocalServiceAddress: '10.0.0.5', DestinationServiceID: 'lonely' } })
  await t.rejects(runConsulProxy({ proxyId: 'lonely-proxy', httpAddr: http, admin: 'off' }, {}), { errors: [{ message: /^proxy registration lonely-proxy: Proxy\.LocalServiceAddress\/LocalServicePort: 10\.0\.0\.5 is not a loopback address/ }] }, 'and the registration\'s field')
  // --dry-run: the configuration a registration or Consul's flags give, without serving.
  const printed: string[] = []
  const [dbPort, cachePort] = [await freePort(), await freePort()] // never bound: --dry-run serves nothing
  agent.setService('solo-proxy', { ...reg, ID: 'solo-proxy', Proxy: { ...reg.Proxy, DestinationServiceID: 'solo', Upstreams: [{ DestinationName: 'db', Datacenter: 'dc2', LocalBindPort: dbPort }] } })
  t.equal(await runConsulProxy({ proxyId: 'solo-proxy', httpAddr: http, dryRun: true }, {}, { out: l => printed.push(l) }), 0)
  t.match(JSON.parse(printed[0]!), { service: 'web', datacenter: 'dc1', listen: { host: '127.0.0.1', port: 0 }, upstreams: [{ service: 'db', bind: { host: '127.0.0.1', port: dbPort }, target: { datacenter: 'dc2' }, connectTimeoutMs: 10000 }], plane: { kind: 'consul', address: http } })
  t.equal(await runConsulProxy({ service: 'web', upstream: [`db.service:${dbPort}`, `cache:127.0.0.9:${cachePort}`], httpAddr: http, dryRun: true }, {}, { out: l => printed.push(l) }), 0)
  t.match(JSON.parse(printed[1]!), { listen: null, upstreams: [{ service: 'db', bind: { host: '127.0.0.1', port: dbPort } }, { service: 'cache', bind: { host: '127.0.0.9', port: cachePort } }] }, '-upstream name.service:port and name:host:port, as Consul\'s')
  const stderr = process.stderr.write
  let err = ''
  process.stderr.write = ((s: string) => { err += s; return true }) as typeof process.stderr.write
  let code: number
  try { code = await main(['node', 'mesh-proxy', 'consul-proxy', '-sidecar-for=web', `-http-addr=${http}`, '-admin', 'off']) } finally { process.stderr.write = stderr }
  t.equal(code, 2, 'the command exits 2 (a configuration error)')
  t.match(err, /mesh-proxy: error: -sidecar-for: More than one sidecar proxy registered for web/)
})

t.test('-register registers with a TCP check on the public listener, and deregisters on shutdown', async t => {
  const mesh = await makeMesh(t, [])
  const { agent, port } = await agentForWebAndDb(t, mesh)
  agent.setIntentions('web', [])
  const app = await startApp(t, echo)
  const registered = once(agent.events, 'register')
  const proxy = await startProxy(t, { service: 'web', listen: '127.0.0.1:0', serviceAddr: `127.0.0.1:${app.port}`, register: true, registerId: 'a', httpAddr: `127.0.0.1:${port}` })
  const [body] = await registered as [Record<string, unknown>]
  t.match(await proxy.sink.waitFor(l => l.msg === 'consul-proxy configured'), { configuration: 'flags' })
  const listen = proxy.addrs.inbound!
  t.same(body, {
    Kind: 'connect-proxy',
    ID: 'web-proxy-a',
    Name: 'web-proxy',
    Address: '127.0.0.1',
    Port: listen.port,
    Proxy: { DestinationServiceName: 'web', LocalServiceAddress: '127.0.0.1', LocalServicePort: app.port },
    Check: { CheckID: 'web-proxy-a-listening', Name: 'Connect Proxy Listening', TCP: `127.0.0.1:${listen.port}`, Interval: '10s' }
  }, 'Kind, ID and Name as consul connect proxy -register makes them; a TCP check on the listener')
  t.ok(agent.services.has('web-proxy-a'))
  // The agent loses it (restarted without it, or an operator deregistered it): it is put back.
  const again = once(agent.events, 'register')
  const warned = proxy.sink.waitForNext(l => l.msg === 'our registration was missing from the Consul agent; registered again')
  agent.removeService('web-proxy-a')
  t.same((await again)[0], body, 'registered again, the same registration')
  await warned
  t.ok(agent.services.has('web-proxy-a'))
  const deregistered = once(agent.events, 'deregister')
  t.equal(await proxy.stop(), 0)
  t.same(await deregistered, ['web-proxy-a'], 'deregistered on shutdown')
  t.notOk(agent.services.has('web-proxy-a'))
  await t.rejects(runConsulProxy({ service: 'web', register: true, httpAddr: `127.0.0.1:${port}` }, {}), { message: '-register: -register may only be specified with -service and -listen' })
  t.equal((await appTry(app.port, 'app alone')).got, 'app alone')
})

t.test('an upstream in another namespace and datacenter: instances, SNI and expected identity follow it', async t => {
  const mesh = await makeMesh(t, [])
  const { agent, port } = await agentForWebAndDb(t, mesh)
  const dbLeaf = await issueCert({ ca: mesh.ca, uris: [`spiffe://${TD}/ns/ns1/dc/dc2/svc/db`], dnsNames: ['db'], commonName: 'db' })
  agent.setLeaf('db', dbLeaf.certPem, dbLeaf.keyPem)
  agent.set('intentions/db', { db: [{ ID: 'i1', SourceNS: 'default', SourceName: 'web', DestinationNS: 'ns1', DestinationName: 'db', SourceType: 'consul', Action: 'allow' }] })
  const app = await startApp(t, echo)
  const db = await startSidecar(t, { service: 'db', namespace: 'ns1', datacenter: 'dc2', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, controlPlane: 'consul', consulAddr: `127.0.0.1:${port}`, admin: 'off' })
  agent.setInstances('db', [{ host: '127.0.0.1', port: db.addrs.inbound!.port }])
  const webApp = await startApp(t, echo)
  agent.setService('web-sidecar-proxy', webRegistration(webApp.port, [{ DestinationName: 'db', DestinationNamespace: 'ns1', Datacenter: 'dc2', LocalBindPort: 0 }]))
  const proxy = await startProxy(t, {}, { CONNECT_PROXY_ID: 'web-sidecar-proxy', CONSUL_HTTP_ADDR: `http://127.0.0.1:${port}`, CONSUL_HTTP_TOKEN: 'env-token' })
  t.equal(agent.tokenSeen, 'env-token', 'CONNECT_PROXY_ID, CONSUL_HTTP_ADDR and CONSUL_HTTP_TOKEN, as Consul reads them')
  t.ok(agent.requests.includes('/v1/health/connect/db?passing=true&dc=dc2&ns=ns1'), 'instances asked of the upstream\'s datacenter and namespace')
  t.equal(await echoRoundTrip(proxy.addrs.upstreams.get('db')!.port, 'ns1/dc2'), 'ns1/dc2', 'web (default, dc1) -> db (ns1, dc2): the server\'s identity is the one the registration names')
  t.match(await db.sink.waitFor(l => l.msg === 'conn closed'), { source: 'web', destination: 'ns1/db' })
  // The same db named without its namespace and datacenter is refused: its identity is not the expected one.
  const refusedLine = proxy.sink.waitForNext(l => l.msg === 'conn refused')
  agent.setService('web-sidecar-proxy', webRegistration(webApp.port, [{ DestinationName: 'db', LocalBindPort: 0 }]))
  const reloaded = await proxy.sink.waitFor(l => l.msg === 'upstreams reloaded')
  const at = hostPort((reloaded.listening as Record<string, string>).db!)
  t.equal(await roundTrip(at.host, at.port, 'x'), '')
  t.match((await refusedLine).err, /expected spiffe:\/\/[^ ]+\/ns\/default\/dc\/dc1\/svc\/db/)
  t.equal(await proxy.stop(), 0)
})

t.test('an upstream on a UNIX socket (LocalBindSocketPath, LocalBindSocketMode), as Consul registers it', async t => {
  const mesh = await makeMesh(t, [])
  const { agent, port } = await agentForWebAndDb(t, mesh)
  await backend(t, mesh, agent, port, 'db')
  // Short: a UNIX socket path has at most 107 bytes, tap's fixture dirs are longer.
  const dir = await mkdtemp(join(tmpdir(), 'mp-cp-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const path = join(dir, 'db.sock')
  const webApp = await startApp(t, echo)
  agent.setService('web-sidecar-proxy', webRegistration(webApp.port, [{ DestinationName: 'db', LocalBindSocketPath: path, LocalBindSocketMode: '0600' }]))
  const proxy = await startProxy(t, { sidecarFor: 'web', httpAddr: `127.0.0.1:${port}` })
  t.equal(proxy.addrs.upstreamSockets.get('db'), path, 'listening on the registration\'s socket path')
  t.equal((await stat(path)).mode & 0o777, 0o600, 'with the registration\'s mode')
  const s = connect(path)
  let got = ''
  s.on('data', (d: Buffer) => { got += d.toString(); if (got === 'over a socket') s.end() })
  s.write('over a socket')
  await once(s, 'close')
  t.equal(got, 'over a socket', 'the app reaches db through the socket')
  t.equal(await proxy.stop(), 0)
})

t.test('consul-proxy: its errors speak Consul\'s flags, one dash, and say what to do', async t => {
  const bad = async (f: ConsulProxyFlags, env: Record<string, string> = {}): Promise<string> => {
    try { await runConsulProxy({ dryRun: true, ...f }, env); return 'ran' } catch (err) { return (err as Error).message }
  }
  t.equal(await bad({ service: 'web' }), '-service: web alone gives the proxy nothing to do: add -listen <host:port> with -service-addr <app host:port> for inbound connections, and/or -upstream <name>:<port> for outbound ones')
  t.equal(await bad({ service: 'web', upstream: ['db:abc'] }), '-upstream: "db:abc" is not name:port or name:host:port, the local port the upstream listens on (e.g. db:9191 or db:127.0.0.1:9191)')
  t.equal(await bad({ service: 'web', upstream: ['db'] }), '-upstream: "db" is not name:port or name:host:port, the local port the upstream listens on (e.g. db:9191 or db:127.0.0.1:9191)')
  t.equal(await bad({ service: 'web', upstream: [`db:${await freePort()}`], logLevel: 'loud' }), '-log-level: "loud" is not a log level: give one of TRACE, DEBUG, INFO, WARN, ERR (default INFO)', 'the levels its help lists')
  // An agent that is not there: a port nothing listens on.
  const dead = `127.0.0.1:${await freePort()}`
  t.equal(await bad({ sidecarFor: 'web', httpAddr: dead, logLevel: 'loud' }), '-log-level: "loud" is not a log level: give one of TRACE, DEBUG, INFO, WARN, ERR (default INFO)', 'checked before the agent is asked')
  t.match(await bad({ sidecarFor: 'web', httpAddr: dead }), /cannot reach the agent at 127\.0\.0\.1:\d+: .*; is the agent running, and does -http-addr name its HTTP address\?$/)
  t.match(await bad({ sidecarFor: 'web' }, { CONSUL_HTTP_ADDR: dead }), /; is the agent running, and does CONSUL_HTTP_ADDR name its HTTP address\?$/)
  // commander's own errors, in Consul's spelling.
  const cli = async (...args: string[]): Promise<{ code: number, err: string }> => {
    const stderr = process.stderr.write
    let err = ''
    process.stderr.write = ((s: string) => { err += s; return true }) as typeof process.stderr.write
    try { return { code: await main(['node', 'mesh-proxy', 'consul-proxy', ...args]), err } } finally { process.stderr.write = stderr }
  }
  t.match(await cli('-sidecar-for'), { code: 2, err: /option '-sidecar-for <service-id>' argument missing/ })
  t.match(await cli('-bogus-flag'), { code: 2, err: /unknown option '-bogus-flag'/ })
  t.notMatch((await cli('-sidecr-for', 'x')).err, /--/, 'no two-dash spelling anywhere, suggestions included')
})
