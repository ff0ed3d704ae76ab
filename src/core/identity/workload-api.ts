/**
 * The X.509 messages of the SPIFFE Workload API (the SPIFFE Workload API
 * standard; workload.proto, test/fixtures/spiffe/workload.proto):
 * X509SVIDResponse { repeated X509SVID svids = 1; repeated bytes crl = 2;
 * map<string, bytes> federated_bundles = 3 } and X509SVID { spiffe_id = 1;
 * x509_svid = 2 (DER chain, leaf first); x509_svid_key = 3 (PKCS#8 DER);
 * bundle = 4 (DER roots); hint = 5 }. Decoding, encoding (for the agent double
 * and the tests), and splitting concatenated DER certificates. Pure.
 */
import { lenField, readFields, ProtobufError, type WireField } from '../protobuf.js'
import { parseTrustDomain } from './spiffe-id.js'

/** One X509SVID entry: DER throughout, as the agent sends it. */
export interface WorkloadSvid {
  readonly spiffeId: string
  /** Leaf first, then intermediates. */
  readonly chain: readonly Uint8Array[]
  readonly keyDer: Uint8Array
  /** Our trust domain's roots. */
  readonly bundle: readonly Uint8Array[]
  /** The operator's name for this SVID when the workload has several (may be empty). */
  readonly hint: string
}

/** One X509SVIDResponse. Federated bundles are keyed by trust domain name (`other.org`). */
export interface X509SvidResponse {
  readonly svids: readonly WorkloadSvid[]
  readonly federatedBundles: ReadonlyMap<string, readonly Uint8Array[]>
}

/** Decode an X509SVIDResponse; a malformed one is a thrown Error that says what is wrong. */
export function decodeX509SvidResponse (msg: Uint8Array): X509SvidResponse {
  const svids: WorkloadSvid[] = []
  const federatedBundles = new Map<string, readonly Uint8Array[]>()
  for (const f of readFields(msg)) {
    if (f.number === 1) svids.push(decodeSvid(bytesOf(f, 'svids')))
    if (f.number === 3) {
      const [td, bundle] = decodeMapEntry(bytesOf(f, 'federated_bundles'))
      federatedBundles.set(td, splitDer(bundle, `federated bundle of ${td}`))
    }
  }
  return { svids, federatedBundles }
}

function decodeSvid (msg: Uint8Array): WorkloadSvid {
  let spiffeId = ''
  let chain: Uint8Array | undefined
  let keyDer: Uint8Array | undefined
  let bundle: Uint8Array | undefined
  let hint = ''
  for (const f of readFields(msg)) {
    if (f.number === 1) spiffeId = text(bytesOf(f, 'spiffe_id'))
    else if (f.number === 2) chain = bytesOf(f, 'x509_svid')
    else if (f.number === 3) keyDer = bytesOf(f, 'x509_svid_key')
    else if (f.number === 4) bundle = bytesOf(f, 'bundle')
    else if (f.number === 5) hint = text(bytesOf(f, 'hint'))
  }
  const who = spiffeId === '' ? 'an X509SVID without spiffe_id' : `the X509SVID of ${spiffeId}`
  if (spiffeId === '') throw new ProtobufError(`${who}`)
  if (chain === undefined || chain.length === 0) throw new ProtobufError(`${who} has no x509_svid`)
  if (keyDer === undefined || keyDer.length === 0) throw new ProtobufError(`${who} has no x509_svid_key`)
  return { spiffeId, chain: splitDer(chain, `x509_svid of ${spiffeId}`), keyDer, bundle: splitDer(bundle ?? new Uint8Array(0), `bundle of ${spiffeId}`), hint }
}

/** map<string, bytes> entry { key = 1; value = 2 }; the key is a trust domain name or its `spiffe://` ID. */
function decodeMapEntry (msg: Uint8Array): [string, Uint8Array] {
  let key = ''
  let value: Uint8Array = new Uint8Array(0)
  for (const f of readFields(msg)) {
    if (f.number === 1) key = text(bytesOf(f, 'federated_bundles key'))
    if (f.number === 2) value = bytesOf(f, 'federated_bundles value')
  }
  try {
    return [parseTrustDomain(key), value]
  } catch (err) {
    throw new ProtobufError(`federated_bundles key ${JSON.stringify(key)} is not a trust domain: ${(err as Error).message}`)
  }
}

function bytesOf (f: WireField, name: string): Uint8Array {
  if (f.bytes === undefined) throw new ProtobufError(`${name} (field ${f.number}) has wire type ${f.wireType}, not length-delimited`)
  return f.bytes
}

function text (b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8')
}

/** Concatenated DER values (`x509_svid`, `bundle`) as one view each; each must be a whole DER SEQUENCE. */
export function splitDer (buf: Uint8Array, what: string): Uint8Array[] {
  const out: Uint8Array[] = []
  let at = 0
  while (at < buf.length) {
    if (buf[at] !== 0x30) throw new ProtobufError(`${what}: byte ${at} is not the start of a DER certificate (0x30 SEQUENCE)`)
    const [length, header] = derLength(buf, at + 1, what)
    const end = at + 1 + header + length
    if (end > buf.length) throw new ProtobufError(`${what}: the certificate at byte ${at} is truncated (${length} bytes claimed, ${buf.length - at - 1 - header} remain)`)
    out.push(buf.subarray(at, end))
    at = end
  }
  return out
}

/** A DER length at `at`: its value and how many bytes it took. */
function derLength (buf: Uint8Array, at: number, what: string): [number, number] {
  const first = buf[at]
  if (first === undefined) throw new ProtobufError(`${what}: truncated DER length at byte ${at}`)
  if (first < 0x80) return [first, 1]
  const n = first & 0x7f
  if (n === 0 || n > 4 || at + n >= buf.length) throw new ProtobufError(`${what}: unsupported DER length at byte ${at}`)
  let length = 0
  for (let i = 1; i <= n; i++) length = length * 256 + buf[at + i]!
  return [length, 1 + n]
}

/** Encode an X509SVIDResponse (the agent double's side; the sidecar only decodes). */
export function encodeX509SvidResponse (r: X509SvidResponse): Buffer {
  const svids = r.svids.map(s => lenField(1, Buffer.concat([
    lenField(1, s.spiffeId),
    lenField(2, Buffer.concat(s.chain)),
    lenField(3, s.keyDer),
    lenField(4, Buffer.concat(s.bundle)),
    ...(s.hint === '' ? [] : [lenField(5, s.hint)])
  ])))
  const federated = [...r.federatedBundles].map(([td, certs]) => lenField(3, Buffer.concat([lenField(1, `spiffe://${td}`), lenField(2, Buffer.concat(certs))])))
  return Buffer.concat([...svids, ...federated])
}
