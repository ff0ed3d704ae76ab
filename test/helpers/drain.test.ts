// Why: drain() decides "reset" or "orderly end" for every fault test, and
// libuv reports a reset that arrives with the last bytes as an end. These
// cases hold drain to the kernel's answer, so the fault tests can fail.
import t, { type Test } from 'tap'
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'
import { drain } from './faults.js'

async function serve (t: Test, onConn: (s: Socket) => void): Promise<number> {
  const server = createServer(onConn)
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.close() })
  return (server.address() as AddressInfo).port
}

const cases: Array<{ name: string, end: (s: Socket) => void, want: { reset: boolean, cleanEnd: boolean } }> = [
  { name: 'bytes, then a FIN', end: s => { s.end(Buffer.alloc(100_000)) }, want: { reset: false, cleanEnd: true } },
  // Bytes still coming when the reset is sent: libuv takes it for an end in 1 round of 5 or more.
  { name: 'a stream of bytes, then a reset', end: s => { const iv = setInterval(() => s.write(Buffer.alloc(3000)), 1); setTimeout(() => { clearInterval(iv); s.resetAndDestroy() }, 30) }, want: { reset: true, cleanEnd: false } },
  { name: 'a few bytes, then a reset at once', end: s => { s.write('x'); s.resetAndDestroy() }, want: { reset: true, cleanEnd: false } },
  { name: 'nothing, then a reset', end: s => { s.resetAndDestroy() }, want: { reset: true, cleanEnd: false } }
]

for (const c of cases) {
  t.test(c.name, async t => {
    const port = await serve(t, s => { s.on('error', () => {}); s.resume(); c.end(s) })
    // Forty times: the reset-as-end race of libuv is timing, and drain must win it every time.
    for (let i = 0; i < 40; i++) {
      const got = await drain(connect(port, '127.0.0.1'))
      t.same({ reset: got.reset, cleanEnd: got.cleanEnd }, c.want, `round ${i + 1}`)
    }
  })
}
