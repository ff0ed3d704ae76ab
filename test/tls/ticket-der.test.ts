// Why: the outbound keeps each resumption ticket without the server's certificate
// (decoding it cost ~150 µs per resumed connect, and nothing used it). The cut must
// give a session OpenSSL still resumes, touch nothing else, leave TLS 1.2 sessions
// (Node refuses those without a certificate) and anything unexpected as they are.
import t from 'tap'
import { createServer, connect, type TLSSocket } from 'node:tls'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { makeMesh } from '../helpers/mesh.js'
import { withoutPeerCertificate } from '../../src/tls/ticket-der.js'

// DER builders for synthetic sessions.
const len = (n: number): number[] => n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff]
const tlv = (tag: number, ...content: Buffer[]): Buffer => { const c = Buffer.concat(content); return Buffer.concat([Buffer.from([tag, ...len(c.length)]), c]) }
const int = (...bytes: number[]): Buffer => tlv(0x02, Buffer.from(bytes))
const octets = (n: number, fill = 0x11): Buffer => tlv(0x04, Buffer.alloc(n, fill))
const ctx = (k: number, ...content: Buffer[]): Buffer => tlv(0xa0 | k, ...content)
const seq = (...content: Buffer[]): Buffer => tlv(0x30, ...content)
const cert = (n: number): Buffer => seq(octets(n, 0xcc)) // stands in for a Certificate

const TLS13 = [0x03, 0x04]
const TLS12 = [0x03, 0x03]
const head = (proto: number[]): Buffer[] => [int(1), int(...proto), octets(2), octets(32), octets(48), ctx(1, int(0x6b, 0x04)), ctx(2, int(0x1c, 0x20))]
const tail = (ticket = 100): Buffer[] => [ctx(4, octets(0)), ctx(9, int(0x1c, 0x20)), ctx(10, octets(ticket)), ctx(14, int(0x73)), ctx(19, int(0x1d))]

// Node 22/24's envelope around the DER: magic, u16 length, server name.
const envelope = (name: string, der: Buffer): Buffer => Buffer.concat([Buffer.from('\0nodejs:tls:session:1\0', 'latin1'), Buffer.from([name.length >> 8, name.length & 0xff]), Buffer.from(name, 'latin1'), der])

const cases: Array<{ name: string, input: Buffer, want: Buffer | 'same' }> = [
  { name: 'TLS 1.3 with a peer certificate: cut, all else byte for byte', input: seq(...head(TLS13), ctx(3, cert(60)), ...tail()), want: seq(...head(TLS13), ...tail()) },
  { name: 'long-form lengths: the outer length shrinks from 2 bytes to 1', input: seq(...head(TLS13), ctx(3, cert(300)), ...tail(20)), want: seq(...head(TLS13), ...tail(20)) },
  { name: 'long-form lengths kept where still needed', input: seq(...head(TLS13), ctx(3, cert(540)), ...tail(784)), want: seq(...head(TLS13), ...tail(784)) },
  { name: 'TLS 1.2: left as it is', input: seq(...head(TLS12), ctx(3, cert(60)), ...tail()), want: 'same' },
  { name: 'no peer certificate: left as it is', input: seq(...head(TLS13), ...tail()), want: 'same' },
  { name: 'truncated: left as it is', input: seq(...head(TLS13), ctx(3, cert(60)), ...tail()).subarray(0, 150), want: 'same' },
  { name: 'trailing bytes after the session: left as it is', input: Buffer.concat([seq(...head(TLS13), ctx(3, cert(60)), ...tail()), Buffer.from([0])]), want: 'same' },
  { name: 'an inner element overruns the session: left as it is', input: (() => { const b = seq(...head(TLS13), ctx(3, cert(60)), ...tail()); b[b.length - 4] = 0x7f; return b })(), want: 'same' },
  { name: 'indefinite length: left as it is', input: Buffer.from([0x30, 0x80, 0x02, 0x01, 0x01, 0x00, 0x00]), want: 'same' },
  { name: 'not a SEQUENCE: left as it is', input: Buffer.from([0x31, 0x03, 0x02, 0x01, 0x01]), want: 'same' },
  { name: 'version is not an INTEGER: left as it is', input: seq(octets(1), int(...TLS13), ctx(3, cert(10))), want: 'same' },
  { name: 'empty: left as it is', input: Buffer.alloc(0), want: 'same' },
  { name: 'in Node 22/24\'s envelope: the DER inside is cut, the envelope kept', input: envelope('127.0.0.1', seq(...head(TLS13), ctx(3, cert(300)), ...tail())), want: envelope('127.0.0.1', seq(...head(TLS13), ...tail())) },
  { name: 'in the envelope, TLS 1.2: left as it is', input: envelope('db', seq(...head(TLS12), ctx(3, cert(60)), ...tail())), want: 'same' },
  { name: 'an envelope whose name runs past the end: left as it is', input: envelope('db', Buffer.alloc(0)).subarray(0, 25), want: 'same' },
  { name: 'an envelope with a bad DER inside: left as it is', input: envelope('db', Buffer.from([0x31, 0x03, 0x02, 0x01, 0x01])), want: 'same' }
]

