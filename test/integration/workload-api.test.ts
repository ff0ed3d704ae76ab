// Why: SPIRE, Envoy (via SDS), ghostunnel and ztunnel take identities from the
// SPIFFE Workload API; `--control-plane spiffe` must too. Against a double of the
// agent (test/helpers/workload-double.ts, from the public workload.proto) for the
// faults: SVID delivered, rotated while a stream runs, bundle update, federated
// bundles, agent restart, agent absent at start, error statuses, garbage.
// Certificates are made by openssl. The real spire-agent: spire-workload-api.test.ts.
import t, { type Test } from 'tap'
import { X509Certificate } from 'node:crypto'
import { connect as tlsConnect } from 'node:tls'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { opensslMissing, opensslPki, type OpensslCa, type OpensslLeaf } from '../helpers/openssl-pki.js'
import { captureLogger, echo, echoSha, mtlsTry, startApp, startSidecar } from '../helpers/mesh.js'
import { certsDer, svidFromFiles, workloadDouble } from '../helpers/workload-double.js'
import { resolveConfig } from '../../src/core/config/resolve.js'
import { MetricsRegistry } from '../../src/metrics/metrics.js'
import { Sidecar } from '../../src/sidecar/sidecar.js'
import type { WorkloadSvid } from '../../src/core/identity/workload-api.js'

const skip = opensslMissing()
const OURS = 'example.org'
const OTHER = 'other.org'
const DB_ID = `spiffe://${OURS}/ns/default/dc/dc1/svc/db`

async function pem (f: string): Promise<string> { return await readFile(f, 'utf8') }

/** A TLS client as web: the serial of the server's leaf, and whether the echo came back. */
async function serverSerial (port: number, web: OpensslLeaf, caPem: string): Promise<{ serial: string, echoed: boolean }> {
  const s = tlsConnect({ host: '127.0.0.1', port, servername: 'db', ca: caPem, cert: await pem(web.cert), key: await pem(web.key) })
  await new Promise<void>((resolve, reject) => { s.once('secureConnect', resolve); s.once('error', reject) })
  const serial = s.getPeerCertificate().serialNumber
  let got = ''
  s.on('data', (d: Buffer) => { got += d.toString() })
  s.end('ping')
  await new Promise(resolve => s.once('close', resolve))
  return { serial: serial.toUpperCase(), echoed: got === 'ping' }
}

/** The serial of an entry's leaf, as the TLS client reports it. */
function serialOf (s: WorkloadSvid): string {
  return new X509Certificate(s.chain[0]!).serialNumber.toUpperCase()
}

async function setup (t: Test): Promise<{ pki: ReturnType<typeof opensslPki>, root: OpensslCa, bundle: string, intentions: string, db: WorkloadSvid, web: OpensslLeaf }> {
  const pki = opensslPki(t)
  const root = await pki.root('spire-root', OURS)
  const bundle = await pki.bundle('bundle.pem', [root])
  const intentions = join(pki.dir, 'intentions.json')
  await writeFile(intentions, JSON.stringify({ index: 1, defaultPolicy: 'deny', intentions: [{ source: 'web', destination: 'db', action: 'allow' }] }))
  const dbLeaf = await pki.leaf(root, 'db', [], OURS)
  const db = await svidFromFiles(DB_ID, { cert: dbLeaf.cert, key: dbLeaf.key, bundle })
  const web = await pki.leaf(root, 'web', [], OURS)
  return { pki, root, bundle, intentions, db, web }
}

