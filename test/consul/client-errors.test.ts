// Why: the Consul control plane serves from its cache when the agent is
// unreachable and keeps its previous state when the agent answers wrongly; it
// tells the two apart by the error's code, set where the client makes the error.
import t from 'tap'
import http from 'node:http'
import net from 'node:net'
import { ConsulClient } from '../../src/consul/client.js'
import { ConsulError, ERR } from '../../src/core/errors.js'

async function serve (handler: http.RequestListener): Promise<{ port: number, close: () => Promise<void> }> {
  const server = http.createServer(handler)
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  return { port, close: () => new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) }) }
}

async function freePort (): Promise<number> {
  const s = net.createServer()
  await new Promise<void>(resolve => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as net.AddressInfo).port
  await new Promise<void>(resolve => s.close(() => resolve()))
  return port
}

t.test('no agent listening: MP_ERR_CONSUL_UNREACHABLE', async t => {
  const client = new ConsulClient({ address: `127.0.0.1:${await freePort()}` })
  t.teardown(() => client.close())
  const err = await client.get('/v1/agent/connect/ca/roots').catch((e: unknown) => e)
  t.ok(err instanceof ConsulError)
  t.match(err, { code: ERR.CONSUL_UNREACHABLE, message: /cannot reach the agent at 127\.0\.0\.1:\d+/ })
})

t.test('an error status or a body that is not JSON: MP_ERR_CONSUL_RESPONSE', async t => {
  const agent = await serve((req, res) => {
    if (req.url === '/status') { res.writeHead(500); res.end('boom'); return }
    res.writeHead(200, { 'content-type': 'application/json' }); res.end('{not json')
  })
  t.teardown(() => agent.close())
  const client = new ConsulClient({ address: `http://127.0.0.1:${agent.port}` })
  t.teardown(() => client.close())
  t.match(await client.get('/status').catch((e: unknown) => e), { code: ERR.CONSUL_RESPONSE, message: /HTTP 500: boom/ })
  t.match(await client.get('/json').catch((e: unknown) => e), { code: ERR.CONSUL_RESPONSE, message: /response is not JSON/ })
})

t.test('a validation error made outside the client is a response error', async t => {
  t.equal(new ConsulError('health response is not a list').code, ERR.CONSUL_RESPONSE)
  t.equal(new ConsulError('x', { cause: new Error('y') }).code, ERR.CONSUL_RESPONSE)
  t.notOk('cause' in new ConsulError('x', { unreachable: true }), 'no cause unless one is given')
})
