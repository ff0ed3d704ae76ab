// Why: the drop-in is the binary a Consul user runs in place of `consul
// connect proxy`: Consul's single-dash flags and CONSUL_HTTP_ADDR on a real
// command line, JSON logs, traffic through the registration's upstream, and
// SIGTERM draining to exit 0 (deregistering what -register registered).
import t from 'tap'
import { once } from 'node:events'
import { agentForWebAndDb, consulFixture } from '../helpers/consul-double.js'
import { echo, echoRoundTrip, makeMesh, startApp, startSidecar } from '../helpers/mesh.js'
import { spawnCli } from '../helpers/cli.js'

t.test('mesh-proxy consul-proxy -sidecar-for web, as a process', async t => {
  const mesh = await makeMesh(t, [])
  const { agent, port } = await agentForWebAndDb(t, mesh)
  const app = await startApp(t, echo)
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, controlPlane: 'consul', consulAddr: `127.0.0.1:${port}`, admin: 'off' })
  agent.setInstances('db', [{ host: '127.0.0.1', port: db.addrs.inbound!.port }])
  const webApp = await startApp(t, echo)
  const reg = consulFixture<Record<string, unknown> & { Proxy: Record<string, unknown> }>('agent-service-web-sidecar-proxy.json')
  agent.setService('web-sidecar-proxy', { ...reg, Address: '127.0.0.1', Port: 0, Proxy: { ...reg.Proxy, LocalServicePort: webApp.port, Upstreams: [{ DestinationName: 'db', LocalBindPort: 0 }] } })

  const saved = process.env.CONSUL_HTTP_ADDR
  process.env.CONSUL_HTTP_ADDR = `127.0.0.1:${port}`
  let proc: ReturnType<typeof spawnCli>
  try { proc = spawnCli(t, ['consul-proxy', '-sidecar-for', 'web', '-admin=127.0.0.1:0', '-log-level', 'DEBUG', '-log-json']) } finally {
    if (saved === undefined) delete process.env.CONSUL_HTTP_ADDR
    else process.env.CONSUL_HTTP_ADDR = saved
  }
  const started = await proc.sink.waitFor(l => l.msg === 'sidecar started')
  const dbPort = Number(/:(\d+) => db$/.exec((started.upstreams as string[])[0]!)![1])
  t.equal(await echoRoundTrip(dbPort, 'from a real process'), 'from a real process', 'web -> db through the registration\'s upstream')
  const exited = once(proc.child, 'exit')
  proc.child.kill('SIGTERM')
  t.same(await exited, [0, null], 'SIGTERM: drained, exit 0')
  t.equal(proc.stderr(), '', 'nothing on stderr')
})

t.test('a bad flag: one line naming it and the fix, exit 2', async t => {
  const proc = spawnCli(t, ['consul-proxy', '-service', 'web', '-listen', ':0'])
  const exited = once(proc.child, 'exit')
  t.same(await exited, [2, null])
  t.equal(proc.stderr(), 'mesh-proxy: error: -service-addr: must be specified with -listen so the proxy knows the backend service address (e.g. -service-addr 127.0.0.1:8080)\n')
})
