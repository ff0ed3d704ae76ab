// Why: an upstream in another datacenter is how sidecars use mesh gateways.
// With --upstream-dc db=dc2 only that upstream's SNI and expected identity
// carry dc2 (web's other upstreams stay in dc1), and --mesh-gateway-mode
// picks the first hop from the mesh dir's gateways.json: our datacenter's
// gateway (local) or db's own (remote). A missing gateway is said plainly.
import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { TD, appTry, echo, echoRoundTrip, echoSha, makeMesh, startApp, startSidecar } from '../helpers/mesh.js'
import { otherDatacenter, startMeshGateway, startTerminating } from '../helpers/gateway.js'
import { gatewaysFile } from '../../src/meshdir/gateways.js'
import { resolveConfig } from '../../src/core/config/resolve.js'

t.test('--upstream-dc db=dc2 with gateway modes local and remote', async t => {
  const mesh = await makeMesh(t, ['web', 'billing'])
  await mesh.writeIntentions([{ source: 'web', destination: '*', action: 'allow' }])
  const dc2 = await otherDatacenter(t, mesh, 'dc2')
  const app = await startApp(t, echo)
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, meshDir: dc2.root })
  const billingApp = await startApp(t, echo)
  const billing = await startSidecar(t, { service: 'billing', listen: '127.0.0.1:0', to: `127.0.0.1:${billingApp.port}`, meshDir: mesh.dir })
  const gw2 = await startMeshGateway(t, { datacenter: 'dc2', catalogDir: dc2.catalog })
  const gw1 = await startMeshGateway(t, { datacenter: 'dc1', catalogDir: mesh.layout.catalog, remote: { dc2: [gw2.at] } })
  await writeFile(gatewaysFile(mesh.dir), JSON.stringify({ dc1: [`127.0.0.1:${gw1.at.port}`], dc2: [`127.0.0.1:${gw2.at.port}`] }))

  for (const mode of ['local', 'remote'] as const) {
    const web = await startSidecar(t, { service: 'web', meshDir: mesh.dir, upstream: ['db:0', 'billing:0'], upstreamDc: ['db=dc2'], meshGatewayMode: mode })
    t.match(await web.sink.waitFor(l => l.msg === 'sidecar started'), { upstreams: [/ => db \(datacenter dc2\)$/, / => billing$/] })
    t.equal(await echoRoundTrip(web.addrs.upstreams.get('db')!.port, `to db, ${mode}`), `to db, ${mode}`, `${mode}: db in dc2 answers`)
    t.match(await web.sink.waitFor(l => l.msg === 'conn closed' && l.upstream === 'db'), { peer: `spiffe://${TD}/ns/default/dc/dc2/svc/db`, instance: `127.0.0.1:${(mode === 'local' ? gw1 : gw2).at.port}` }, `${mode}: first hop ${mode === 'local' ? 'our' : 'db\'s'} gateway, db of dc2 verified`)
    t.equal(await echoRoundTrip(web.addrs.upstreams.get('billing')!.port, 'to billing'), 'to billing', `${mode}: billing, in our datacenter, straight from the catalog`)
    t.match(await web.sink.waitFor(l => l.msg === 'conn closed' && l.upstream === 'billing'), { peer: `spiffe://${TD}/ns/default/dc/dc1/svc/billing`, instance: `127.0.0.1:${billing.addrs.inbound!.port}` })
    await web.stop()
  }
  t.equal(gw1.metrics.get('mesh_proxy_connections_total', { direction: 'mesh_gateway', result: 'allowed' }), 1, 'gateway dc1: the local-mode connection only')
  t.equal(gw2.metrics.get('mesh_proxy_connections_total', { direction: 'mesh_gateway', result: 'allowed' }), 2, 'gateway dc2: both')
  await gw1.stop()
  await gw2.stop()
  await billing.stop()
  await db.stop()
})

t.test('no gateway listed for the first hop: the app is reset, the log names the file and the fix', async t => {
  const mesh = await makeMesh(t, ['web'])
  await writeFile(gatewaysFile(mesh.dir), JSON.stringify({ dc2: ['127.0.0.1:1'] }))
  const web = await startSidecar(t, { service: 'web', meshDir: mesh.dir, upstream: ['db:0'], upstreamDc: ['db=dc2'] })
  t.match(await appTry(web.addrs.upstreams.get('db')!.port, 'x'), { got: '', reset: true })
  t.match(await web.sink.waitFor(l => l.msg === 'conn refused'), { reason: 'upstream_unavailable', err: /no mesh gateway of dc1 is listed in .*gateways\.json \(db is in dc2, --mesh-gateway-mode local\); add "dc1": \["<host:port>"\]/ })
  await web.stop()
})

