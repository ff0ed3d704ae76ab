// Why: connectTimeoutMs is enforced in dial() and only there. A TCP connect
// that never completes (a black-holed address) must fail with an error that
// names the address and the timeout, not hang the connection forever.
// The net seam is replaced with t.mockImport: no global patching.
import t from 'tap'
import { Socket, createServer, type AddressInfo } from 'node:net'
import type * as DialModule from '../../src/net/dial.js'
import { dial as realDial } from '../../src/net/dial.js'
import { ConnectError } from '../../src/core/errors.js'
import { python3Missing, unansweredPort } from '../helpers/ports.js'

t.test('a connect that never completes times out', async t => {
  let created: Socket | undefined
  const { dial } = await t.mockImport<typeof DialModule>(new URL('../../src/net/dial.js', import.meta.url).href, {
    'node:net': { connect: () => { created = new Socket(); return created } }
  })
  await t.rejects(dial({ host: '127.0.0.1', port: 9 }, 50), new ConnectError('connect to 127.0.0.1:9 timed out after connectTimeoutMs=50'))
  t.ok(created?.destroyed, 'the pending socket is destroyed')
})

t.test('a refused connect fails fast with the address', async t => {
  const s = createServer()
  await new Promise<void>(resolve => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as AddressInfo).port
  await new Promise<void>(resolve => s.close(() => resolve()))
  await t.rejects(realDial({ host: '127.0.0.1', port }, 5000), { code: 'MP_ERR_UPSTREAM_CONNECT', message: new RegExp(`connect to 127\\.0\\.0\\.1:${port} failed: .*ECONNREFUSED`) })
})

t.test('a dial cancelled by its signal: rejected at once', { skip: python3Missing() }, async t => {
  const target = { port: await unansweredPort(t) }
  const ac = new AbortController()
  const dialing = realDial({ host: '127.0.0.1', port: target.port }, 3_600_000, undefined, ac.signal) // only the signal can end it
  ac.abort()
  await t.rejects(dialing, { code: 'MP_ERR_UPSTREAM_CONNECT', message: `connect to 127.0.0.1:${target.port} cancelled: the listener is closing` })
  const before = new AbortController()
  before.abort()
  await t.rejects(realDial({ host: '127.0.0.1', port: target.port }, 3_600_000, undefined, before.signal), { message: /cancelled/ }, 'a signal already aborted: no dial at all')
})
