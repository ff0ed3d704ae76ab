/**
 * Minimal certificate issuer (ECDSA P-256, SHA-256) on @peculiar/x509 and
 * node's WebCrypto: a root CA in Consul's shape and leaf SVIDs signed by it.
 * Pure given its inputs (keys are generated, nothing is written): the mesh dir
 * store and the CLI decide where the PEMs go.
 */
import { webcrypto, randomBytes } from 'node:crypto'
import type * as X509 from '@peculiar/x509'
import { trustDomainUri } from '../core/identity/spiffe-id.js'
import { pemBlocks, toPem } from '../core/identity/x509.js'
import { CertificateError } from '../core/errors.js'

let loading: Promise<typeof X509> | undefined
/**
 * @peculiar/x509, loaded on first use: it costs a process 136-280 ms and 13 MB,
 * and a sidecar whose certificates come from files, Consul or SPIFFE never
 * writes one.
 */
async function lib (): Promise<typeof X509> {
  return await (loading ??= import('@peculiar/x509').then(m => {
    m.cryptoProvider.set(webcrypto as never)
    return m
  }))
}

const KEY_ALG = { name: 'ECDSA', namedCurve: 'P-256' } as const
const SIGN_ALG = { name: 'ECDSA', hash: 'SHA-256' } as const

/** A certificate and its private key, both PEM (key in PKCS#8). */
export interface IssuedCert {
  readonly certPem: string
  readonly keyPem: string
}

/** Options of {@link createRootCa}. */
export interface RootOptions {
  trustDomain: string
  notBefore?: Date
  notAfter?: Date
  commonName?: string
}

/** Options of {@link issueCert}. Everything past `uris` exists so tests can build bad SVIDs on purpose. */
export interface IssueOptions {
  /** The signer: a CA certificate and key. */
  ca: IssuedCert
  /** URI SANs, normally exactly one SPIFFE ID. */
  uris: readonly string[]
  dnsNames?: readonly string[]
  commonName?: string
  notBefore?: Date
  notAfter?: Date
  /** Make a CA certificate (an intermediate, or a bad leaf in tests). */
  isCA?: boolean
  /** Override the key usage bits (x509.KeyUsageFlags). */
  keyUsage?: number
}

const HOUR = 3_600_000

/** Generate a self-signed root CA in Consul's shape (CA:TRUE, keyCertSign|cRLSign, URI SAN spiffe://<td>). */
export async function createRootCa (opts: RootOptions): Promise<IssuedCert> {
  const x509 = await lib()
  const keys = await webcrypto.subtle.generateKey(KEY_ALG, true, ['sign', 'verify']) as webcrypto.CryptoKeyPair
  const now = Date.now()
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${opts.commonName ?? 'mesh-proxy CA ' + opts.trustDomain.split('.')[0]}`,
    notBefore: opts.notBefore ?? new Date(now - 60_000),
    notAfter: opts.notAfter ?? new Date(now + 10 * 365 * 24 * HOUR),
    keys,
    signingAlgorithm: SIGN_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: trustDomainUri(opts.trustDomain) }]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey)
    ]
  })
  return { certPem: cert.toString('pem') + '\n', keyPem: await exportKey(keys.privateKey) }
}

/** Issue a certificate signed by `opts.ca`: by default a leaf SVID in Consul's shape. */
export async function issueCert (opts: IssueOptions): Promise<IssuedCert> {
  const x509 = await lib()
  const caCert = new x509.X509Certificate(opts.ca.certPem)
  const caKey = await importKey(opts.ca.keyPem)
  const keys = await webcrypto.subtle.generateKey(KEY_ALG, true, ['sign', 'verify']) as webcrypto.CryptoKeyPair
  const now = Date.now()
  const isCA = opts.isCA ?? false
  const usage = opts.keyUsage ?? (isCA
    ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature
    : x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment | x509.KeyUsageFlags.keyAgreement)
  const names: X509.JsonGeneralName[] = [
    ...opts.uris.map(value => ({ type: 'url' as const, value })),
    ...(opts.dnsNames ?? []).map(value => ({ type: 'dns' as const, value }))
  ]
  const extensions: X509.Extension[] = [
    new x509.BasicConstraintsExtension(isCA, undefined, true),
    new x509.KeyUsagesExtension(usage, true),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey)
  ]
  if (!isCA) extensions.push(new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]))
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names))
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${opts.commonName ?? 'mesh-proxy'}`,
    issuer: caCert.subject,
    notBefore: opts.notBefore ?? new Date(now - 60_000),
    notAfter: opts.notAfter ?? new Date(now + 72 * HOUR),
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: SIGN_ALG,
    extensions
  })
  return { certPem: cert.toString('pem') + '\n', keyPem: await exportKey(keys.privateKey) }
}

