// Why: a datacenter's gateways move; a mesh gateway must learn where on
// SIGHUP without dropping what it relays, and a broken gateways.json must
// leave the routes it had rather than none.
import t from 'tap'
import { EventEmitter } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { TD, captureLogger, makeMesh } from '../helpers/mesh.js'
import { runMeshGateway } from '../../src/cli/gateway.js'
import { gatewaysFile } from '../../src/meshdir/gateways.js'
import { connect as tlsConnect } from 'node:tls'

/** Where a dc2 SNI is refused: the reason and why, as the gateway logs it. */
async function tryDc2 (port: number, ca: string): Promise<void> {
  const s = tlsConnect({ host: '127.0.0.1', port, servername: `db.default.dc2.internal.${TD}`, ca })
  s.on('error', () => {})
  await new Promise(resolve => s.once('close', resolve))
}

t.test('SIGHUP re-reads gateways.json; a broken one keeps the current routes', async t => {
  const mesh = await makeMesh(t, [])
  const { logger, sink } = captureLogger()
  const signals = new EventEmitter()
  const done = runMeshGateway({ meshDir: mesh.dir, listen: '127.0.0.1:0', admin: 'off' }, { logger, signals })
  const started = await sink.waitFor(l => l.msg === 'gateway started')
  t.same(started.remoteGateways, {})
  const port = Number(String(started.listen).split(':').pop())
  await tryDc2(port, mesh.ca.certPem)
  t.match(await sink.waitFor(l => l.reason === 'unknown_datacenter'), { err: /known: none/ })

  await writeFile(gatewaysFile(mesh.dir), JSON.stringify({ dc2: ['127.0.0.1:1'] }))
  signals.emit('SIGHUP')
  t.match(await sink.waitFor(l => l.msg === 'remote gateways reloaded'), { remoteGateways: { dc2: ['127.0.0.1:1'] } })
  await tryDc2(port, mesh.ca.certPem)
  t.match(await sink.waitFor(l => l.reason === 'upstream_unavailable'), { err: /no mesh gateway of dc2 answered/ }, 'now routed to dc2\'s gateway (which is down)')

  await writeFile(gatewaysFile(mesh.dir), '{ broken')
  signals.emit('SIGHUP')
  t.match(await sink.waitFor(l => l.msg === 'remote gateways reload failed; keeping the current ones'), { level: 50, err: /gateways\.json is not valid JSON/ })
  await tryDc2(port, mesh.ca.certPem)
  t.equal(sink.lines.filter(l => l.reason === 'upstream_unavailable').length, 2, 'still routed to dc2\'s gateway')

  signals.emit('SIGTERM')
  t.equal(await done, 0)
  t.ok(await sink.waitFor(l => l.msg === 'gateway stopped'))
})
