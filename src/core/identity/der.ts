/**
 * The few X.509 fields the SVID rules need that node:crypto does not expose
 * exactly (RFC 5280): the serial's bytes, basicConstraints' cA, the keyUsage
 * bits and the URI names of subjectAltName. A strict DER reader, just enough
 * for that: one-byte tags, definite minimal lengths, every length inside its
 * parent, no trailing bytes, no extension twice (§4.2). Anything else throws.
 *
 * node:crypto's X509Certificate (OpenSSL) parses the same DER first, so this
 * never sees what OpenSSL would refuse. (Its `ca` is not the cA bit: it is
 * X509_check_ca, false for CA:TRUE without keyCertSign, true for a v1 root.)
 */

/** One DER element: its tag byte and where its content lies in the buffer. */
interface Tlv { readonly tag: number, readonly start: number, readonly end: number }

const SEQUENCE = 0x30
const INTEGER = 0x02
const BOOLEAN = 0x01
const BIT_STRING = 0x03
const OCTET_STRING = 0x04
const OID = 0x06
const EXTENSIONS = 0xa3 // [3] EXPLICIT, constructed
const URI_NAME = 0x86 // GeneralName uniformResourceIdentifier: [6] IMPLICIT IA5String

// extnID contents (the OID's bytes) of the extensions read here.
const BASIC_CONSTRAINTS = '551d13' // 2.5.29.19
const KEY_USAGE = '551d0f' // 2.5.29.15
const SUBJECT_ALT_NAME = '551d11' // 2.5.29.17

/** What der.ts reads from a certificate. */
export interface DerFacts {
  /** The serial number's content bytes, lower-case hex, as written (a leading 00 of a positive number dropped). */
  readonly serial: string
  readonly isCA: boolean
  /** RFC 5280 KeyUsage bits: bit n (digitalSignature = 0) is 1 << n; 0 when the extension is absent. */
  readonly keyUsage: number
  readonly uris: readonly string[]
}

/** A DER structure that does not read as a certificate. */
export class DerError extends Error {}

function fail (what: string): never {
  throw new DerError(`malformed DER: ${what}`)
}

/** The element at `pos`, which must end by `limit`. */
function tlv (b: Uint8Array, pos: number, limit: number): Tlv {
  if (pos + 2 > limit) fail('truncated element')
  const tag = b[pos]!
  if ((tag & 0x1f) === 0x1f) fail('multi-byte tag')
  let len = b[pos + 1]!
  let start = pos + 2
  if (len & 0x80) {
    const n = len & 0x7f
    if (n === 0) fail('indefinite length')
    if (n > 4) fail('length too long')
    if (start + n > limit) fail('truncated length')
    len = 0
    for (let i = 0; i < n; i++) len = len * 256 + b[start + i]!
    if (b[start] === 0 || len < 0x80) fail('length not minimal')
    start += n
  }
  const end = start + len
  if (end > limit) fail('element longer than its parent')
  return { tag, start, end }
}

/** The elements of a constructed element's content, which they must fill exactly. */
function children (b: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = []
  for (let pos = parent.start; pos < parent.end;) {
    const c = tlv(b, pos, parent.end)
    out.push(c)
    pos = c.end
  }
  return out
}

function expect (t: Tlv | undefined, tag: number, what: string): Tlv {
  if (t === undefined || t.tag !== tag) fail(`${what} missing`)
  return t
}

const hex = (b: Uint8Array, t: Tlv): string => Buffer.from(b.buffer, b.byteOffset + t.start, t.end - t.start).toString('hex')

/** Read a DER certificate's serial, cA, keyUsage and SAN URIs. Throws DerError. */
export function readCertDer (der: Uint8Array): DerFacts {
  const cert = tlv(der, 0, der.length)
  if (cert.tag !== SEQUENCE || cert.end !== der.length) fail('not one SEQUENCE')
  const tbs = expect(children(der, cert)[0], SEQUENCE, 'tbsCertificate')
  const fields = children(der, tbs)
  let i = fields[0]?.tag === 0xa0 ? 1 : 0 // [0] version, when not v1
  const serialTlv = expect(fields[i], INTEGER, 'serialNumber')
  if (serialTlv.end === serialTlv.start) fail('empty serialNumber')
  let serial = hex(der, serialTlv)
  if (serial.length > 2 && serial.startsWith('00')) serial = serial.slice(2)
  i += 6 // signature, issuer, validity, subject, subjectPublicKeyInfo
  if (fields.length < i) fail('tbsCertificate too short')
  let isCA = false
  let keyUsage = 0
  const uris: string[] = []
  const ext = fields.slice(i).find(f => f.tag === EXTENSIONS)
  if (ext !== undefined) {
    const [list, ...rest] = children(der, ext)
    if (rest.length > 0) fail('extensions followed by more')
    const seen = new Set<string>()
    for (const e of children(der, expect(list, SEQUENCE, 'extensions'))) {
      const parts = children(der, expect(e, SEQUENCE, 'extension'))
      const id = hex(der, expect(parts[0], OID, 'extnID'))
      if (seen.has(id)) fail('an extension appears twice')
      seen.add(id)
      const value = parts[parts.length - 1]!
      if (value.tag !== OCTET_STRING || parts.length > 3 || (parts.length === 3 && parts[1]!.tag !== BOOLEAN)) fail('extension shape')
      const inner = tlv(der, value.start, value.end)
      if (inner.end !== value.end) fail('extension value has trailing bytes')
      if (id === BASIC_CONSTRAINTS) isCA = basicConstraintsCA(der, inner)
      else if (id === KEY_USAGE) keyUsage = keyUsageBits(der, inner)
      else if (id === SUBJECT_ALT_NAME) uris.push(...sanUris(der, inner))
    }
  }
  return { serial, isCA, keyUsage, uris }
}

function basicConstraintsCA (b: Uint8Array, t: Tlv): boolean {
  const [first] = children(b, expect(t, SEQUENCE, 'basicConstraints'))
  if (first?.tag !== BOOLEAN) return false // cA DEFAULT FALSE, omitted
  if (first.end - first.start !== 1) fail('basicConstraints cA length')
  return b[first.start] !== 0
}

function keyUsageBits (b: Uint8Array, t: Tlv): number {
  expect(t, BIT_STRING, 'keyUsage')
  const n = t.end - t.start
  if (n < 1 || n > 3) fail('keyUsage length')
  const unused = b[t.start]!
  if (unused > 7 || (n === 1 && unused !== 0)) fail('keyUsage unused bits')
  let bits = 0
  for (let k = 0; k < (n - 1) * 8 - unused; k++) {
    if ((b[t.start + 1 + (k >> 3)]! >> (7 - (k & 7))) & 1) bits |= 1 << k
  }
  return bits
}

function sanUris (b: Uint8Array, t: Tlv): string[] {
  const out: string[] = []
  for (const name of children(b, expect(t, SEQUENCE, 'subjectAltName'))) {
    if (name.tag !== URI_NAME) continue
    for (let k = name.start; k < name.end; k++) if (b[k]! > 0x7e || b[k]! < 0x20) fail('a URI name that is not printable IA5')
    out.push(Buffer.from(b.buffer, b.byteOffset + name.start, name.end - name.start).toString('latin1'))
  }
  return out
}
