/**
 * Facts about one X.509 certificate, read once with @peculiar/x509 (extensions)
 * and node:crypto (fingerprint, public key). Pure: DER/PEM in, plain values out.
 */
import { X509Certificate as NodeX509, type KeyObject } from 'node:crypto'
import * as x509 from '@peculiar/x509'
import { CertificateError } from '../errors.js'

/** Key usage bits as in RFC 5280 / @peculiar/x509 KeyUsageFlags. */
export const KeyUsage = {
  digitalSignature: x509.KeyUsageFlags.digitalSignature,
  keyEncipherment: x509.KeyUsageFlags.keyEncipherment,
  keyAgreement: x509.KeyUsageFlags.keyAgreement,
  keyCertSign: x509.KeyUsageFlags.keyCertSign,
  cRLSign: x509.KeyUsageFlags.cRLSign
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
  let cert: x509.X509Certificate
  let node: NodeX509
  try {
    cert = new x509.X509Certificate(der)
    node = new NodeX509(der)
  } catch (err) {
    throw new CertificateError('malformed certificate (not valid DER X.509)', { cause: err })
  }
  const bc = cert.getExtension(x509.BasicConstraintsExtension)
  const ku = cert.getExtension(x509.KeyUsagesExtension)
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension)
  const uris = san === null ? [] : san.names.items.filter(n => n.type === 'url').map(n => n.value)
  return {
    der,
    fingerprint256: node.fingerprint256,
    serial: cert.serialNumber,
    subject: cert.subject,
    issuer: cert.issuer,
    uris,
    isCA: bc?.ca ?? false,
    keyUsage: ku?.usages ?? 0,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    publicKey: node.publicKey
  }
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
      throw new CertificateError(`${what}: certificate ${i + 1} is malformed (not valid DER X.509)`, { cause: err })
    }
  })
}
