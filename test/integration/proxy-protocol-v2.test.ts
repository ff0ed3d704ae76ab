// Why: with --proxy-protocol v2 the app learns who called it from the header
// alone (it never sees the TLS). The header must come before the first byte of
// the peer's, say the peer's real address and the SPIFFE ID that passed the
// checks, and be the only thing added: the bytes after it are the peer's, byte
// for byte, half-close included. Off (the default), the app gets no header.
import t from 'tap'
import { connect as tlsConnect } from 'node:tls'
import { connect, type Socket } from 'node:net'
import { once } from 'node:events'
import { makeMesh, startApp, startSidecar, TD } from '../helpers/mesh.js'
import { sendBulk, receiveAll } from '../helpers/data.js'
import { readProxyV2, parseSslTlv, type ParsedProxyV2 } from '../helpers/proxy-v2.js'

const WEB_ID = `spiffe://${TD}/ns/default/dc/dc1/svc/web`

/** An app that reads one PROXY v2 header off each connection, then echoes what follows it. */
async function headerApp (t: Parameters<typeof startApp>[0]): Promise<{ port: number, headers: ParsedProxyV2[], next: () => Promise<ParsedProxyV2> }> {
  const headers: ParsedProxyV2[] = []
  const waiting: Array<(h: ParsedProxyV2) => void> = []
  const app = await startApp(t, (s: Socket) => {
    readProxyV2(s).then(({ header, rest }) => {
      headers.push(header)
      waiting.shift()?.(header)
      s.write(rest)
      s.pipe(s)
      s.resume()
    }, () => s.destroy())
  })
  return { port: app.port, headers, next: () => new Promise(resolve => waiting.push(resolve)) }
}

t.test('the app reads the peer\'s address, SPIFFE ID and verified TLS, then the peer\'s bytes', async t => {
  const mesh = await makeMesh(t)
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }])
  const app = await headerApp(t)
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, meshDir: mesh.dir, proxyProtocol: 'v2' })
  const inboundPort = db.addrs.inbound!.port

  // A client of our own, so its source port is known.
  const web = await mesh.leaf('web')
  const headerCame = app.next()
  const c = tlsConnect({ host: '127.0.0.1', port: inboundPort, servername: 'db', ca: mesh.ca.certPem, cert: web.certPem, key: web.keyPem })
  await once(c, 'secureConnect')
  const sourcePort = c.localPort
  c.end('hello')
  let echoed = ''
  c.on('data', (d: Buffer) => { echoed += d.toString() })
  await once(c, 'close')
  const h = await headerCame
  t.match(h, { command: 'PROXY', family: 'TCP4', source: { address: '127.0.0.1', port: sourcePort }, destination: { address: '127.0.0.1', port: inboundPort } }, 'addresses as the sidecar saw them')
  t.same(h.tlvs.map(x => x.type), [0xd0, 0x20], 'the SPIFFE ID TLV (0xD0, as ztunnel) and PP2_TYPE_SSL')
  t.equal(h.tlvs[0]!.value.toString(), WEB_ID, 'the peer\'s verified SPIFFE ID')
  const ssl = parseSslTlv(h.tlvs[1]!.value)
  t.equal(ssl.verify, 0, 'verified')
  t.equal(ssl.client, 0x07, 'SSL, certificate on this connection and in the session')
  t.same(ssl.sub.map(x => [x.type, x.value.toString()]), [[0x21, 'TLSv1.3']], 'the TLS version')
  t.equal(echoed, 'hello', 'the bytes after the header are the peer\'s')
  await db.stop()
})

