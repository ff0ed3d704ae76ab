// Why: the relay is our own forwarding loop (not pipe()), so its two duties are
// proved here on real loopback socket pairs, driven by the relay alone:
// backpressure (a receiver that stops reading stops the relay reading from the
// sender, and nothing is lost when it reads again), and idle bookkeeping for the
// process-wide sweep (idle-sweep.ts): a connection that keeps talking outlives
// idleTimeoutMs many times over, a silent one is closed with reason
// idle_timeout, and nothing stays watched afterwards.
import t from 'tap'
import { connect, createServer, type Socket, type AddressInfo } from 'node:net'
import { once } from 'node:events'
import { cut, relay, type RelayResult } from '../../src/dataplane/relay.js'
import { idleSweep, IdleSweep } from '../../src/dataplane/idle-sweep.js'

/** Two connected loopback sockets (client end, server end), half-open allowed. */
async function socketPair (): Promise<[Socket, Socket]> {
  const srv = createServer({ allowHalfOpen: true })
  srv.listen(0, '127.0.0.1')
  await once(srv, 'listening')
  const c = connect({ port: (srv.address() as AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true })
  const [s] = await once(srv, 'connection') as [Socket]
  srv.close()
  return [c, s]
}

/** client ⇄ relay(A, B) ⇄ server: returns the two outer ends and the relay. */
async function relayed (idleTimeoutMs: number): Promise<{ client: Socket, server: Socket, a: Socket, b: Socket, done: Promise<RelayResult> }> {
  const [client, a] = await socketPair()
  const [b, server] = await socketPair()
  for (const s of [client, server]) s.on('error', () => {})
  return { client, server, a, b, done: relay(a, b, { idleTimeoutMs, closeTimeoutMs: 0, maxConnLifetimeMs: 0 }).done }
}

t.test('backpressure: a receiver that stops reading stops the relay reading; nothing is lost', async t => {
  const { client, server, a, b, done } = await relayed(0)
  server.pause()
  const total = 64 * 1024 * 1024 // more than every kernel buffer on the way can hold
  const flushed = new Promise<string>(resolve => client.write(Buffer.alloc(total, 7), () => resolve('flushed')))
  const first = await Promise.race([once(a, 'pause').then(() => 'paused'), flushed])
  t.equal(first, 'paused', 'the relay paused its source before the sender could flush 64 MiB')
  t.ok(b.writableLength <= 1024 * 1024, `the relay holds little in memory (${b.writableLength} bytes queued)`)
  let got = 0
  server.on('data', (d: Buffer) => { got += d.length })
  server.resume()
  await flushed
  client.end()
  server.on('end', () => server.end())
  const r = await done
  t.equal(got, total, 'every byte arrived once the receiver read again')
  t.equal(r.reason, 'eof')
})

t.test('traffic more often than the idle timeout keeps the connection open; silence closes it', async t => {
  const idleMs = 400
  const { client, server, done } = await relayed(idleMs)
  let outcome: RelayResult | undefined
  void done.then(r => { outcome = r })
  // 24 one-byte round trips, one every 50 ms: 1.2 s, three idle timeouts' worth.
  for (let i = 0; i < 24; i++) {
    client.write('p')
    await once(server, 'data')
    server.write('q')
    await once(client, 'data')
    await new Promise(resolve => setTimeout(resolve, 50)) // the traffic's pace, not a wait for an event
    t.equal(outcome, undefined, 'still open while bytes flow')
    if (outcome !== undefined) break
  }
  const r = await done
  t.equal(r.reason, 'idle_timeout', 'closed once silent')
  t.equal(r.bytesAtoB, 24)
  t.equal(r.bytesBtoA, 24)
  t.equal(idleSweep(idleMs).size, 0, 'the closed relay is no longer watched')
})

t.test('one direction alone counts as activity', async t => {
  const { client, server, done } = await relayed(300)
  let outcome: RelayResult | undefined
  void done.then(r => { outcome = r })
  server.resume()
  for (let i = 0; i < 16; i++) {
    client.write('x')
    await new Promise(resolve => setTimeout(resolve, 50))
    if (outcome !== undefined) break
  }
  t.equal(outcome, undefined, 'still open after 0.8 s of client-to-server bytes only')
  t.equal((await done).reason, 'idle_timeout')
})

t.test('the sweep period and its bounds', async t => {
  for (const [idleMs, periodMs] of [[1, 1], [200, 50], [4000, 1000], [3_600_000, 1000]] as const) {
    t.equal(new IdleSweep(idleMs).periodMs, periodMs, `idle ${idleMs} ms → period ${periodMs} ms`)
  }
})

t.test('a relay without an idle timeout is never swept', async t => {
  const { client, server, done } = await relayed(0)
  client.end('bye')
  server.resume()
  server.on('end', () => server.end())
  t.equal((await done).reason, 'eof')
})

t.test('failure semantics: a reset on one side is a reset on the other, a clean end a FIN', async t => {
  const ended = (s: Socket): Promise<'reset' | 'fin'> => new Promise(resolve => {
    let how: 'reset' | 'fin' = 'fin'
    s.on('error', (e: Error & { code?: string }) => { if (e.code === 'ECONNRESET') how = 'reset' })
    s.resume()
    s.once('close', () => resolve(how))
  })
  const rows: Array<{ name: string, act: (client: Socket, server: Socket) => void, server: 'reset' | 'fin', reason: string }> = [
    { name: 'the client resets', act: c => { c.resetAndDestroy() }, server: 'reset', reason: 'app_aborted' },
    { name: 'the client ends, the server ends', act: (c, s) => { c.end(); s.end() }, server: 'fin', reason: 'eof' }
  ]
  for (const r of rows) {
    const { client, server, done } = await relayed(0)
    const serverEnd = ended(server)
    r.act(client, server)
    t.equal(await serverEnd, r.server, `${r.name}: the far side sees a ${r.server}`)
    t.equal((await done).reason, r.reason, `${r.name}: reason ${r.reason}`)
  }
})

t.test('cut() closes a socket whose FIN is not yet sent (Node refuses a reset there, EINVAL, and would leave it open for good)', async t => {
  const [client, server] = await socketPair()
  server.resume()
  client.on('error', () => {})
  client.end() // the relay ends a side on a clean end; a failure on the other may cut it in the same tick
  t.equal(client.writableFinished, false, 'the FIN is still on its way')
  const closed = once(client, 'close')
  cut(client)
  await closed
  t.equal(client.destroyed, true, 'closed')
  server.destroy()
})
