// Why: the SVID rules rest on four fields der.ts reads from DER (the serial,
// basicConstraints' cA, the keyUsage bits, the SAN URIs). Certificates made by
// the openssl CLI, not by our CA code, must read as openssl says they are; DER
// that is not well-formed or breaks RFC 5280's shape must be refused, never
// half-read.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DerError, readCertDer, type DerFacts } from '../../../src/core/identity/der.js'
import { certFacts, certsFromPem, pemBlocks } from '../../../src/core/identity/x509.js'
import { opensslMissing } from '../../helpers/openssl-pki.js'

const DS = 1; const NR = 2; const KE = 4; const DE = 8; const KA = 16; const KCS = 32; const CRL = 64; const EO = 128; const DO = 256

t.test('certificates made by openssl read as openssl made them', { skip: opensslMissing() }, async t => {
  const dir = t.testdir({})
  execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', join(dir, 'k.pem')])
  const rows: Array<[string, string[], Partial<DerFacts>]> = [
    ['a CA', ['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], { isCA: true, keyUsage: KCS | CRL }],
    ['a CA with pathlen, CA:TRUE without keyCertSign', ['-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0', '-addext', 'keyUsage=digitalSignature'], { isCA: true, keyUsage: DS }],
    ['CA:FALSE written out', ['-addext', 'basicConstraints=CA:FALSE', '-addext', 'keyUsage=digitalSignature,keyEncipherment,keyAgreement'], { isCA: false, keyUsage: DS | KE | KA }],
    ['keyUsage in two bytes (decipherOnly)', ['-addext', 'keyUsage=digitalSignature,decipherOnly'], { keyUsage: DS | DO }],
    ['every other keyUsage bit', ['-addext', 'keyUsage=encipherOnly,digitalSignature,nonRepudiation,dataEncipherment'], { keyUsage: EO | DS | NR | DE }],
    ['SAN: URIs among DNS, IP and email names, in order', ['-addext', 'subjectAltName=DNS:foo,URI:spiffe://a.org/x,IP:127.0.0.1,URI:spiffe://b.org/y,email:a@b.c'], { uris: ['spiffe://a.org/x', 'spiffe://b.org/y'] }],
    ['SAN: a URI with percent-escapes and a query', ['-addext', 'subjectAltName=URI:spiffe://td/with%20pct,URI:https://x.example/a?b=c'], { uris: ['spiffe://td/with%20pct', 'https://x.example/a?b=c'] }],
    ['no extensions but openssl\'s defaults', ['-set_serial', '1'], { serial: '01', uris: [] }],
    ['a serial whose top bit is set (DER adds a 00)', ['-set_serial', '0x80aabbccddeeff00'], { serial: '80aabbccddeeff00' }],
    ['a 19-byte serial', ['-set_serial', '0x7fffffffffffffffffffffffffffffffffffff'], { serial: '7fffffffffffffffffffffffffffffffffffff' }]
  ]
  for (const [why, args, want] of rows) {
    const out = join(dir, 'c.pem')
    execFileSync('openssl', ['req', '-x509', '-new', '-key', join(dir, 'k.pem'), '-subj', '/CN=t', '-days', '1', ...args, '-out', out])
    const der = pemBlocks(readFileSync(out, 'utf8'))[0]!.der
    const got = readCertDer(der)
    t.match(got, want, why)
    const serial = /serial=([0-9A-F]+)/.exec(execFileSync('openssl', ['x509', '-in', out, '-noout', '-serial'], { encoding: 'utf8' }))![1]!
    t.equal(got.serial, serial.toLowerCase().replace(/^0+(?=.)/, '').padStart(got.serial.length, '0'), `${why}: the serial is openssl's`)
  }
  // A v1 certificate: no version field, no extensions.
  const v1 = join(dir, 'v1.pem')
  execFileSync('openssl', ['req', '-new', '-key', join(dir, 'k.pem'), '-subj', '/CN=v1', '-out', join(dir, 'v1.csr')])
  execFileSync('openssl', ['x509', '-req', '-in', join(dir, 'v1.csr'), '-signkey', join(dir, 'k.pem'), '-out', v1, '-days', '1'], { stdio: 'ignore' })
  t.match(readCertDer(pemBlocks(readFileSync(v1, 'utf8'))[0]!.der), { isCA: false, keyUsage: 0, uris: [] }, 'a v1 certificate')
})

// Hand-made DER: readCertDer reads no signature, so a TBS shape is enough.
const tlv = (tag: number, ...parts: Buffer[]): Buffer => {
  const body = Buffer.concat(parts)
  const n = body.length
  const len = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff])
  return Buffer.concat([Buffer.from([tag]), len, body])
}
const seq = (...p: Buffer[]): Buffer => tlv(0x30, ...p)
const oid = (hex: string): Buffer => tlv(0x06, Buffer.from(hex, 'hex'))
const ext = (id: string, value: Buffer, critical?: boolean): Buffer => seq(oid(id), ...(critical === undefined ? [] : [tlv(0x01, Buffer.from([critical ? 0xff : 0]))]), tlv(0x04, value))
const BC = '551d13'; const KU = '551d0f'; const SAN = '551d11'
const filler = seq() // stands for signature, issuer, validity, subject, subjectPublicKeyInfo
const cert = (...exts: Buffer[]): Buffer => seq(seq(tlv(0xa0, tlv(0x02, Buffer.from([2]))), tlv(0x02, Buffer.from([0x2a])), filler, filler, filler, filler, filler, ...(exts.length > 0 ? [tlv(0xa3, seq(...exts))] : [])), filler, tlv(0x03, Buffer.from([0])))
const uri = (s: string): Buffer => tlv(0x86, Buffer.from(s, 'latin1'))

