// Why: operators change upstreams in the config file and send SIGHUP; the
// sidecar applies them without a restart or a dropped connection, and a
// broken file keeps the current upstreams (and says why).
import t from 'tap'
import { EventEmitter } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { connect } from 'node:net'
import { runSidecar } from '../../src/cli/run.js'
import { makeMesh, startApp, startSidecar, captureLogger } from '../helpers/mesh.js'

async function ask (port: number): Promise<string> {
  const c = connect(port, '127.0.0.1')
  let got = ''
  c.on('data', (d: Buffer) => { got += d.toString() })
  c.on('error', () => {})
  c.end('?')
  await new Promise(resolve => c.on('close', resolve))
  return got
}

t.test('SIGHUP re-reads the config file\'s upstreams', async t => {
  const mesh = await makeMesh(t)
  await mesh.writeIntentions([{ source: 'web', destination: '*', action: 'allow' }])
  const named = async (name: string): Promise<number> => (await startApp(t, s => { s.on('data', () => s.end(name)) })).port
  const dbA = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${await named('A')}`, meshDir: mesh.dir })
  const dbB = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${await named('B')}`, meshDir: mesh.dir })
  const cache = await startSidecar(t, { service: 'cache', listen: '127.0.0.1:0', to: `127.0.0.1:${await named('C')}`, meshDir: mesh.dir })
  const file = join(mesh.dir, 'web.json') // (one testdir per test: makeMesh owns it)
  const write = (upstream: string[]): Promise<void> => writeFile(file, JSON.stringify({ service: 'web', meshDir: mesh.dir, upstream, admin: 'off' }))
  await write([`db:0=127.0.0.1:${dbA.addrs.inbound!.port}`])
  const signals = new EventEmitter()
  const { logger, sink } = captureLogger()
  const running = runSidecar({ config: file }, { logger, signals })
  const started = await sink.waitFor(l => l.msg === 'sidecar started')
  const dbPort = Number(String((started.upstreams as string[])[0]).split(' => ')[0]!.split(':')[1])
  t.equal(await ask(dbPort), 'A')

  let reloaded = sink.waitForNext(l => l.msg === 'upstreams reloaded')
  await write([`db:0=127.0.0.1:${dbB.addrs.inbound!.port}`, `cache:0=127.0.0.1:${cache.addrs.inbound!.port}`])
  signals.emit('SIGHUP')
  const r = await reloaded
  t.same([r.added, r.removed, r.updated], [['cache'], [], ['db']])
  t.equal(await ask(dbPort), 'B', 'same local port, new instance')
  t.equal(await ask(Number(String((r.listening as Record<string, string>).cache).split(':')[1])), 'C', 'the new upstream listens')

  const failed = sink.waitForNext(l => l.msg === 'config reload failed; keeping the current upstreams')
  await writeFile(file, '{"service": "web", "upstream": [')
  signals.emit('SIGHUP')
  t.match((await failed).err, /not valid JSON/)
  t.equal(await ask(dbPort), 'B', 'a broken file keeps the current upstreams')

  reloaded = sink.waitForNext(l => l.msg === 'upstreams reloaded')
  await write([`db:0=127.0.0.1:${dbB.addrs.inbound!.port}`])
  signals.emit('SIGHUP')
  t.same((await reloaded).removed, ['cache'], 'a removed upstream stops listening')

  signals.emit('SIGTERM')
  t.equal(await running, 0)
  for (const s of [dbA, dbB, cache]) await s.stop()
})

t.test('after a reload, the config the sidecar shows (/config) has the upstreams in force', async t => {
  const mesh = await makeMesh(t)
  const web = await startSidecar(t, { service: 'web', upstream: ['db:0=127.0.0.1:1'], meshDir: mesh.dir })
  const { parseUpstream } = await import('../../src/core/config/resolve.js')
  const { sidecarView } = await import('../../src/admin/server.js')
  const next = [parseUpstream('cache:0=127.0.0.1:2', '--upstream')]
  await web.sidecar.setUpstreams(next)
  t.same(web.sidecar.config.upstreams, next)
  const shown = await sidecarView(web.sidecar, web.metrics).config() as { upstreams: unknown }
  t.same(shown.upstreams, next, '/config shows the reloaded upstreams, not the ones it started with')
  await web.stop()
})
