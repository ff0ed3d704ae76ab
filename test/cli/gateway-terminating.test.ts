// Why: `mesh-proxy gateway terminating` as a user runs it: a real process
// that represents legacy-db, registers it in the mesh dir catalog at its own
// address so that web's sidecar finds it as any upstream, relays allowed
// connections to the external address, and leaves the catalog on SIGTERM.
import t from 'tap'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { echo, echoRoundTrip, makeMesh, startApp, startSidecar } from '../helpers/mesh.js'
import { runCli, spawnCli } from '../helpers/cli.js'
import { ROOT } from '../helpers/paths.js'
import { spawnSync } from 'node:child_process'

t.test('bad flags: exit 2, the flag named', async t => {
  const mesh = await makeMesh(t, [])
  const none = await runCli(['gateway', 'terminating', '--mesh-dir', mesh.dir, '--admin', 'off'])
  t.equal(none.code, 2)
  t.match(none.err, /--service: a terminating gateway needs at least one external service/)
  const bad = await runCli(['gateway', 'terminating', '--mesh-dir', mesh.dir, '--admin', 'off', '--service', 'legacy-db=10.0.0.9:5432,tls', '--listen', 'x'])
  t.equal(bad.code, 2)
  t.match(bad.err, /--service: legacy-db: 10\.0\.0\.9 is an IP address/)
  t.match(bad.err, /--listen: "x" is not host:port/)
})

t.test('a real terminating gateway process: registered, relays, deregisters on SIGTERM', async t => {
  const mesh = await makeMesh(t, ['web'])
  await mesh.writeIntentions([{ source: 'web', destination: 'legacy-db', action: 'allow' }])
  const db = await startApp(t, echo)
  const { child, sink } = spawnCli(t, ['gateway', 'terminating', '--listen', '127.0.0.1:0', '--mesh-dir', mesh.dir, '--admin', '127.0.0.1:0', '--service', `legacy-db=127.0.0.1:${db.port}`])
  const admin = String((await sink.waitFor(l => l.msg === 'admin listening')).admin)
  t.match(await sink.waitFor(l => l.msg === 'gateway started'), { gateway: 'terminating', services: { 'legacy-db': `127.0.0.1:${db.port}` } })
  t.equal((await readdir(join(mesh.layout.catalog, 'legacy-db'))).length, 1, 'legacy-db is in the catalog')
  const certs = await (await fetch(`http://${admin}/certs`)).json() as { certificates: unknown[] }
  t.same(certs.certificates, [{ service: 'legacy-db', external: `127.0.0.1:${db.port}` }])
  const web = await startSidecar(t, { service: 'web', meshDir: mesh.dir, upstream: ['legacy-db:0'] })
  t.equal(await echoRoundTrip(web.addrs.upstreams.get('legacy-db')!.port, 'select 1'), 'select 1', 'through web\'s sidecar and the gateway to legacy-db')
  t.match(await sink.waitFor(l => l.msg === 'conn closed'), { source: 'web', destination: 'legacy-db', reason: 'eof' })
  const exited = new Promise(resolve => child.on('exit', resolve))
  child.kill('SIGTERM')
  t.equal(await exited, 0, 'SIGTERM: drained, exit 0')
  t.same(await readdir(join(mesh.layout.catalog, 'legacy-db')), [], 'and left the catalog')
  await web.stop()
})

t.test('--dry-run prints the configuration, never the Consul token', async t => {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'mesh-proxy.js'), 'gateway', 'terminating', '--dry-run', '--control-plane', 'consul', '--consul-token', 's3cret-token', '--service', 'legacy-db=db.internal:5432,tls'], { encoding: 'utf8' })
  t.equal(r.status, 0, r.stderr)
  t.notMatch(r.stdout, /s3cret-token/)
  t.match(JSON.parse(r.stdout), { listen: { port: 8444 }, services: [{ service: 'legacy-db', tls: { servername: 'db.internal', caFile: null }, plane: { kind: 'consul', token: '[redacted]' } }] })
  const m = spawnSync(process.execPath, [join(ROOT, 'bin', 'mesh-proxy.js'), 'gateway', 'mesh', '--dry-run', '--mesh-dir', (await makeMesh(t, [])).dir, '--remote-gateway', 'dc2=10.2.0.5:8443'], { encoding: 'utf8' })
  t.equal(m.status, 0, m.stderr)
  t.match(JSON.parse(m.stdout), { datacenter: 'dc1', remoteGateways: { dc2: [{ host: '10.2.0.5', port: 8443 }] } })
})
