// Why: `mesh-proxy gateway mesh` as a user runs it. Its flags fail with the
// flag named and the fix; a real gateway process that was given no
// certificate, no key and a mesh dir holding neither (only mesh.json and the
// catalog) carries a sidecar's mTLS session to db's sidecar, says on /certs
// that it holds nothing, and drains on SIGTERM.
import t from 'tap'
import { connect as tlsConnect } from 'node:tls'
import { mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { TD, echo, makeMesh, startApp, startSidecar } from '../helpers/mesh.js'
import { runCli, spawnCli } from '../helpers/cli.js'

t.test('bad flags: exit 2, each flag named with the fix', async t => {
  const mesh = await makeMesh(t, [])
  const none = await runCli(['gateway', 'mesh', '--admin', 'off'])
  t.equal(none.code, 2)
  t.match(none.err, /--mesh-dir: a mesh gateway needs the mesh dir of its datacenter/)
  const bad = await runCli(['gateway', 'mesh', '--mesh-dir', mesh.dir, '--admin', 'off', '--listen', 'nowhere', '--remote-gateway', 'dc2', '--remote-gateway', 'dc1=127.0.0.1:1', '--remote-gateway', 'dc3=127.0.0.1:99999', '--handshake-timeout', '0'])
  t.equal(bad.code, 2)
  t.match(bad.err, /--listen: "nowhere" is not host:port/)
  t.match(bad.err, /--remote-gateway: "dc2" is not <datacenter>=<host:port>/)
  t.match(bad.err, /--remote-gateway: dc1 is our own datacenter/)
  t.match(bad.err, /--remote-gateway: port 99999 is out of range/)
  t.match(bad.err, /--handshake-timeout: must be more than 0/)
  const notMesh = await runCli(['gateway', 'mesh', '--mesh-dir', join(mesh.dir, 'nope'), '--admin', 'off'])
  t.equal(notMesh.code, 2)
  t.match(notMesh.err, /is not a mesh dir \(no mesh\.json\)/)
  const td = await runCli(['gateway', 'mesh', '--mesh-dir', mesh.dir, '--admin', 'off', '--trust-domain', 'Not A Domain'])
  t.equal(td.code, 2)
  t.match(td.err, /--trust-domain: /)
})

t.test('a real gateway process with no key relays web\'s mTLS to db\'s sidecar; SIGTERM drains', async t => {
  const mesh = await makeMesh(t, ['web', 'db'])
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }])
  const app = await startApp(t, echo)
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, meshDir: mesh.dir })
  // The gateway's own mesh dir: our settings and the shared catalog, nothing else.
  const gwDir = `${mesh.dir}-gateway-only`
  await rm(gwDir, { recursive: true, force: true })
  t.teardown(() => rm(gwDir, { recursive: true, force: true }))
  await mkdir(gwDir, { recursive: true })
  await writeFile(join(gwDir, 'mesh.json'), JSON.stringify({ trustDomain: TD, datacenter: 'dc1' }))
  await symlink(mesh.layout.catalog, join(gwDir, 'catalog'))
  t.same((await readdir(gwDir)).sort(), ['catalog', 'mesh.json'], 'no CA, no leaf, no key where the gateway looks')
  const { child, sink } = spawnCli(t, ['gateway', 'mesh', '--listen', '127.0.0.1:0', '--mesh-dir', gwDir, '--admin', '127.0.0.1:0'])
  const admin = String((await sink.waitFor(l => l.msg === 'admin listening')).admin)
  const started = await sink.waitFor(l => l.msg === 'gateway started')
  t.match(started, { gateway: 'mesh', datacenter: 'dc1', trustDomain: TD })
  const port = Number(String(started.listen).split(':').pop())

  const certs = await (await fetch(`http://${admin}/certs`)).json() as { certificates: unknown[] }
  t.same(certs.certificates, [], '/certs: the gateway holds none')
  const web = await mesh.leaf('web')
  const s = tlsConnect({ host: '127.0.0.1', port, servername: `db.default.dc1.internal.${TD}`, ca: mesh.ca.certPem, cert: web.certPem, key: web.keyPem, checkServerIdentity: (_h, cert) => cert.subjectaltname?.includes(`URI:spiffe://${TD}/ns/default/dc/dc1/svc/db`) === true ? undefined : new Error(`not db: ${cert.subjectaltname}`) })
  let got = ''
  s.on('data', (d: Buffer) => { got += d.toString() })
  await new Promise<void>((resolve, reject) => { s.once('secureConnect', resolve); s.once('error', reject) })
  t.ok(s.authorized, 'chain verified against the mesh CA: the server that answered through the gateway is db\'s sidecar (its SAN checked above)')
  s.end('hello through a gateway process')
  await new Promise(resolve => s.once('close', resolve))
  t.equal(got, 'hello through a gateway process', 'echoed by db\'s app')
  t.match(await sink.waitFor(l => l.msg === 'conn closed'), { via: 'service', service: 'db', reason: 'eof' })
  const metrics = await (await fetch(`http://${admin}/metrics`)).text()
  t.match(metrics, /mesh_proxy_connections_total\{direction="mesh_gateway",result="allowed"\} 1/)

  const exited = new Promise(resolve => child.on('exit', resolve))
  child.kill('SIGTERM')
  t.equal(await exited, 0, 'SIGTERM: drained, exit 0')
  await db.stop()
})