t.test('SVID delivered, then rotated while a stream runs: the stream completes, new connections get the new serial', { skip }, async t => {
  const { pki, root, bundle, intentions, db, web } = await setup(t)
  const agent = await workloadDouble(t, { svids: [db], federatedBundles: new Map() })
  const app = await startApp(t, echo)
  const side = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, controlPlane: 'spiffe', spiffeEndpointSocket: agent.address, intentions, admin: 'off' })
  t.match(side.sink.msgs('sidecar started')[0], { mode: `spiffe (${agent.address})` })
  t.equal(agent.requests[0]?.['workload.spiffe.io'], 'true', 'the call carries the security header the standard requires')
  const port = side.addrs.inbound!.port
  const caPem = await pem(bundle)
  const first = await serverSerial(port, web, caPem)
  t.same(first, { serial: serialOf(db), echoed: true }, 'served with the delivered SVID')

  // A pair: web (plain files) -> db (Workload API), one long stream through it.
  const webSide = await startSidecar(t, { service: 'web', upstream: [`db:0=127.0.0.1:${port}`], cert: web.cert, key: web.key, ca: bundle, admin: 'off' })
  const upstream = webSide.addrs.upstreams.get('db')!.port
  const running = echoSha(upstream, 32 * 1024 * 1024)
  await side.sink.waitFor(l => l.msg === 'conn opened')
  const next = await pki.leaf(root, 'db', [], OURS)
  const rotated = await svidFromFiles(DB_ID, { cert: next.cert, key: next.key, bundle })
  agent.push({ svids: [rotated], federatedBundles: new Map() })
  const reloaded = await side.sink.waitFor(l => l.msg === 'certificates reloaded' && l.previousSerial !== undefined)
  t.equal(String(reloaded.spiffeId), DB_ID)
  const after = await serverSerial(port, web, caPem)
  t.same(after, { serial: serialOf(rotated), echoed: true }, 'a new connection is served with the new SVID')
  t.not(after.serial, first.serial)
  const r = await running
  t.equal(r.received, r.sent, 'the stream that ran across the rotation: every byte back (sha256)')
  t.equal(r.receivedBytes, 32 * 1024 * 1024)
  t.equal(side.sink.msgs('conn rejected').length + webSide.sink.msgs('conn refused').length, 0, '0 failed connections')
  await webSide.stop()
  await side.stop()
})

t.test('bundle update and federated bundles come over the stream', { skip }, async t => {
  const { pki, root, bundle, db, web } = await setup(t)
  const intentions = join(pki.dir, 'fed-intentions.json')
  await writeFile(intentions, JSON.stringify({ index: 1, defaultPolicy: 'deny', intentions: [{ source: 'web', destination: 'db', action: 'allow' }, { source: 'web', sourceTrustDomain: OTHER, destination: 'db', action: 'allow' }] }))
  const agent = await workloadDouble(t, { svids: [db], federatedBundles: new Map() })
  const app = await startApp(t, echo)
  const side = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, controlPlane: 'spiffe', spiffeEndpointSocket: agent.address, intentions, admin: 'off' })
  const port = side.addrs.inbound!.port
  const caPem = await pem(bundle)
  const as = async (leaf: OpensslLeaf): Promise<string> => (await mtlsTry(port, { certPem: await pem(leaf.cert), keyPem: await pem(leaf.key) }, caPem)).received

  // A new root (SPIRE's CA rotation): its leaves are refused until the bundle carries it.
  const root2 = await pki.root('spire-root-2', OURS)
  const web2 = await pki.leaf(root2, 'web', [], OURS)
  t.equal(await as(web2), '', 'a leaf of a root not yet in the bundle is refused')
  const bundle2 = await pki.bundle('bundle2.pem', [root, root2])
  agent.push({ svids: [{ ...db, bundle: await certsDer(bundle2) }], federatedBundles: new Map() })
  await side.sink.waitFor(l => l.msg === 'certificates reloaded' && l.roots === 2)
  t.equal(await as(web2), 'hello', 'after the bundle update: accepted')
  t.equal(await as(web), 'hello', 'the old root still trusted')

  // Federation: other.org's roots in federated_bundles; its web accepted by the intention naming it.
  const other = await pki.root('other-root', OTHER)
  const otherWeb = await pki.leaf(other, 'web', [], OTHER)
  t.equal(await as(otherWeb), '', 'not federated yet: refused')
  agent.push({ svids: [{ ...db, bundle: await certsDer(bundle2) }], federatedBundles: new Map([[OTHER, await certsDer(other.cert)]]) })
  const fed = await side.sink.waitFor(l => l.msg === 'certificates reloaded' && Array.isArray(l.federated) && l.federated.length === 1)
  t.same(fed.federated, [OTHER])
  t.equal(await as(otherWeb), 'hello', 'a peer of the federated trust domain, allowed by its intention')
  await side.stop()
})