t.test('hand-made DER: what reads', async t => {
  const rows: Array<[string, Buffer, Partial<DerFacts>]> = [
    ['no extensions', cert(), { serial: '2a', isCA: false, keyUsage: 0, uris: [] }],
    ['cA TRUE, critical', cert(ext(BC, seq(tlv(0x01, Buffer.from([0xff]))), true)), { isCA: true }],
    ['basicConstraints with cA omitted (DEFAULT FALSE) and a pathLen', cert(ext(BC, seq(tlv(0x02, Buffer.from([0]))))), { isCA: false }],
    ['keyUsage digitalSignature, 7 unused bits', cert(ext(KU, tlv(0x03, Buffer.from([7, 0x80])))), { keyUsage: DS }],
    ['keyUsage bits past the unused count are ignored', cert(ext(KU, tlv(0x03, Buffer.from([6, 0xc7])))), { keyUsage: DS | NR }],
    ['an unknown extension is skipped', cert(ext('2a0304', tlv(0x05)), ext(SAN, seq(uri('spiffe://td/a')))), { uris: ['spiffe://td/a'] }],
    ['a long-form length', cert(ext(SAN, seq(uri('spiffe://td/' + 'a'.repeat(200))))), { uris: ['spiffe://td/' + 'a'.repeat(200)] }]
  ]
  for (const [why, der, want] of rows) t.match(readCertDer(der), want, why)
})

t.test('hand-made DER: what is refused', async t => {
  const good = cert(ext(SAN, seq(uri('spiffe://td/a'))))
  const rows: Array<[string, Buffer, RegExp]> = [
    ['empty', Buffer.alloc(0), /truncated/],
    ['truncated by a byte', good.subarray(0, good.length - 1), /longer than its parent|truncated/],
    ['a trailing byte', Buffer.concat([good, Buffer.from([0])]), /not one SEQUENCE/],
    ['an indefinite length', Buffer.concat([Buffer.from([0x30, 0x80]), good.subarray(2), Buffer.from([0, 0])]), /indefinite/],
    ['a long-form length for a short element', Buffer.concat([Buffer.from([0x30, 0x81, good[1]!]), good.subarray(2)]), /not minimal/],
    ['a multi-byte tag', Buffer.from([0x1f, 0x81, 0x01, 0x00]), /multi-byte tag/],
    ['the same extension twice', cert(ext(SAN, seq(uri('spiffe://td/a'))), ext(SAN, seq(uri('spiffe://td/b')))), /twice/],
    ['an extension value with trailing bytes', cert(ext(SAN, Buffer.concat([seq(uri('spiffe://td/a')), Buffer.from([0])]))), /trailing/],
    ['keyUsage that is not a BIT STRING', cert(ext(KU, tlv(0x04, Buffer.from([0x80])))), /keyUsage missing/],
    ['keyUsage with 8 unused bits', cert(ext(KU, tlv(0x03, Buffer.from([8, 0x80])))), /unused bits/],
    ['cA of two bytes', cert(ext(BC, seq(tlv(0x01, Buffer.from([0xff, 0xff]))))), /cA length/],
    ['a URI with a control character', cert(ext(SAN, seq(uri('spiffe://td/a\nb')))), /not printable/],
    ['an empty serial', seq(seq(tlv(0x02), filler, filler, filler, filler, filler)), /empty serialNumber/],
    ['a TBS cut short', seq(seq(tlv(0x02, Buffer.from([1])), filler)), /too short/]
  ]
  for (const [why, der, want] of rows) t.throws(() => readCertDer(der), { constructor: DerError, message: want }, why)
})

t.test('an empty subject reads as "" on every Node (Node 20 reports it as undefined)', { skip: opensslMissing() }, async t => {
  const dir = t.testdir({})
  const key = join(dir, 'k.pem')
  execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key])
  execFileSync('openssl', ['req', '-new', '-key', key, '-subj', '/', '-out', join(dir, 'l.csr')], { stdio: 'ignore' })
  writeFileSync(join(dir, 'e.cnf'), 'keyUsage=critical,digitalSignature\nsubjectAltName=URI:spiffe://example.org/web\n')
  execFileSync('openssl', ['x509', '-req', '-in', join(dir, 'l.csr'), '-signkey', key, '-days', '1', '-extfile', join(dir, 'e.cnf'), '-out', join(dir, 'l.pem')], { stdio: 'ignore' })
  const [facts] = certsFromPem(readFileSync(join(dir, 'l.pem'), 'utf8'), 'l.pem')
  t.match(facts, { subject: '', issuer: '', uris: ['spiffe://example.org/web'], keyUsage: DS })
})

t.test('a malformed certificate: the error says what refused it', async t => {
  const bad = cert(ext(SAN, seq(uri('spiffe://td/a'))), ext(SAN, seq(uri('spiffe://td/b'))))
  t.throws(() => certFacts(bad), { message: /malformed certificate \(not valid DER X\.509: OpenSSL cannot parse it\)/ }, 'not even OpenSSL reads a hand-made TBS')
})