t.test('--upstream-dc errors name the flag and the fix', async t => {
  const resolve = (flags: Record<string, unknown>): unknown => resolveConfig({ flags: { service: 'web', ...flags }, env: {}, file: null })
  t.throws(() => resolve({ meshDir: '/m', upstream: ['db:9191'], upstreamDc: ['cache=dc2'] }), { errors: [{ message: /--upstream-dc: cache=dc2 names no --upstream; give --upstream cache:<port> too/ }] })
  t.throws(() => resolve({ meshDir: '/m', upstream: ['db:9191'], upstreamDc: ['db'] }), { errors: [{ message: /"db" is not <upstream service>=<datacenter>/ }] })
  t.throws(() => resolve({ controlPlane: 'spiffe', spiffeEndpointSocket: 'unix:///a.sock', upstream: ['db:9191'], upstreamDc: ['db=dc2'] }), { errors: [{ message: /db is in dc2: its mesh gateways are read from the mesh dir's gateways\.json; give --mesh-dir, or list the gateway/ }] })
  t.doesNotThrow(() => resolve({ controlPlane: 'consul', upstream: ['db:9191'], upstreamDc: ['db=dc2'] }), 'Consul resolves the instances in dc2 itself')
  t.throws(() => resolve({ meshDir: '/m', upstream: ['db:9191'], upstreamDc: ['db=dc2'], meshGatewayMode: 'none' }), { errors: [{ message: /--mesh-gateway-mode: none sends db \(in dc2\) straight to its instances, and none are listed/ }] })
  t.throws(() => resolve({ meshDir: '/m', upstream: ['db:9191'], meshGatewayMode: 'sideways' }), { errors: [{ message: /--mesh-gateway-mode: must be "local", "remote" or "none"/ }] })
  t.doesNotThrow(() => resolve({ meshDir: '/m', upstream: ['db:9191=10.0.0.7:21000'], upstreamDc: ['db=dc2'], meshGatewayMode: 'none' }), 'none with the instances listed')
  t.doesNotThrow(() => resolve({ cert: 'a', key: 'b', ca: 'c', upstream: ['db:9191=10.0.0.1:8443'], upstreamDc: ['db=dc2'] }), 'a listed gateway needs no mesh dir')
})

t.test('web in dc1 -> mesh gateways -> a terminating gateway in dc2 -> legacy-db outside the mesh', async t => {
  const mesh = await makeMesh(t, ['web'])
  await mesh.writeIntentions([{ source: 'web', destination: 'legacy-db', action: 'allow' }])
  const dc2 = await otherDatacenter(t, mesh, 'dc2')
  const legacy = await startApp(t, echo)
  // Represents legacy-db in dc2: its SVID (dc/dc2) from dc2's mesh dir, registered in dc2's catalog.
  const tgw = await startTerminating(t, { meshDir: dc2.root, service: [`legacy-db=127.0.0.1:${legacy.port}`] })
  const gw2 = await startMeshGateway(t, { datacenter: 'dc2', catalogDir: dc2.catalog })
  await writeFile(gatewaysFile(mesh.dir), JSON.stringify({ dc2: [`127.0.0.1:${gw2.at.port}`] }))
  const web = await startSidecar(t, { service: 'web', meshDir: mesh.dir, upstream: ['legacy-db:0'], upstreamDc: ['legacy-db=dc2'], meshGatewayMode: 'remote' })
  const r = await echoSha(web.addrs.upstreams.get('legacy-db')!.port, 1024 * 1024)
  t.equal(r.received, r.sent, 'sha256 equal both ways')
  t.match(await gw2.sink.waitFor(l => l.msg === 'conn closed'), { service: 'legacy-db', via: 'service', target: `127.0.0.1:${tgw.at.port}` }, 'the mesh gateway found the terminating gateway in its catalog')
  t.match(await tgw.sink.waitFor(l => l.msg === 'conn closed'), { source: 'web', destination: 'legacy-db', peer: `spiffe://${TD}/ns/default/dc/dc1/svc/web`, reason: 'eof' }, 'which verified web of dc1 and its intention')
  t.match(await web.sink.waitFor(l => l.msg === 'conn closed'), { peer: `spiffe://${TD}/ns/default/dc/dc2/svc/legacy-db` })
  await web.stop()
  await gw2.stop()
  await tgw.stop()
})