t.test('agent restart: the current SVID keeps serving, the stream is reopened, the new SVID applies', { skip }, async t => {
  const { pki, root, bundle, intentions, db, web } = await setup(t)
  const agent = await workloadDouble(t, { svids: [db], federatedBundles: new Map() })
  const app = await startApp(t, echo)
  const side = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, controlPlane: 'spiffe', spiffeEndpointSocket: agent.address, intentions, admin: 'off' })
  const port = side.addrs.inbound!.port
  const caPem = await pem(bundle)
  await agent.stop()
  const down = await side.sink.waitFor(l => l.msg === 'workload api unreachable; keeping the current SVID')
  t.match(down, { code: 'MP_ERR_WORKLOAD_API_UNREACHABLE', endpoint: agent.address })
  t.equal(side.metrics.get('mesh_proxy_control_plane_up'), 0)
  t.same(await serverSerial(port, web, caPem), { serial: serialOf(db), echoed: true }, 'agent away: still serving with the SVID in hand')
  t.equal(side.sidecar.status().ready, true, 'and still ready: the SVID has not expired')
  const next = await pki.leaf(root, 'db', [], OURS)
  const rotated = await svidFromFiles(DB_ID, { cert: next.cert, key: next.key, bundle })
  agent.push({ svids: [rotated], federatedBundles: new Map() })
  await agent.listen()
  await agent.requested(2)
  await side.sink.waitFor(l => l.msg === 'certificates reloaded' && l.previousSerial !== undefined)
  t.equal(side.metrics.get('mesh_proxy_control_plane_up'), 1)
  t.same(await serverSerial(port, web, caPem), { serial: serialOf(rotated), echoed: true }, 'after the restart: the agent\'s new SVID')
  await side.stop()
})

t.test('agent absent at start, then no identity, then an SVID: /ready says why until the first SVID', { skip }, async t => {
  const { intentions, db } = await setup(t)
  const agent = await workloadDouble(t, { status: 7, message: 'no identity issued' })
  await agent.stop()
  const { logger, sink } = captureLogger()
  const config = resolveConfig({ flags: { service: 'db', listen: '127.0.0.1:0', to: '127.0.0.1:1', controlPlane: 'spiffe', spiffeEndpointSocket: agent.address, intentions, admin: 'off' }, env: {}, file: null })
  const sidecar = new Sidecar({ config, logger, metrics: new MetricsRegistry(), agentBackoffMs: 20 })
  t.teardown(() => sidecar.destroy())
  const starting = sidecar.start()
  await sink.waitFor(l => l.msg === 'workload api unreachable; no SVID yet, retrying')
  t.match(sidecar.status(), { state: 'starting', ready: false, reason: /cannot reach the Workload API at unix:\/\/.*agent\.sock/ }, 'no agent: /ready says so')
  await agent.listen()
  await sink.waitFor(l => l.msg === 'workload api response rejected; no SVID yet, retrying')
  t.match(sidecar.status(), { ready: false, reason: /PERMISSION_DENIED \(7\): no identity issued/ }, 'no registration entry: /ready quotes the agent')
  agent.push({ svids: [db], federatedBundles: new Map() })
  await starting
  t.equal(sidecar.status().ready, true, 'ready once the first SVID came')
  await sidecar.close()
})

t.test('an endpoint that is a regular file or a directory is named as such, not as "connection refused"', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'mp-wl-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'agent.sock')
  await writeFile(file, '')
  for (const [path, what] of [[file, 'a regular file'], [dir, 'a directory']] as const) {
    const { logger, sink } = captureLogger()
    const config = resolveConfig({ flags: { service: 'web', upstream: ['db:0=127.0.0.1:1'], controlPlane: 'spiffe', spiffeEndpointSocket: `unix://${path}`, admin: 'off' }, env: {}, file: null })
    const sidecar = new Sidecar({ config, logger, metrics: new MetricsRegistry(), agentBackoffMs: 20 })
    const starting = sidecar.start().catch(() => {})
    t.match(await sink.waitFor(l => l.msg === 'workload api unreachable; no SVID yet, retrying'), { err: `cannot reach the Workload API at unix://${path}: ${path} is ${what}, not a socket: give the agent's socket file (SPIRE's default is unix:///tmp/spire-agent/public/api.sock)` }, what)
    await sidecar.destroy()
    await starting
  }
})

t.test('a bad response or an SVID for another service keeps the current SVID', { skip }, async t => {
  const { pki, root, bundle, intentions, db, web } = await setup(t)
  const agent = await workloadDouble(t, { svids: [db], federatedBundles: new Map() })
  const app = await startApp(t, echo)
  const side = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, controlPlane: 'spiffe', spiffeEndpointSocket: agent.address, intentions, admin: 'off' })
  const caPem = await pem(bundle)
  const billing = await pki.leaf(root, 'billing', [], OURS)
  agent.push({ svids: [await svidFromFiles(`spiffe://${OURS}/ns/default/dc/dc1/svc/billing`, { cert: billing.cert, key: billing.key, bundle })], federatedBundles: new Map() })
  t.match(await side.sink.waitFor(l => l.msg === 'workload api response rejected; keeping the current SVID'), { code: 'MP_ERR_WORKLOAD_API_RESPONSE', err: /offers spiffe:\/\/example\.org\/ns\/default\/dc\/dc1\/svc\/billing; none is service "db"/ })
  agent.pushGarbage()
  t.match(await side.sink.waitFor(l => /bad X509SVIDResponse/.test(String(l.err))), { code: 'MP_ERR_WORKLOAD_API_RESPONSE' })
  await agent.requested(2)
  t.same(await serverSerial(side.addrs.inbound!.port, web, caPem), { serial: serialOf(db), echoed: true }, 'still the first SVID')
  await side.stop()
})

