// Why: the mesh gateway routes on the SNI it reads from raw bytes, without a
// key; a parser that misreads a real ClientHello sends a sidecar's session to
// the wrong place, and one that trusts a length it did not check can be made
// to read past what arrived. Real ClientHellos from openssl s_client and from
// Node's tls.connect, then every way of cutting, splitting and breaking them.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT } from '../helpers/paths.js'
import { MAX_BUFFERED_BYTES, MAX_CLIENT_HELLO_BYTES, parseClientHello } from '../../src/core/client-hello.js'

const fx = (name: string): Buffer => Buffer.from(readFileSync(join(ROOT, 'test', 'fixtures', 'client-hello', name), 'utf8').replace(/\s+/g, ''), 'hex')
const DC2_DB = 'db.default.dc2.internal.11111111-2222-3333-4444-555555555555.consul'

const REAL: ReadonlyArray<[string, string | null]> = [
  ['openssl-s_client-tls13.hex', DC2_DB],
  ['openssl-s_client-tls12.hex', 'web.default.dc1.internal.example.consul'],
  ['openssl-s_client-nosni.hex', null],
  ['node-tls-connect.hex', DC2_DB],
  ['node-tls-connect-nosni.hex', null]
]

/** The same handshake bytes, re-cut into records of `size` bytes (RFC 8446 §5.1 allows any fragmentation). */
function refragment (hello: Buffer, size: number): Buffer {
  const body = hello.subarray(5, 5 + hello.readUInt16BE(3))
  const out: Buffer[] = []
  for (let at = 0; at < body.length; at += size) {
    const part = body.subarray(at, at + size)
    const h = Buffer.from([0x16, 0x03, 0x01, 0, 0])
    h.writeUInt16BE(part.length, 3)
    out.push(h, part)
  }
  return Buffer.concat(out)
}

/** A copy of `b` with `fn` applied. */
function edited (b: Buffer, fn: (c: Buffer) => void): Buffer { const c = Buffer.from(b); fn(c); return c }

/** Offset of the server_name extension (type 0) in a one-record ClientHello. */
function sniExtAt (hello: Buffer): number {
  let at = 5 + 4 + 2 + 32
  at += 1 + hello[at]!
  at += 2 + hello.readUInt16BE(at)
  at += 1 + hello[at]!
  const end = at + 2 + hello.readUInt16BE(at)
  at += 2
  while (at < end) {
    if (hello.readUInt16BE(at) === 0) return at
    at += 4 + hello.readUInt16BE(at + 2)
  }
  throw new Error('no SNI extension')
}

t.test('real ClientHellos: the SNI, or none', async t => {
  for (const [name, sni] of REAL) {
    const b = fx(name)
    t.same(parseClientHello(b), { state: 'complete', sni, bytes: b.length }, name)
  }
})

t.test('every prefix of a real ClientHello is incomplete, never a verdict', async t => {
  for (const [name] of REAL) {
    const b = fx(name)
    let wrong = 0
    for (let n = 0; n < b.length; n++) {
      const r = parseClientHello(b.subarray(0, n))
      if (r.state !== 'incomplete' || r.needBytes <= n || r.needBytes > b.length) wrong++
    }
    t.equal(wrong, 0, `${name}: all ${b.length} prefixes, each saying how many bytes to wait for`)
  }
})

t.test('split over several records (1, 7 and 100 bytes each), and over TCP reads', async t => {
  const b = fx('node-tls-connect.hex')
  for (const size of [1, 7, 100]) {
    const multi = refragment(b, size)
    t.same(parseClientHello(multi), { state: 'complete', sni: DC2_DB, bytes: multi.length }, `records of ${size}`)
    t.equal(parseClientHello(multi.subarray(0, multi.length - 1)).state, 'incomplete', `records of ${size}, one byte short`)
  }
})

t.test('bytes after the ClientHello (the client\'s next flight, garbage) are not read', async t => {
  const b = fx('openssl-s_client-tls13.hex')
  t.same(parseClientHello(Buffer.concat([b, Buffer.from('garbage after the hello')])), { state: 'complete', sni: DC2_DB, bytes: b.length })
})

t.test('not TLS', async t => {
  t.match(parseClientHello(Buffer.from('G')), { state: 'invalid', reason: 'not_tls' }, 'one byte of HTTP is enough')
  t.match(parseClientHello(Buffer.from('GET / HTTP/1.1\r\n\r\n')), { state: 'invalid', reason: 'not_tls', detail: /0x47/ })
  t.match(parseClientHello(Buffer.from([0x80, 0x2e, 0x01, 0x03, 0x01])), { state: 'invalid', reason: 'not_tls' }, 'an SSLv2 hello')
  t.match(parseClientHello(Buffer.from([0x16, 0x02, 0x00, 0x00, 0x10])), { state: 'invalid', reason: 'not_tls', detail: /version 2\.0/ })
})

