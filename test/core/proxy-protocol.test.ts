// Why: an app behind --proxy-protocol v2 trusts these bytes for the peer's
// address and identity; a wrong length or a mangled IPv6 address is a wrong
// caller, not an error it can see. Each row is read back with the test's own
// parser (test/helpers/proxy-v2.ts, written from the spec).
import t from 'tap'
import { encodeProxyV2, ipv6Bytes, PP2_SIGNATURE, PP2_TYPE, PP2_CLIENT, type ProxyHeader } from '../../src/core/proxy-protocol.js'
import { parseProxyV2, parseSslTlv } from '../helpers/proxy-v2.js'

const ID = 'spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/web'

t.test('address families', async t => {
  const rows: Array<[string, ProxyHeader, string, { address: string, port: number } | undefined, { address: string, port: number } | undefined]> = [
    ['IPv4', { source: { address: '10.0.0.1', port: 50000 }, destination: { address: '10.0.0.2', port: 21000 } }, 'TCP4', { address: '10.0.0.1', port: 50000 }, { address: '10.0.0.2', port: 21000 }],
    ['v4-mapped on a dual-stack listener is IPv4', { source: { address: '::ffff:127.0.0.1', port: 1 }, destination: { address: '::ffff:127.0.0.2', port: 65535 } }, 'TCP4', { address: '127.0.0.1', port: 1 }, { address: '127.0.0.2', port: 65535 }],
    ['IPv6', { source: { address: '2001:db8::1', port: 443 }, destination: { address: '::1', port: 21000 } }, 'TCP6', { address: '2001:db8:0:0:0:0:0:1', port: 443 }, { address: '0:0:0:0:0:0:0:1', port: 21000 }],
    ['IPv6 with a zone', { source: { address: 'fe80::1%eth0', port: 2 }, destination: { address: 'fe80::2', port: 3 } }, 'TCP6', { address: 'fe80:0:0:0:0:0:0:1', port: 2 }, { address: 'fe80:0:0:0:0:0:0:2', port: 3 }],
    ['IPv4 to IPv6 maps the IPv4 end', { source: { address: '192.0.2.7', port: 9 }, destination: { address: '2001:db8::2', port: 10 } }, 'TCP6', { address: '0:0:0:0:0:ffff:c000:207', port: 9 }, { address: '2001:db8:0:0:0:0:0:2', port: 10 }],
    ['unknown source: UNSPEC, no addresses', { source: null, destination: { address: '10.0.0.2', port: 1 } }, 'UNSPEC', undefined, undefined]
  ]
  for (const [name, h, family, source, destination] of rows) {
    const b = encodeProxyV2(h)
    t.ok(b.subarray(0, 12).equals(PP2_SIGNATURE), `${name}: signature`)
    t.equal(b[12], 0x21, `${name}: version 2, PROXY`)
    const p = parseProxyV2(b)
    t.equal(p.length, b.length, `${name}: the length field covers the whole header`)
    t.same({ family: p.family, source: p.source, destination: p.destination, tlvs: p.tlvs }, { family, source, destination, tlvs: [] }, name)
  }
})

t.test('ipv6Bytes: the text forms of RFC 4291 §2.2', async t => {
  const rows: Array<[string, string]> = [
    ['::', '00000000000000000000000000000000'],
    ['::1', '00000000000000000000000000000001'],
    ['1::', '00010000000000000000000000000000'],
    ['2001:db8:85a3::8a2e:370:7334', '20010db885a3000000008a2e03707334'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '20010db8000000000000000000000001'],
    ['::ffff:192.0.2.128', '00000000000000000000ffffc0000280'],
    ['64:ff9b::10.1.2.3', '0064ff9b00000000000000000a010203'],
    ['1:2:3:4:5:6:7:8', '00010002000300040005000600070008']
  ]
  for (const [text, hex] of rows) t.equal(ipv6Bytes(text).toString('hex'), hex, text)
  t.throws(() => ipv6Bytes('1.2.3.4'), /not an IPv6 address/)
})

t.test('TLVs: the SPIFFE ID (0xD0) and PP2_TYPE_SSL', async t => {
  const rows: Array<[string, string, { version: string, certOnThisConnection: boolean }, number]> = [
    ['full handshake', ID, { version: 'TLSv1.3', certOnThisConnection: true }, PP2_CLIENT.SSL | PP2_CLIENT.CERT_CONN | PP2_CLIENT.CERT_SESS],
    ['resumed: the certificate was on the session, not this connection', ID, { version: 'TLSv1.3', certOnThisConnection: false }, PP2_CLIENT.SSL | PP2_CLIENT.CERT_SESS],
    ['TLS 1.2, a 255-byte ID (one length byte would do)', 'spiffe://td/' + 'a'.repeat(243), { version: 'TLSv1.2', certOnThisConnection: true }, 0x07],
    ['a 2048-byte ID (the SPIFFE maximum): a two-byte length', 'spiffe://td/' + 'x'.repeat(2048 - 12), { version: 'TLSv1.3', certOnThisConnection: true }, 0x07],
    ['UTF-8 in the path', 'spiffe://td/ns/é/sa/ü', { version: 'TLSv1.3', certOnThisConnection: true }, 0x07]
  ]
  for (const [name, spiffeId, tls, client] of rows) {
    const p = parseProxyV2(encodeProxyV2({ source: { address: '127.0.0.1', port: 40000 }, destination: { address: '127.0.0.1', port: 21000 }, spiffeId, tls }))
    t.same(p.tlvs.map(x => x.type), [PP2_TYPE.SPIFFE_ID, PP2_TYPE.SSL], `${name}: the ID first, then SSL`)
    t.equal(p.tlvs[0]!.value.toString('utf8'), spiffeId, `${name}: the ID, byte for byte`)
    t.equal(p.tlvs[0]!.value.length, Buffer.byteLength(spiffeId), `${name}: its length`)
    const ssl = parseSslTlv(p.tlvs[1]!.value)
    t.equal(ssl.client, client, `${name}: client bits`)
    t.equal(ssl.verify, 0, `${name}: verify 0 (verified)`)
    t.same(ssl.sub.map(x => [x.type, x.value.toString('ascii')]), [[PP2_TYPE.SSL_VERSION, tls.version]], `${name}: the version sub-TLV`)
  }
})

t.test('what cannot be encoded is a RangeError that says why', async t => {
  const at = { address: '127.0.0.1', port: 1 }
  t.throws(() => encodeProxyV2({ source: { address: 'localhost', port: 1 }, destination: at }), { name: 'RangeError', message: /source "localhost" is not an IP address/ })
  t.throws(() => encodeProxyV2({ source: at, destination: { address: '127.0.0.1', port: 70000 } }), { message: /destination port 70000 is out of range/ })
  t.throws(() => encodeProxyV2({ source: at, destination: at, spiffeId: 'x'.repeat(0x10000) }), { message: /TLV 0xd0 is 65536 bytes; a TLV holds at most 65535/ })
  t.throws(() => encodeProxyV2({ source: at, destination: at, spiffeId: 'x'.repeat(0xffff - 12 - 3 + 1) }), { message: /the v2 length field allows at most/ })
  // Exactly at the limit still encodes.
  t.equal(encodeProxyV2({ source: at, destination: at, spiffeId: 'x'.repeat(0xffff - 12 - 3) }).length, 16 + 0xffff)
})
