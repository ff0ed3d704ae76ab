// Why: the inbound's handshake deadline must end a socket stuck in its handshake
// and must never end one whose handshake finished. Pending sockets are found from
// their TLSSocket through Node's `_parent`, or by address where a Node lacks it;
// both ways are pinned here over real loopback sockets. A socket whose deadline
// was stopped outlives a later-added socket's deadline (same timeout, so timers
// fire in the order they were set): no sleeps.
import t, { type Test } from 'tap'
import { createServer, connect, type Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { once } from 'node:events'
import { PendingHandshakes } from '../../src/dataplane/handshake.js'

const TIMEOUT_MS = 150

/** Accepted (server-side) loopback sockets, one per call of `accept()`. */
async function acceptor (t: Test): Promise<() => Promise<Socket>> {
  const srv = createServer()
  srv.listen(0, '127.0.0.1')
  await once(srv, 'listening')
  const clients: Socket[] = []
  t.teardown(() => { for (const c of clients) c.destroy(); srv.close() })
  const port = (srv.address() as { port: number }).port
  return async () => {
    const accepted = once(srv, 'connection')
    const c = connect(port, '127.0.0.1')
    c.on('error', () => {})
    clients.push(c)
    const [raw] = await accepted as [Socket]
    return raw
  }
}

const ways: Array<{ name: string, tlsOf: (raw: Socket) => TLSSocket }> = [
  { name: 'found through _parent', tlsOf: raw => ({ _parent: raw }) as unknown as TLSSocket },
  { name: 'found by remote address and port (a Node without _parent)', tlsOf: raw => ({ remoteAddress: raw.remoteAddress, remotePort: raw.remotePort }) as unknown as TLSSocket }
]

for (const way of ways) {
  t.test(`settled sockets outlive the deadline; unsettled ones are closed by it (${way.name})`, async t => {
    const accept = await acceptor(t)
    const pending = new PendingHandshakes(TIMEOUT_MS)
    const done = await accept()
    const stuck = await accept()
    pending.add(done)
    pending.add(stuck)
    t.equal(pending.size, 2)
    pending.settle(way.tlsOf(done))
    t.equal(pending.size, 1, 'the settled socket is no longer pending')
    const [err] = await once(stuck, 'error') as [Error]
    t.match(err.message, `TLS handshake with 127.0.0.1:${stuck.remotePort} did not complete within handshakeTimeoutMs=${TIMEOUT_MS}`, 'the error names the peer and the timeout')
    await once(stuck, 'close')
    t.equal(done.destroyed, false, 'the settled socket is still open after a later deadline passed')
    t.equal(pending.size, 0, 'a socket closed by its deadline is forgotten')
    t.equal(done.listenerCount('close'), 0, 'and the settled one keeps no listener of ours')
  })
}

t.test('a socket that closes during its handshake is forgotten; destroyAll ends the rest', async t => {
  const accept = await acceptor(t)
  const pending = new PendingHandshakes(60_000)
  const gone = await accept()
  const a = await accept()
  const b = await accept()
  for (const s of [gone, a, b]) pending.add(s)
  gone.destroy()
  await once(gone, 'close')
  t.equal(pending.size, 2)
  pending.settle({ remoteAddress: gone.remoteAddress, remotePort: 1 } as unknown as TLSSocket)
  t.equal(pending.size, 2, 'an unknown TLS socket settles nothing')
  pending.destroyAll()
  await Promise.all([once(a, 'close'), once(b, 'close')])
  t.equal(pending.size, 0)
})