t.test('through two sidecars: 8 MB each way after the header, sha256 equal, half-close kept; a resumed session says so', async t => {
  const mesh = await makeMesh(t)
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }])
  const got: Array<Promise<{ bytes: number, sha256: string }>> = []
  const sent: Array<Promise<string>> = []
  const headers: ParsedProxyV2[] = []
  const app = await startApp(t, (s: Socket) => {
    const first = readProxyV2(s).then(({ header, rest }) => { headers.push(header); return rest })
    // Read the peer's bytes to their end (the client half-closes), then answer: the return direction after a half-close.
    got.push(first.then(rest => new Promise((resolve, reject) => {
      const r = receiveAll(s)
      if (rest.length > 0) s.unshift(rest)
      s.resume()
      r.then(resolve, reject)
    })))
    sent.push(got[got.length - 1]!.then(() => sendBulk(s, 8 * 1024 * 1024)))
  })
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, meshDir: mesh.dir, proxyProtocol: 'v2' })
  const web = await startSidecar(t, { service: 'web', upstream: ['db:0'], meshDir: mesh.dir })
  const port = web.addrs.upstreams.get('db')!.port
  for (const n of [1, 2]) {
    const client = connect({ host: '127.0.0.1', port, allowHalfOpen: true })
    await once(client, 'connect')
    const back = receiveAll(client)
    const clientSent = await sendBulk(client, 8 * 1024 * 1024)
    const clientGot = await back
    await once(client, 'close')
    const appGot = await got[n - 1]!
    t.equal(appGot.sha256, clientSent, `${n}: client -> app identical after the header`)
    t.equal(appGot.bytes, 8 * 1024 * 1024, `${n}: not a byte more`)
    t.equal(clientGot.sha256, await sent[n - 1]!, `${n}: app -> client identical, after the client's half-close`)
    const closed = await db.sink.waitFor(l => l.msg === 'conn closed' && l.conn === db.sink.msgs('conn closed')[n - 1]?.conn)
    t.equal(closed.bytesToApp, 8 * 1024 * 1024, `${n}: the header is not counted as the peer's bytes`)
    const ssl = parseSslTlv(headers[n - 1]!.tlvs[1]!.value)
    t.equal(ssl.client, closed.resumed === true ? 0x05 : 0x07, `${n}: resumed=${String(closed.resumed)}: the certificate ${closed.resumed === true ? 'was on the session only' : 'came on this connection'}`)
    t.equal(headers[n - 1]!.tlvs[0]!.value.toString(), WEB_ID, `${n}: the SPIFFE ID`)
  }
  t.equal(db.sink.msgs('conn closed')[1]?.resumed, true, 'the second connection was resumed (so both flag forms were checked)')
  await web.stop()
  await db.stop()
})

t.test('a denied peer sends the app nothing, not even a header', async t => {
  const mesh = await makeMesh(t)
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'deny' }])
  const app = await startApp(t, () => {})
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, meshDir: mesh.dir, proxyProtocol: 'v2' })
  const web = await mesh.leaf('web')
  const c = tlsConnect({ host: '127.0.0.1', port: db.addrs.inbound!.port, servername: 'db', ca: mesh.ca.certPem, cert: web.certPem, key: web.keyPem })
  c.on('error', () => {})
  c.end('hello')
  const closed = new Promise(resolve => c.once('close', resolve)) // (events.once would reject on the reset)
  await db.sink.waitFor(l => l.msg === 'conn denied')
  await closed
  t.equal(app.accepted(), 0, 'the app was never connected to')
  await db.stop()
})

t.test('off by default: the first bytes the app reads are the peer\'s', async t => {
  const mesh = await makeMesh(t)
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }])
  let first: Promise<Buffer> | undefined
  const app = await startApp(t, (s: Socket) => { first = once(s, 'data').then(([d]) => { s.end(); return d as Buffer }) })
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, meshDir: mesh.dir })
  const web = await mesh.leaf('web')
  const c = tlsConnect({ host: '127.0.0.1', port: db.addrs.inbound!.port, servername: 'db', ca: mesh.ca.certPem, cert: web.certPem, key: web.keyPem })
  c.write('hello')
  c.resume()
  await once(c, 'end')
  c.end()
  t.equal((await first!).toString(), 'hello')
  await db.stop()
})

t.test('--proxy-protocol without an app, or with a value it does not know, is refused naming the flag', async t => {
  const { resolveConfig } = await import('../../src/core/config/resolve.js')
  const errorsOf = (flags: Record<string, unknown>): string[] => {
    try { resolveConfig({ flags, env: {}, file: null }); return [] } catch (err) { return (err as AggregateError).errors.map((e: Error) => e.message) }
  }
  t.match(errorsOf({ service: 'web', meshDir: '/m', upstream: ['db:1'], proxyProtocol: 'v2' }), [/^--proxy-protocol: v2 is a header to the local app on inbound connections: give --to/])
  t.match(errorsOf({ service: 'web', meshDir: '/m', to: '127.0.0.1:1', proxyProtocol: 'v1' }), [/^--proxy-protocol: must be "v2" .* or "off", got "v1"/])
  t.equal(resolveConfig({ flags: { service: 'web', meshDir: '/m', to: '127.0.0.1:1' }, env: {}, file: null }).proxyProtocol, 'off', 'off by default')
})
