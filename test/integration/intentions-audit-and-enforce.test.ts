// Why: the two options beyond Consul. Audit mode lets operators see what a
// deny would do without breaking traffic; enforce-on-change closes live
// connections that a changed table now denies, and says which intention did.
// Without the flag, Consul's behaviour: live connections are left alone. The
// flag works the same whichever control plane the intentions come from.
import t from 'tap'
import { connect, type Socket } from 'node:net'
import { once } from 'node:events'
import { rename, writeFile } from 'node:fs/promises'
import { makeMesh, startApp, startSidecar, echo } from '../helpers/mesh.js'
import { agentForWebAndDb } from '../helpers/consul-double.js'

async function openConn (port: number): Promise<Socket> {
  const c = connect({ port, host: '127.0.0.1' })
  c.on('error', () => {})
  c.write('ping')
  await once(c, 'data')
  return c
}

t.test('audit mode: allowed, logged as would-deny, counted', async t => {
  const mesh = await makeMesh(t)
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'deny', audit: true }], 'allow')
  const app = await startApp(t, echo)
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, meshDir: mesh.dir })
  const web = await startSidecar(t, { service: 'web', upstream: ['db:0'], meshDir: mesh.dir })
  const c = await openConn(web.addrs.upstreams.get('db')!.port)
  const opened = await db.sink.waitFor(l => l.msg === 'conn opened')
  t.equal(opened.audit, true)
  t.equal(opened.level, 40, 'at warn level')
  t.match(opened.reason, /^would deny/)
  t.equal(db.metrics.get('mesh_proxy_intention_audit_denials_total'), 1)
  c.end()
  await new Promise(resolve => c.on('close', resolve))
  await web.stop()
  await db.stop()
})

for (const enforce of [true, false]) {
  t.test(`intention flips to deny with a live connection, enforce-on-change ${enforce ? 'on' : 'off'}`, async t => {
    const mesh = await makeMesh(t)
    await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }], 'deny', 1)
    const app = await startApp(t, echo)
    const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, meshDir: mesh.dir, enforceOnChange: enforce })
    const web = await startSidecar(t, { service: 'web', upstream: ['db:0'], meshDir: mesh.dir })
    const c = await openConn(web.addrs.upstreams.get('db')!.port)
    await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'deny' }], 'deny', 2)
    const reloaded = await db.sink.waitFor(l => l.msg === 'intentions reloaded' && l.version === 2)
    if (enforce) {
      t.equal(reloaded.closedConnections, 1)
      await new Promise(resolve => { c.on('end', () => c.end()); c.on('close', resolve) })
      const closed = await db.sink.waitFor(l => l.msg === 'conn closed')
      t.equal(closed.reason, 'revoked')
      t.equal(closed.intention, 'web => db', 'names the intention that caused it')
    } else {
      c.write('still')
      const [d] = await once(c, 'data') as [Buffer]
      t.equal(d.toString(), 'still', 'the live connection keeps working (Consul behaviour)')
      t.equal(db.sink.msgs('conn closed').length, 0)
      c.end()
      await new Promise(resolve => c.on('close', resolve))
    }
    await web.stop()
    await db.stop()
  })
}

t.test('enforce-on-change with Consul as the control plane: the same re-check, the same line', async t => {
  const mesh = await makeMesh(t, [])
  const { agent, port } = await agentForWebAndDb(t, mesh)
  const app = await startApp(t, echo)
  const consul = { controlPlane: 'consul', consulAddr: `127.0.0.1:${port}` }
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, enforceOnChange: true, ...consul })
  const web = await startSidecar(t, { service: 'web', upstream: [`db:0=127.0.0.1:${db.addrs.inbound!.port}`], ...consul })
  const c = await openConn(web.addrs.upstreams.get('db')!.port)
  const reloaded = db.sink.waitForNext(l => l.msg === 'intentions reloaded')
  agent.setIntentions('db', [{ source: 'web', action: 'deny' }])
  t.match(await reloaded, { closedConnections: 1, intentions: 1, defaultPolicy: 'deny', version: Number }, 'the live connection was re-checked and closed; the mesh dir\'s fields')
  await new Promise(resolve => c.on('close', resolve))
  t.match(await db.sink.waitFor(l => l.msg === 'conn closed'), { reason: 'revoked', intention: 'web => db' })
  await web.stop()
  await db.stop()
})

t.test('enforce-on-change with plain files as the control plane (--cert/--key/--ca, --intentions): the same re-check, the same line', async t => {
  const mesh = await makeMesh(t)
  const files = (s: string): Record<string, string> => ({ cert: mesh.layout.certFor(s), key: mesh.layout.keyFor(s), ca: mesh.layout.bundle })
  const intentions = `${mesh.dir}/own-intentions.json` // not the mesh dir's: the files plane reads --intentions
  const write = async (action: string, index: number): Promise<void> => {
    await writeFile(`${intentions}.tmp`, JSON.stringify({ index, defaultPolicy: 'deny', intentions: [{ source: 'web', destination: 'db', action }] }))
    await rename(`${intentions}.tmp`, intentions)
  }
  await write('allow', 1)
  const app = await startApp(t, echo)
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, intentions, enforceOnChange: true, ...files('db') })
  t.match(db.sink.msgs('sidecar started')[0], { mode: 'files' })
  const web = await startSidecar(t, { service: 'web', upstream: [`db:0=127.0.0.1:${db.addrs.inbound!.port}`], ...files('web') })
  const c = await openConn(web.addrs.upstreams.get('db')!.port)
  const reloaded = db.sink.waitForNext(l => l.msg === 'intentions reloaded')
  await write('deny', 2)
  t.match(await reloaded, { closedConnections: 1, intentions: 1, defaultPolicy: 'deny', version: 2 }, 'the live connection was re-checked and closed; the same fields as the other planes')
  await new Promise(resolve => c.on('close', resolve))
  t.match(await db.sink.waitFor(l => l.msg === 'conn closed'), { reason: 'revoked', intention: 'web => db' })
  await web.stop()
  await db.stop()
})
