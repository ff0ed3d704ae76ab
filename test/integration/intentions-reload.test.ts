// Why: operators change intentions while sidecars run; new connections must
// follow each change without a restart, and a broken file must not replace
// the last good table.
import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { makeMesh, startApp, startSidecar, mtlsTry, echo } from '../helpers/mesh.js'

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

  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }], 'deny', 3)
  await reloaded(3)
  t.equal((await mtlsTry(port, web, mesh.ca.certPem, 'four')).received, 'four', 'allowed again at version 3')
  await db.stop()
})