t.test('a handshake record that is not a ClientHello', async t => {
  const b = edited(fx('node-tls-connect.hex'), c => { c[5] = 2 }) // a ServerHello
  t.match(parseClientHello(b), { state: 'invalid', reason: 'not_client_hello', detail: /type 2/ })
})

t.test('malformed records', async t => {
  const b = fx('node-tls-connect.hex')
  t.match(parseClientHello(edited(b, c => c.writeUInt16BE(0, 3))), { reason: 'malformed_client_hello', detail: /record length 0/ })
  t.match(parseClientHello(edited(b, c => c.writeUInt16BE(0x4001, 3))), { reason: 'malformed_client_hello', detail: /record length 16385/ })
  const multi = refragment(b, 50)
  t.match(parseClientHello(edited(multi, c => { c[55] = 21 })), { reason: 'malformed_client_hello', detail: /type 21 inside/ }, 'an alert record in the middle')
})

t.test('malformed ClientHello fields', async t => {
  const b = fx('openssl-s_client-tls13.hex')
  const sid = 5 + 4 + 2 + 32
  t.match(parseClientHello(edited(b, c => { c[sid] = 33 })), { reason: 'malformed_client_hello' }, 'session id of 33')
  const cut = edited(b, c => { c.writeUInt16BE(44, 3); c.writeUIntBE(40, 6, 3) }).subarray(0, 5 + 44)
  t.match(parseClientHello(cut), { reason: 'malformed_client_hello', detail: /legacy_session_id needs 32 bytes, 5 left/ }, 'a message that ends inside its session id')
  const suites = sid + 1 + b[sid]!
  t.match(parseClientHello(edited(b, c => c.writeUInt16BE(3, suites))), { reason: 'malformed_client_hello' }, 'odd cipher_suites')
  const ext = sniExtAt(b)
  t.match(parseClientHello(edited(b, c => c.writeUInt16BE(0xffff, ext + 2))), { reason: 'malformed_client_hello', detail: /needs/ }, 'SNI extension longer than the extensions')
  t.match(parseClientHello(edited(b, c => c.writeUInt16BE(0xfff0, ext + 4))), { reason: 'malformed_client_hello', detail: /server_name_list/ }, 'name list longer than the extension')
  // a handshake header saying more than the record holds, and no more records: waits, then the cap
  const short = edited(b, c => c.writeUIntBE(b.length, 6, 3))
  t.match(parseClientHello(short), { state: 'incomplete', needBytes: 5 + b.length - 5 + 5 })
})

t.test('the server_name itself', async t => {
  const b = fx('openssl-s_client-tls13.hex')
  const at = sniExtAt(b) + 4 + 2 + 1 + 2 // first byte of the host name
  t.match(parseClientHello(edited(b, c => { c[at] = 0x2f })), { reason: 'malformed_sni', detail: /not a DNS host name/ }, 'a slash')
  t.match(parseClientHello(edited(b, c => { c[at] = 0x00 })), { reason: 'malformed_sni' }, 'a NUL')
  t.match(parseClientHello(edited(b, c => { c[at] = 0x2e })), { reason: 'malformed_sni' }, 'a leading dot')
  const upper = parseClientHello(edited(b, c => { c[at] = 0x44 })) // 'D'
  t.match(upper, { state: 'complete', sni: DC2_DB }, 'upper case reads as lower case (DNS names are case-insensitive)')
})

t.test('too large: a ClientHello over the cap, or no end in sight', async t => {
  const h = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x01, 0x00, 0x00])
  t.match(parseClientHello(h), { state: 'invalid', reason: 'client_hello_too_large', detail: /65540 bytes is over 16384/ })
  // A size under the cap, then one byte per record: the records' headers outgrow the buffer cap first.
  const records: Buffer[] = [Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0, 0, 0])]
  records[0]!.writeUIntBE(MAX_CLIENT_HELLO_BYTES - 4, 6, 3)
  for (let n = 9; n < MAX_BUFFERED_BYTES + 6; n += 6) records.push(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x01, 0x00]))
  t.equal(parseClientHello(Buffer.concat(records).subarray(0, MAX_BUFFERED_BYTES - 6)).state, 'incomplete', 'under the cap: still waiting')
  t.match(parseClientHello(Buffer.concat(records)), { state: 'invalid', reason: 'client_hello_too_large' }, 'the cap holds across records')
})
