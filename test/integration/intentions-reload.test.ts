// Why: operators change intentions while sidecars run; new connections must
// follow each change without a restart, and a broken file must not replace
// the last good table.
import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { get } from 'node:http'
import { makeMesh, startApp, startSidecar, mtlsTry, echo, captureLogger } from '../helpers/mesh.js'
import { AdminServer, sidecarView } from '../../src/admin/server.js'

t.test('allow -> deny -> broken file -> allow', async t => {
  const mesh = await makeMesh(t)
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }], 'deny', 1)
  const app = await startApp(t, echo)
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, meshDir: mesh.dir })
  const port = db.addrs.inbound!.port
  const web = await mesh.leaf('web')
  const reloaded = (v: number) => db.sink.waitFor(l => l.msg === 'intentions reloaded' && l.version === v)

  t.equal((await mtlsTry(port, web, mesh.ca.certPem, 'one')).received, 'one', 'allowed at version 1')

  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'deny' }], 'deny', 2)
  await reloaded(2)
  t.equal((await mtlsTry(port, web, mesh.ca.certPem, 'two')).received, '', 'denied at version 2')
  const denied = await db.sink.waitFor(l => l.msg === 'conn denied')
  t.equal(denied.intention, 'web => db')

  await writeFile(mesh.layout.intentions, '{"intentions": [ {"source": "web", "destination": "db", "action": "allow"')
  const failed = await db.sink.waitFor(l => l.msg === 'intentions reload failed; keeping the previous table')
  t.match(failed.err, /not valid JSON/)
  t.equal((await mtlsTry(port, web, mesh.ca.certPem, 'three')).received, '', 'still denied: the broken file did not replace the table')

  // The error's advice, followed literally: the sidecar's admin endpoint serves the table it still uses, as a valid file.
  t.match(failed.err, /restore the table a running sidecar still uses: curl -s http:\/\/<its --admin address>\/intentions >/)
  const admin = new AdminServer({ view: sidecarView(db.sidecar, db.metrics), logger: captureLogger().logger })
  t.teardown(() => admin.close())
  const at = await admin.start({ host: '127.0.0.1', port: 0 })
  const saved = await new Promise<string>((resolve, reject) => get({ host: at.host, port: at.port, path: '/intentions' }, res => {
    let body = ''
    res.on('data', (d: Buffer) => { body += d.toString() })
    res.on('end', () => resolve(body))
  }).on('error', reject))
  const back = db.sink.waitForNext(l => l.msg === 'intentions reloaded')
  await writeFile(mesh.layout.intentions, saved)
  t.match(await back, { version: 2, intentions: 1 }, 'restored: version 2 is back')

  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }], 'deny', 3)
  await reloaded(3)
  t.equal((await mtlsTry(port, web, mesh.ca.certPem, 'four')).received, 'four', 'allowed again at version 3')
  await db.stop()
})

t.test('--default-policy overrides the file\'s, and the reloaded line says the one in force', async t => {
  const mesh = await makeMesh(t)
  await mesh.writeIntentions([], 'deny', 1)
  const app = await startApp(t, echo)
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, meshDir: mesh.dir, defaultPolicy: 'allow' })
  const web = await mesh.leaf('web')
  t.equal((await mtlsTry(db.addrs.inbound!.port, web, mesh.ca.certPem, 'one')).received, 'one', 'allowed by --default-policy allow over the file\'s deny')
  await mesh.writeIntentions([{ source: 'billing', destination: 'db', action: 'deny' }], 'deny', 2)
  t.match(await db.sink.waitFor(l => l.msg === 'intentions reloaded' && l.version === 2), { defaultPolicy: 'allow' })
  await db.stop()
})