for (const k of cases) {
  t.test(k.name, async t => {
    const got = withoutPeerCertificate(k.input)
    if (k.want === 'same') t.equal(got, k.input, 'the very same buffer')
    else t.same([...got], [...k.want])
  })
}

t.test('a real TLS 1.3 session, cut, still resumes; the server still sees the client certificate', async t => {
  const mesh = await makeMesh(t)
  const [server, client] = [await mesh.leaf('db'), await mesh.leaf('web')]
  const seen: Array<{ resumed: boolean, clientCert: boolean }> = []
  const srv = createServer({ cert: server.certPem, key: server.keyPem, ca: mesh.ca.certPem, requestCert: true, rejectUnauthorized: true, ticketKeys: randomBytes(48) }, s => {
    seen.push({ resumed: s.isSessionReused(), clientCert: s.getPeerX509Certificate() !== undefined })
    s.end('x')
  })
  srv.listen(0, '127.0.0.1')
  await once(srv, 'listening')
  t.teardown(() => srv.close())
  const port = (srv.address() as { port: number }).port
  const open = async (session: Buffer | undefined, maxVersion: 'TLSv1.2' | 'TLSv1.3' = 'TLSv1.3'): Promise<{ sessions: Buffer[], resumed: boolean, protocol: string | null }> => {
    const c: TLSSocket = connect({ port, host: '127.0.0.1', cert: client.certPem, key: client.keyPem, ca: mesh.ca.certPem, maxVersion, checkServerIdentity: () => undefined, ...(session === undefined ? {} : { session }) })
    const sessions: Buffer[] = []
    c.on('session', (s: Buffer) => sessions.push(s))
    await once(c, 'secureConnect')
    const resumed = c.isSessionReused()
    const protocol = c.getProtocol()
    c.resume()
    await once(c, 'end')
    c.end()
    await once(c, 'close')
    return { sessions, resumed, protocol }
  }
  const first = await open(undefined)
  const full = first.sessions.at(-1)!
  const cut = withoutPeerCertificate(full)
  const serverDer = new (await import('node:crypto')).X509Certificate(server.certPem).raw
  t.ok(full.includes(serverDer), 'the session Node gives the client holds the server certificate')
  t.notOk(cut.includes(serverDer), 'the cut one does not')
  t.ok(full.length - cut.length >= serverDer.length, 'shorter by at least the certificate')
  const second = await open(cut)
  t.equal(second.resumed, true, 'the cut session resumes')
  // (Node's server sends no new ticket on a resumed TLS 1.3 connection: the same one is offered again.)
  t.equal(second.sessions.length, 0, 'no new ticket on a resumed connection')
  const third = await open(cut)
  t.equal(third.resumed, true, 'the cut session resumes again')
  t.same(seen, [{ resumed: false, clientCert: true }, { resumed: true, clientCert: true }, { resumed: true, clientCert: true }], 'the server identifies the client every time')

  const tls12 = await open(undefined, 'TLSv1.2')
  t.equal(tls12.protocol, 'TLSv1.2')
  t.equal(first.protocol, 'TLSv1.3')
  const s12 = tls12.sessions.at(-1)!
  t.equal(withoutPeerCertificate(s12), s12, 'a TLS 1.2 session is left as it is')
})