async function exportKey (key: webcrypto.CryptoKey): Promise<string> {
  return toPem('PRIVATE KEY', new Uint8Array(await webcrypto.subtle.exportKey('pkcs8', key)))
}

async function importKey (pem: string): Promise<webcrypto.CryptoKey> {
  const block = pemBlocks(pem).find(b => b.type === 'PRIVATE KEY')
  if (block === undefined) throw new CertificateError('CA key: expected a PKCS#8 "PRIVATE KEY" PEM block (ECDSA P-256)')
  try {
    return await webcrypto.subtle.importKey('pkcs8', block.der, KEY_ALG, false, ['sign'])
  } catch (err) {
    throw new CertificateError('CA key: not an ECDSA P-256 PKCS#8 key', { cause: err })
  }
}

/** 16 random bytes, positive (high bit clear), as hex: RFC 5280 §4.1.2.2 allows up to 20 octets. */
function serial (): string {
  const b = randomBytes(16)
  b[0] = b[0]! & 0x7f | 0x01
  return b.toString('hex')
}

/**
 * Cross-sign `root` with `signer` (Consul's root rotation): same subject,
 * public key and extensions as `root`, issued by `signer`. Peers that trust
 * only the signer's root accept chains that carry this certificate.
 */
export async function crossSign (signer: IssuedCert, rootPem: string): Promise<string> {
  const x509 = await lib()
  const signerCert = new x509.X509Certificate(signer.certPem)
  const root = new x509.X509Certificate(rootPem)
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: root.subject,
    issuer: signerCert.subject,
    notBefore: root.notBefore,
    notAfter: new Date(Math.min(root.notAfter.getTime(), signerCert.notAfter.getTime())),
    publicKey: root.publicKey,
    signingKey: await importKey(signer.keyPem),
    signingAlgorithm: SIGN_ALG,
    extensions: [
      ...root.extensions.filter(e => e.type !== x509.AuthorityKeyIdentifierExtension.NAME && e.type !== '2.5.29.35'),
      await x509.AuthorityKeyIdentifierExtension.create(signerCert.publicKey)
    ]
  })
  return cert.toString('pem') + '\n'
}

/** Options of {@link signCsr}. */
export interface SignCsrOptions {
  ca: IssuedCert
  csrPem: string
  /** The only URI SAN the leaf may carry; the CSR's must equal it when present. */
  spiffeId: string
  commonName: string
  notAfter: Date
}

/**
 * Sign a PKCS#10 request: the workload keeps its private key. The CSR's
 * signature must verify; the leaf gets our SVID shape whatever the CSR asks for.
 */
export async function signCsr (opts: SignCsrOptions): Promise<string> {
  const x509 = await lib()
  let csr: X509.Pkcs10CertificateRequest
  try {
    csr = new x509.Pkcs10CertificateRequest(opts.csrPem)
  } catch (err) {
    throw new CertificateError('CSR: not a PEM "CERTIFICATE REQUEST" (PKCS#10)', { cause: err })
  }
  if (!await csr.verify()) throw new CertificateError('CSR: its signature does not verify (corrupted, or not signed by its own key)')
  const san = csr.getExtension('2.5.29.17') as X509.SubjectAlternativeNameExtension | null
  const uris = san === null ? [] : san.names.items.filter((n: X509.GeneralName) => n.type === 'url').map((n: X509.GeneralName) => n.value)
  if (uris.length > 0 && (uris.length !== 1 || uris[0] !== opts.spiffeId)) throw new CertificateError(`CSR asks for URI SAN ${uris.join(', ')}, but this CA issues ${opts.spiffeId} for it`)
  const caCert = new x509.X509Certificate(opts.ca.certPem)
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${opts.commonName}`,
    issuer: caCert.subject,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: opts.notAfter,
    publicKey: csr.publicKey,
    signingKey: await importKey(opts.ca.keyPem),
    signingAlgorithm: SIGN_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment | x509.KeyUsageFlags.keyAgreement, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: opts.spiffeId }]),
      await x509.SubjectKeyIdentifierExtension.create(csr.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey)
    ]
  })
  return cert.toString('pem') + '\n'
}

/** Make a CSR for a fresh P-256 key (tests, and workloads that use our CLI to request). */
export async function createCsr (spiffeId: string, commonName: string): Promise<{ csrPem: string, keyPem: string }> {
  const x509 = await lib()
  const keys = await webcrypto.subtle.generateKey(KEY_ALG, true, ['sign', 'verify']) as webcrypto.CryptoKeyPair
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${commonName}`,
    keys,
    signingAlgorithm: SIGN_ALG,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }])]
  })
  return { csrPem: csr.toString('pem') + '\n', keyPem: await exportKey(keys.privateKey) }
}
