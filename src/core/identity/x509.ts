/**
 * Facts about one X.509 certificate: node:crypto (OpenSSL) parses it and gives
 * the fingerprint, public key, names and validity; der.ts reads the serial's
 * bytes and the three extensions the SVID rules need. Pure: DER/PEM in, plain
 * values out. (No @peculiar/x509 here: loading it costs a sidecar 136-280 ms and
 * 13 MB at start; only the CA code that writes certificates needs it.)
 */
import { X509Certificate as NodeX509, type KeyObject } from 'node:crypto'
import { CertificateError } from '../errors.js'
import { readCertDer } from './der.js'

/** Key usage bits (RFC 5280 §4.2.1.3: bit n is 1 << n). */
export const KeyUsage = {
  digitalSignature: 1 << 0,
  keyEncipherment: 1 << 2,
  keyAgreement: 1 << 4,
  keyCertSign: 1 << 5,
  cRLSign: 1 << 6
} as const

/** What the SVID rules and the logs need to know about a certificate. */
export interface CertFacts {
  readonly der: Buffer
  /** SHA-256 fingerprint, colon-separated upper-case hex (node:crypto format). */
  readonly fingerprint256: string
  readonly serial: string
  readonly subject: string
  readonly issuer: string
  readonly uris: readonly string[]
  readonly isCA: boolean
  /** Key usage bit set; 0 when the extension is absent. */
  readonly keyUsage: number
  readonly notBefore: Date
  readonly notAfter: Date
  readonly publicKey: KeyObject
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n?([A-Za-z0-9+/=\s]*?)-----END \1-----/g

/** One PEM block. */
export interface PemBlock { readonly type: string, readonly der: Buffer }

/** Split PEM text into blocks; throws if there are none. */
export function pemBlocks (text: string): PemBlock[] {
  const out: PemBlock[] = []
  for (const m of text.matchAll(PEM_BLOCK)) {
    out.push({ type: m[1]!, der: Buffer.from(m[2]!.replace(/\s+/g, ''), 'base64') })
  }
  return out
}

/** DER to PEM text. */
export function toPem (type: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')
  return `-----BEGIN ${type}-----\n${b64}\n-----END ${type}-----\n`
}

/** Read the facts of one DER certificate. Throws CertificateError if it does not parse. */
export function certFacts (der: Buffer): CertFacts {
  let node: NodeX509
  let facts: ReturnType<typeof readCertDer>
  try {
    node = new NodeX509(der)
  } catch (err) {
    throw new CertificateError('malformed certificate (not valid DER X.509: OpenSSL cannot parse it)', { cause: err })
  }
  try {
    facts = readCertDer(der)
  } catch (err) {
    throw new CertificateError(`malformed certificate (not valid DER X.509: ${(err as Error).message})`, { cause: err })
  }
  return {
    der,
    fingerprint256: node.fingerprint256,
    serial: facts.serial,
    subject: oneLine(node.subject),
    issuer: oneLine(node.issuer),
    uris: facts.uris,
    isCA: facts.isCA,
    keyUsage: facts.keyUsage,
    notBefore: new Date(node.validFrom),
    notAfter: new Date(node.validTo),
    publicKey: node.publicKey
  }
}

/** OpenSSL's one-RDN-per-line name as one line: `C=US, O=SPIRE`; an empty name is '' (Node 20 reports it as undefined). */
function oneLine (name: string | undefined): string {
  return (name ?? '').split('\n').join(', ')
}

/** Parse every CERTIFICATE block of a PEM text; throws when there is none. */
export function certsFromPem (text: string, what: string): CertFacts[] {
  const blocks = pemBlocks(text)
  if (blocks.length === 0) throw new CertificateError(`${what}: no PEM blocks found (expected -----BEGIN CERTIFICATE-----)`)
  const certs = blocks.filter(b => b.type === 'CERTIFICATE')
  if (certs.length === 0) throw new CertificateError(`${what}: no certificates found (the file has PEM blocks, but none is a CERTIFICATE)`)
  return certs.map((b, i) => {
    try {
      return certFacts(b.der)
    } catch (err) {
      throw new CertificateError(`${what}: certificate ${i + 1} is ${(err as Error).message.replace(/^malformed certificate/, 'malformed')}`, { cause: err })
    }
  })
}
