// Why: outbound picks an instance of the upstream: round-robin over the
// catalog's live instances, the next instance when one refuses, and never a
// dead sidecar's stale entry. The same must work without a mesh dir, from
// plain PEM files, explicit addresses and a JSON config file.
import t from 'tap'
import { connect, createServer, type AddressInfo } from 'node:net'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { makeMesh, startApp, startSidecar, type TestSidecar } from '../helpers/mesh.js'
import { resolveConfig } from '../../src/core/config/resolve.js'

function ask (port: number, text: string): Promise<string> {
  return new Promise(resolve => {
    const c = connect(port, '127.0.0.1')
    let got = ''
    c.on('data', (d: Buffer) => { got += d.toString() })
    c.on('error', () => {})
    c.on('close', () => resolve(got))
    c.end(text)
  })
}

async function deadPort (): Promise<number> {
  const s = createServer()
  await new Promise<void>(resolve => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as AddressInfo).port
  await new Promise<void>(resolve => s.close(() => resolve()))
  return port
}

t.test('round-robin over catalog instances; stale and dead entries skipped', async t => {
  const mesh = await makeMesh(t)
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }])
  const named = (name: string) => async () => await startApp(t, s => { s.on('data', () => s.end(name)) })
  const [app1, app2] = [await named('one')(), await named('two')()]
  const db1 = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app1.port}`, meshDir: mesh.dir })
  const db2 = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app2.port}`, meshDir: mesh.dir })
  // A sidecar that died without deregistering, and one whose heartbeat stopped long ago.
  await mkdir(join(mesh.layout.catalog, 'db'), { recursive: true })
  await writeFile(join(mesh.layout.catalog, 'db', 'dead.json'), JSON.stringify({ service: 'db', host: '127.0.0.1', port: await deadPort(), pid: 2 ** 22 + 7, hostname: (await import('node:os')).hostname(), updatedAt: Date.now() }))
  await writeFile(join(mesh.layout.catalog, 'db', 'stale.json'), JSON.stringify({ service: 'db', host: '127.0.0.1', port: await deadPort(), pid: process.pid, hostname: 'elsewhere', updatedAt: Date.now() - 3_600_000 }))
  const web = await startSidecar(t, { service: 'web', upstream: ['db:0'], meshDir: mesh.dir })
  const port = web.addrs.upstreams.get('db')!.port
  const answers = [await ask(port, 'a'), await ask(port, 'b'), await ask(port, 'c'), await ask(port, 'd')]
  t.same([...answers].sort(), ['one', 'one', 'two', 'two'], 'both live instances served, in turn')
  t.equal(web.metrics.get('mesh_proxy_upstream_connect_errors_total', { upstream: 'db' }), 0, 'no attempt on dead entries')
  await db2.stop()
  for (const x of ['e', 'f']) t.equal(await ask(port, x), 'one', 'after db2 deregistered, db1 takes everything')
  await web.stop()
  await db1.stop()
})

t.test('explicit instances: next instance on connect failure', async t => {
  const mesh = await makeMesh(t)
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }])
  const app = await startApp(t, s => { s.on('data', () => s.end('served')) })
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, meshDir: mesh.dir })
  const dead = await deadPort()
  const web: TestSidecar = await startSidecar(t, { service: 'web', upstream: [`db:0=127.0.0.1:${dead},127.0.0.1:${db.addrs.inbound!.port}`], meshDir: mesh.dir })
  const port = web.addrs.upstreams.get('db')!.port
  t.equal(await ask(port, 'x'), 'served')
  t.equal(await ask(port, 'y'), 'served')
  t.equal(web.metrics.get('mesh_proxy_upstream_connect_errors_total', { upstream: 'db' }), 1, 'the dead instance was tried once and skipped')
  await web.stop()
  await db.stop()
})

t.test('no mesh dir: PEM files, explicit upstream, JSON config file', async t => {
  const mesh = await makeMesh(t, [])
  const dir = t.testdir({})
  for (const s of ['web', 'db']) {
    const l = await mesh.leaf(s)
    await writeFile(join(dir, `${s}.pem`), l.certPem)
    await writeFile(join(dir, `${s}.key`), l.keyPem)
  }
  await writeFile(join(dir, 'bundle.pem'), mesh.ca.certPem)
  await writeFile(join(dir, 'intentions.json'), JSON.stringify({ intentions: [{ source: 'web', destination: 'db', action: 'allow' }] }))
  const app = await startApp(t, s => { s.on('data', d => s.end(`files: ${d.toString()}`)) })
  const fileCfg = { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, cert: join(dir, 'db.pem'), key: join(dir, 'db.key'), ca: join(dir, 'bundle.pem'), intentions: join(dir, 'intentions.json'), idleTimeout: '5m' }
  t.equal(resolveConfig({ flags: {}, env: {}, file: fileCfg }).timeouts.idleTimeoutMs, 300_000, 'the file expresses what flags do')
  const db = await startSidecar(t, { ...fileCfg })
  const web = await startSidecar(t, { service: 'web', cert: join(dir, 'web.pem'), key: join(dir, 'web.key'), ca: join(dir, 'bundle.pem'), upstream: [`db:0=127.0.0.1:${db.addrs.inbound!.port}`] })
  t.equal(await ask(web.addrs.upstreams.get('db')!.port, 'hi'), 'files: hi')
  await web.stop()
  await db.stop()
})

t.test('--ca as a SPIFFE bundle document (JWKS)', async t => {
  const mesh = await makeMesh(t, [])
  const dir = t.testdir({})
  const { formatSpiffeBundle } = await import('../../src/core/identity/spiffe-bundle.js')
  const { bundleFromPem } = await import('../../src/core/identity/bundle.js')
  const TDN = '11111111-2222-3333-4444-555555555555.consul'
  await writeFile(join(dir, 'bundle.json'), formatSpiffeBundle(bundleFromPem(mesh.ca.certPem, TDN, 'ca'), TDN))
  for (const s of ['web', 'db']) {
    const l = await mesh.leaf(s)
    await writeFile(join(dir, `${s}.pem`), l.certPem)
    await writeFile(join(dir, `${s}.key`), l.keyPem)
  }
  await writeFile(join(dir, 'intentions.json'), JSON.stringify({ intentions: [{ source: 'web', destination: 'db', action: 'allow' }] }))
  const app = await startApp(t, s => { s.on('data', d => s.end(`jwks: ${d.toString()}`)) })
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, cert: join(dir, 'db.pem'), key: join(dir, 'db.key'), ca: join(dir, 'bundle.json'), intentions: join(dir, 'intentions.json') })
  const web = await startSidecar(t, { service: 'web', cert: join(dir, 'web.pem'), key: join(dir, 'web.key'), ca: join(dir, 'bundle.json'), upstream: [`db:0=127.0.0.1:${db.addrs.inbound!.port}`] })
  t.equal(await ask(web.addrs.upstreams.get('db')!.port, 'x'), 'jwks: x')
  await web.stop()
  await db.stop()
})
