// Why: the X509SVIDResponse decoder is the edge where the agent's bytes become
// our SVID; it must read what SPIRE (grpc-go's generated code) writes and refuse
// what is broken with a message naming the field. Certificates made by openssl.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { decodeX509SvidResponse, encodeX509SvidResponse, splitDer, type X509SvidResponse } from '../../../src/core/identity/workload-api.js'
import { lenField } from '../../../src/core/protobuf.js'
import { opensslMissing } from '../../helpers/openssl-pki.js'
import { certsDer } from '../../helpers/workload-double.js'

const skip = opensslMissing()

t.test('round trip: several SVIDs, a chain with an intermediate, federated bundles', { skip }, async t => {
  const dir = t.testdir({})
  const cert = (name: string): string => {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${name}`, '-days', '1', '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.pem`)], { stdio: 'ignore' })
    return join(dir, `${name}.pem`)
  }
  const [leaf, inter, root, other] = await Promise.all(['leaf', 'inter', 'root', 'other'].map(async n => (await certsDer(cert(n)))[0]!))
  const r: X509SvidResponse = {
    svids: [
      { spiffeId: 'spiffe://example.org/ns/default/sa/db', chain: [leaf!, inter!], keyDer: Buffer.from([1, 2, 3]), bundle: [root!], hint: 'db' },
      { spiffeId: 'spiffe://example.org/ns/default/sa/web', chain: [leaf!], keyDer: Buffer.from([4]), bundle: [root!], hint: '' }
    ],
    federatedBundles: new Map([['other.org', [other!, root!]]])
  }
  const back = decodeX509SvidResponse(encodeX509SvidResponse(r))
  t.same(back.svids.map(s => [s.spiffeId, s.chain.length, s.bundle.length, s.hint]), [['spiffe://example.org/ns/default/sa/db', 2, 1, 'db'], ['spiffe://example.org/ns/default/sa/web', 1, 1, '']])
  t.same(Buffer.from(back.svids[0]!.chain[1]!), Buffer.from(inter!), 'the intermediate, byte for byte')
  t.same([...back.federatedBundles.keys()], ['other.org'], 'keyed by trust domain name (SPIRE sends spiffe://other.org)')
  t.equal(back.federatedBundles.get('other.org')!.length, 2)
})

t.test('malformed responses name the field', async t => {
  const svid = (fields: Buffer[]): Buffer => lenField(1, Buffer.concat(fields))
  const der = Buffer.from([0x30, 0x03, 1, 2, 3])
  const rows: Array<[string, Buffer, RegExp]> = [
    ['no spiffe_id', svid([lenField(2, der), lenField(3, Buffer.from([1]))]), /without spiffe_id/],
    ['no x509_svid', svid([lenField(1, 'spiffe://a/b'), lenField(3, Buffer.from([1]))]), /spiffe:\/\/a\/b has no x509_svid/],
    ['no key', svid([lenField(1, 'spiffe://a/b'), lenField(2, der)]), /has no x509_svid_key/],
    ['chain not DER', svid([lenField(1, 'spiffe://a/b'), lenField(2, Buffer.from([5, 5])), lenField(3, Buffer.from([1]))]), /x509_svid of spiffe:\/\/a\/b: byte 0 is not the start of a DER certificate/],
    ['truncated certificate', svid([lenField(1, 'spiffe://a/b'), lenField(2, Buffer.from([0x30, 0x09, 1])), lenField(3, Buffer.from([1]))]), /is truncated \(9 bytes claimed, 1 remain\)/],
    ['bad federated key', lenField(3, Buffer.concat([lenField(1, 'not a td!'), lenField(2, der)])), /federated_bundles key "not a td!" is not a trust domain/],
    ['not protobuf', Buffer.from([0x0a, 0x7f, 0x01]), /claims 127 bytes/]
  ]
  for (const [name, msg, err] of rows) t.throws(() => decodeX509SvidResponse(msg), { message: err }, name)
  t.same(decodeX509SvidResponse(new Uint8Array(0)).svids, [], 'an empty response has no SVIDs (the plane says so)')
})

t.test('splitDer: long-form lengths, one view per certificate', async t => {
  const long = Buffer.concat([Buffer.from([0x30, 0x82, 0x01, 0x00]), Buffer.alloc(256)])
  const short = Buffer.from([0x30, 0x01, 9])
  const parts = splitDer(Buffer.concat([short, long, short]), 'x')
  t.same(parts.map(p => p.length), [3, 260, 3])
  t.same(splitDer(new Uint8Array(0), 'x'), [])
  t.throws(() => splitDer(Buffer.from([0x30, 0x85, 1, 1, 1, 1, 1]), 'x'), /unsupported DER length/)
})
