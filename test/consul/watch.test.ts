// Why: "pulled only on change": a blocking query answered with the same
// X-Consul-Index is not a change, an index that goes backwards starts over,
// and a response that fails validation is reported but never applied.
import t from 'tap'
import { ConsulDouble } from '../helpers/consul-double.js'
import { BlockingWatch, ConsulClient } from '../../src/consul/client.js'

t.test('same index is not a change; invalid responses are not applied', async t => {
  const agent = new ConsulDouble()
  agent.maxWaitMs = 20
  t.teardown(() => agent.stop())
  const port = await agent.start()
  agent.set('health/db', [])
  const client = new ConsulClient({ address: `http://127.0.0.1:${port}`, waitSeconds: 1 })
  const changes: unknown[] = []
  const errors: string[] = []
  let answers = 0
  const threeIdle = new Promise<void>(resolve => { agent.onAnswer = () => { if (++answers === 4) resolve() } })
  const watch = new BlockingWatch<unknown>({
    client,
    path: '/v1/health/connect/db?passing=true',
    parse: body => { if (!Array.isArray(body)) throw new Error('not a list'); return body },
    onChange: v => changes.push(v),
    onError: e => errors.push(e.message),
    minBackoffMs: 5
  })
  t.teardown(() => { watch.close(); client.close() })
  await threeIdle
  t.equal(changes.length, 1, 'four answers, one change: the same index three times is not a change')
  t.ok(agent.requests.slice(1).every(r => /[?&]index=\d+&wait=1s/.test(r)), 'later requests are blocking queries')

  const rejected = new Promise<void>(resolve => { const prev = agent.onAnswer; agent.onAnswer = (k, i) => { prev?.(k, i); if (errors.length > 0) resolve() } })
  agent.set('health/db', { not: 'a list' })
  await rejected
  t.equal(changes.length, 1, 'the invalid answer was not applied')
  t.match(errors[0], /not a list/)

  const applied = new Promise<void>(resolve => { agent.onAnswer = () => { if (changes.length === 2) resolve() } })
  agent.set('health/db', [{ Service: { Address: '127.0.0.1', Port: 1 } }])
  await applied
  t.same(changes[1], [{ Service: { Address: '127.0.0.1', Port: 1 } }])

  // The agent restarts with a lower index: the watch starts over instead of waiting forever.
  const restarted = new Promise<void>(resolve => { agent.onAnswer = () => { if (changes.length === 3) resolve() } })
  agent.index = 0
  agent.set('health/db', [])
  await restarted
  t.same(changes[2], [], 'a backwards index is taken as a new state')
})

t.test('addresses', async t => {
  t.throws(() => new ConsulClient({ address: 'http://[bad' }), { message: /--consul-addr: .* is not an address/ })
  t.doesNotThrow(() => new ConsulClient({ address: 'unix:///var/run/consul.sock' }).close())
  t.doesNotThrow(() => new ConsulClient({ address: 'https://127.0.0.1:8501' }).close())
})

t.test('hash-based blocking (/v1/agent/service/<id>): the same ContentHash is not a change', async t => {
  const agent = new ConsulDouble()
  agent.maxWaitMs = 20
  t.teardown(() => agent.stop())
  const port = await agent.start()
  agent.setService('web-sidecar-proxy', { Kind: 'connect-proxy', ID: 'web-sidecar-proxy', Port: 1 })
  const client = new ConsulClient({ address: `http://127.0.0.1:${port}`, waitSeconds: 1 })
  const changes: unknown[] = []
  let answers = 0
  const idle = new Promise<void>(resolve => { agent.onAnswer = () => { if (++answers === 4) resolve() } })
  const watch = new BlockingWatch<unknown>({ client, path: '/v1/agent/service/web-sidecar-proxy', byHash: true, parse: b => (b as { Port: number }).Port, onChange: v => changes.push(v), onError: () => {}, minBackoffMs: 5 })
  t.teardown(() => { watch.close(); client.close() })
  await idle
  t.same(changes, [1], 'four answers with one hash: one change')
  t.ok(agent.requests.slice(1).every(r => /^\/v1\/agent\/service\/web-sidecar-proxy\?hash=[0-9a-f]{16}&wait=1s$/.test(r)), 'later requests block on ?hash=')
  const moved = new Promise<void>(resolve => { agent.onAnswer = () => { if (changes.length === 2) resolve() } })
  agent.setService('web-sidecar-proxy', { Kind: 'connect-proxy', ID: 'web-sidecar-proxy', Port: 2 })
  await moved
  t.same(changes, [1, 2], 'a new hash is a change')
})