t.test('--control-plane spiffe: configuration errors name the fix', async t => {
  const bad = (flags: Record<string, unknown>): string => {
    try { resolveConfig({ flags: { service: 'db', controlPlane: 'spiffe', ...flags }, env: {}, file: null }); return '' } catch (err) { return (err as Error).message }
  }
  t.match(bad({ upstream: ['x:0=127.0.0.1:1'] }), /--spiffe-endpoint-socket: is required with --control-plane spiffe/)
  t.match(bad({ upstream: ['x:0=127.0.0.1:1'], spiffeEndpointSocket: 'tcp://localhost:8081' }), /is not a Workload API address: give unix:\/\/\/path/)
  t.match(bad({ upstream: ['x:0=127.0.0.1:1'], spiffeEndpointSocket: '/run/agent.sock' }), /is not a Workload API address/)
  t.notMatch(bad({ upstream: ['x:0=127.0.0.1:1'], spiffeEndpointSocket: 'bogus' }), /is required/, 'a malformed endpoint is one error: not also "is required"')
  t.match(bad({ upstream: ['x:0=127.0.0.1:1'], spiffeEndpointSocket: 'unix://tmp/agent.sock' }), /"unix:\/\/tmp\/agent\.sock" has an authority part \("tmp"\); a unix: Workload API address names a path only: unix:\/\/\/tmp\/agent\.sock/)
  t.equal(bad({ upstream: ['x:0=127.0.0.1:1'], spiffeEndpointSocket: 'unix:///tmp/agent.sock' }), '', 'unix:///path is the standard form')
  t.equal(bad({ upstream: ['x:0=127.0.0.1:1'], spiffeEndpointSocket: 'tcp://127.0.0.1' }), '--spiffe-endpoint-socket: "tcp://127.0.0.1" has no port: give tcp://<IP address>:<port> (e.g. tcp://127.0.0.1:8081)')
  const fromEnv = ((): string[] => {
    try { resolveConfig({ flags: { service: 'db', controlPlane: 'spiffe', upstream: ['x:0=127.0.0.1:1'] }, env: { SPIFFE_ENDPOINT_SOCKET: 'bogus' }, file: null }); return [] } catch (err) { return (err as AggregateError).errors.map((e: Error) => e.message) }
  })()
  t.same(fromEnv, ['SPIFFE_ENDPOINT_SOCKET: "bogus" is not a Workload API address: give unix:///path/to/agent.sock (SPIRE\'s default is unix:///tmp/spire-agent/public/api.sock) or tcp://<IP address>:<port>'], 'from the environment too: one error')
  t.match(bad({ listen: '127.0.0.1:0', to: '127.0.0.1:1', spiffeEndpointSocket: 'unix:///a.sock' }), /--intentions: is required with --listen and --control-plane spiffe/)
  t.match(bad({ upstream: ['x:0=127.0.0.1:1'], spiffeEndpointSocket: 'unix:///a.sock', cert: 'a', key: 'b', ca: 'c' }), /not used with --control-plane spiffe/)
  const env = resolveConfig({ flags: { service: 'db', controlPlane: 'spiffe', upstream: ['x:0=127.0.0.1:1'] }, env: { SPIFFE_ENDPOINT_SOCKET: 'unix:/run/spire/agent.sock' }, file: null })
  t.same(env.plane, { kind: 'spiffe', endpoint: { kind: 'unix', path: '/run/spire/agent.sock' }, meshDir: null }, 'SPIFFE_ENDPOINT_SOCKET, unix:/path form')
  const tcp = resolveConfig({ flags: { service: 'db', controlPlane: 'spiffe', upstream: ['x:0=127.0.0.1:1'], spiffeEndpointSocket: 'tcp://127.0.0.1:8081' }, env: {}, file: null })
  t.same(tcp.plane, { kind: 'spiffe', endpoint: { kind: 'tcp', host: '127.0.0.1', port: 8081 }, meshDir: null })
})
