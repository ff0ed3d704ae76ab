/**
 * The CA in a mesh dir: issuing leaves, signing CSRs, rotating and retiring
 * roots. Every file is written atomically; private keys with mode 0600 and
 * never echoed anywhere.
 */
import { readFile, readdir, mkdir, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { CertificateError, errorCode, toError } from '../core/errors.js'
import { createRootCa, crossSign, issueCert, signCsr, type IssuedCert } from '../ca/issue.js'
import { MIN_LEAF_TTL_MS } from '../core/config/fields.js'
import { consulServiceId } from '../core/identity/spiffe-id.js'
import { certsFromPem, toPem } from '../core/identity/x509.js'
import { PRIVATE_DIR, writeFileAtomic, fileExists } from '../fsutil/atomic.js'
import type { MeshLayout, MeshSettings } from './layout.js'

/** Default leaf lifetime, as Consul's. */
export const DEFAULT_LEAF_TTL_MS = 72 * 3_600_000
/** Shortest leaf lifetime we issue. */
export { MIN_LEAF_TTL_MS }


/** Read the mesh dir's signer; a clear error when this dir has none. */
export async function readCa (layout: MeshLayout): Promise<IssuedCert> {
  try {
    return { certPem: await readFile(layout.caCert, 'utf8'), keyPem: await readFile(layout.caKey, 'utf8') }
  } catch (err) {
    if (errorCode(err) === 'ENOENT') throw new CertificateError(`${layout.root} has no CA signer (ca/root.pem and ca/root.key); create one with "mesh-proxy ca init --mesh-dir ${layout.root}"`)
    throw new CertificateError(`cannot read the CA in ${layout.root}: ${toError(err).message}`)
  }
}

/** True if the mesh dir holds a CA private key (so sidecars can renew their own leaves). */
export function hasSigner (layout: MeshLayout): Promise<boolean> {
  return fileExists(layout.caKey)
}

/** The chain a new leaf carries after itself: the cross-signed root during a rotation. */
async function chainSuffix (layout: MeshLayout): Promise<string> {
  try { return await readFile(layout.crossSigned, 'utf8') } catch { return '' }
}

/**
 * Issue a leaf for `service` and write certs/<svc>.key then certs/<svc>.pem
 * (readers validate the pair, so the short window between the two writes is
 * seen as a mismatch and skipped, never served).
 */
export async function issueLeaf (layout: MeshLayout, settings: MeshSettings, service: string, ttlMs: number = DEFAULT_LEAF_TTL_MS, spiffeId?: string): Promise<IssuedCert> {
  if (ttlMs < MIN_LEAF_TTL_MS) throw new CertificateError(`leaf TTL ${ttlMs} ms is below the minimum of ${MIN_LEAF_TTL_MS} ms`)
  const ca = await readCa(layout)
  // (The sidecar passes the ID of its --identity-form; the CLI issues Consul's form.)
  const uri = spiffeId ?? consulServiceId({ trustDomain: settings.trustDomain, datacenter: settings.datacenter, service }).uri
  const now = Date.now()
  // Backdate a little for clock skew, but never by more than a tenth of the lifetime.
  const leaf = await issueCert({ ca, uris: [uri], commonName: service, dnsNames: [service], notBefore: new Date(now - Math.min(60_000, ttlMs / 10)), notAfter: new Date(now + ttlMs) })
  const certPem = leaf.certPem + await chainSuffix(layout)
  await writeFileAtomic(layout.keyFor(service), leaf.keyPem, 0o600)
  await writeFileAtomic(layout.certFor(service), certPem)
  return { certPem, keyPem: leaf.keyPem }
}

/** Sign a CSR for `service`; returns the leaf PEM (plus the cross-signed root during a rotation). */
export async function signServiceCsr (layout: MeshLayout, settings: MeshSettings, service: string, csrPem: string, ttlMs: number = DEFAULT_LEAF_TTL_MS): Promise<string> {
  const ca = await readCa(layout)
  const id = consulServiceId({ trustDomain: settings.trustDomain, datacenter: settings.datacenter, service })
  return await signCsr({ ca, csrPem, spiffeId: id.uri, commonName: service, notAfter: new Date(Date.now() + ttlMs) }) + await chainSuffix(layout)
}

/**
 * Rotate the root, as Consul does: a new root, cross-signed by the old one;
 * the bundle trusts both; new leaves carry the cross-signed certificate so
 * that peers still on the old bundle accept them.
 */
export async function rotateRoot (layout: MeshLayout, settings: MeshSettings): Promise<{ oldSerial: string, newSerial: string }> {
  const old = await readCa(layout)
  const oldFacts = certsFromPem(old.certPem, layout.caCert)[0]!
  const next = await createRootCa({ trustDomain: settings.trustDomain })
  const xc = await crossSign(old, next.certPem)
  await mkdir(layout.previous, { recursive: true, mode: PRIVATE_DIR })
  await writeFileAtomic(join(layout.previous, `${oldFacts.serial}.pem`), old.certPem)
  // The new root is freshly generated, so it cannot already be in the bundle.
  await writeFileAtomic(layout.bundle, [next.certPem, ...await readBundleRoots(layout)].join(''))
  await writeFileAtomic(layout.crossSigned, xc)
  await writeFileAtomic(layout.caKey, next.keyPem, 0o600)
  await writeFileAtomic(layout.caCert, next.certPem)
  return { oldSerial: oldFacts.serial, newSerial: certsFromPem(next.certPem, 'new root')[0]!.serial }
}

/** End a rotation: only the current root stays in the bundle, leaves stop carrying the cross-signed root. */
export async function retireOldRoots (layout: MeshLayout): Promise<number> {
  const current = toPem('CERTIFICATE', certsFromPem(await readFile(layout.caCert, 'utf8'), layout.caCert)[0]!.der)
  const previous = new Set<string>()
  try {
    for (const f of await readdir(layout.previous)) {
      for (const c of certsFromPem(await readFile(join(layout.previous, f), 'utf8'), f)) previous.add(toPem('CERTIFICATE', c.der))
    }
  } catch { /* no rotation happened */ }
  const roots = await readBundleRoots(layout)
  const kept = roots.filter(r => !previous.has(r) || r === current)
  await writeFileAtomic(layout.bundle, kept.join(''))
  await unlink(layout.crossSigned).catch(() => {})
  return roots.length - kept.length
}

async function readBundleRoots (layout: MeshLayout): Promise<string[]> {
  try {
    return certsFromPem(await readFile(layout.bundle, 'utf8'), layout.bundle).map(c => toPem('CERTIFICATE', c.der))
  } catch {
    return []
  }
}
