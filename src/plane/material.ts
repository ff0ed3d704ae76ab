/**
 * Loading our TLS material at the edge: plain PEM files (--cert --key --ca),
 * or the mesh dir (certs/<svc>.pem|.key and bundle.pem; a leaf is issued on
 * first start when the mesh dir holds the CA key). Every error names the file.
 */
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { fileExists } from '../fsutil/atomic.js'
import { CertificateError, WorkloadApiError, errorCode, toError } from '../core/errors.js'
import { bundleFromPem, type RootCert, type TrustBundle } from '../core/identity/bundle.js'
import { federate, federatedRoots } from '../core/identity/federation.js'
import { parseSpiffeId } from '../core/identity/spiffe-id.js'
import type { WorkloadSvid, X509SvidResponse } from '../core/identity/workload-api.js'
import { toPem } from '../core/identity/x509.js'
import { bundleFromText } from '../core/identity/spiffe-bundle.js'
import { parseOwnSvid, type OwnSvid } from '../core/identity/svid.js'
import { describeForm, notOfForm, spiffeIdOf, workloadOf, type IdentityForm } from '../core/identity/forms.js'
import { issueLeaf, DEFAULT_LEAF_TTL_MS } from '../meshdir/ca-store.js'
import type { MeshLayout, MeshSettings } from '../meshdir/layout.js'

/** Our SVID and the bundle we verify peers with. */
export interface Material {
  readonly svid: OwnSvid
  readonly bundle: TrustBundle
}

/** Read a certificate, key or bundle file; the error starts with `what` (the flag and the path) and says why in plain words. */
export async function readMaterialFile (path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    const code = errorCode(err)
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : toError(err).message
    throw new CertificateError(`${what}: cannot read (${why})`)
  }
}

/** Load from plain files; the SVID must be a Consul service identity for `service`. */
export async function loadFromFiles (files: { cert: string, key: string, ca: string }, service: string, form: IdentityForm): Promise<Material> {
  const [certPem, keyPem, caPem] = await Promise.all([readMaterialFile(files.cert, `--cert ${files.cert}`), readMaterialFile(files.key, `--key ${files.key}`), readMaterialFile(files.ca, `--ca ${files.ca}`)])
  const svid = parseOwnSvid(certPem, keyPem, { cert: `--cert ${files.cert}`, key: `--key ${files.key}` })
  checkServiceMatches(svid, service, form, `--cert ${files.cert}`)
  // --ca may be PEM roots or a SPIFFE bundle document (JWKS, as SPIRE and spiffe-helper write it).
  const bundle = bundleFromText(caPem, svid.id.trustDomain, `--ca ${files.ca}`)
  checkBundleCovers(bundle, svid, `--ca ${files.ca}`)
  return { svid, bundle }
}

/** Load from the mesh dir, issuing a leaf for `service` if the dir holds a CA and there is none yet. */
export async function loadFromMeshDir (layout: MeshLayout, settings: MeshSettings, service: string, form: IdentityForm, leafTtlMs = DEFAULT_LEAF_TTL_MS): Promise<Material> {
  const certPath = layout.certFor(service)
  const keyPath = layout.keyFor(service)
  if (!await fileExists(certPath) && await fileExists(layout.caKey)) await issueLeaf(layout, settings, service, leafTtlMs, meshDirId(settings, service, form))
  if (!await fileExists(certPath)) throw new CertificateError(`mesh dir ${layout.root} has no certificate for ${service} (${certPath}) and no CA to issue one; run "mesh-proxy cert issue ${service} --mesh-dir ${layout.root}"`)
  const [certPem, keyPem, bundlePem] = await Promise.all([readMaterialFile(certPath, `mesh dir certificate ${certPath}`), readMaterialFile(keyPath, `mesh dir key ${keyPath}`), readMaterialFile(layout.bundle, `mesh dir bundle ${layout.bundle}`)])
  const svid = parseOwnSvid(certPem, keyPem, { cert: certPath, key: keyPath })
  checkServiceMatches(svid, service, form, certPath)
  const bundle = bundleFromPem(bundlePem, settings.trustDomain, layout.bundle)
  checkBundleCovers(bundle, svid, layout.bundle)
  return { svid, bundle }
}

/** The ID the mesh dir's CA issues for `service` under `form` (namespace default, the mesh dir's datacenter). */
export function meshDirId (settings: MeshSettings, service: string, form: IdentityForm): string {
  return spiffeIdOf(form, { trustDomain: settings.trustDomain, namespace: 'default', datacenter: settings.datacenter, service }).uri
}

/** The Workload API's material for `service`: our SVID among those offered, our roots, and every federated trust domain's roots. */
export function materialFromWorkload (r: X509SvidResponse, ours: WorkloadSvid): Material & { federated: readonly string[] } {
  const what = { cert: `Workload API X509SVID ${ours.spiffeId}`, key: `Workload API X509SVID key of ${ours.spiffeId}` }
  const svid = parseOwnSvid(ours.chain.map(d => toPem('CERTIFICATE', d)).join(''), toPem('PRIVATE KEY', ours.keyDer), what)
  const own = bundleFromPem(ours.bundle.map(d => toPem('CERTIFICATE', d)).join(''), svid.id.trustDomain, `Workload API bundle of ${svid.id.trustDomain}`)
  checkBundleCovers(own, svid, `Workload API bundle of ${svid.id.trustDomain}`)
  const federated = new Map<string, RootCert[]>()
  for (const [td, certs] of r.federatedBundles) {
    if (td === svid.id.trustDomain) continue // our own roots come in the SVID's bundle
    federated.set(td, federatedRoots(td, certs.map(d => toPem('CERTIFICATE', d)).join(''), `Workload API federated bundle of ${td}`))
  }
  return { svid, bundle: federate(own, svid.id.trustDomain, federated), federated: [...federated.keys()] }
}

/**
 * Our entry among the SVIDs offered (SPIRE sends every SVID whose entry
 * matches the process: db's and web's when both run as one uid): the first
 * whose ID names `service` under `form`.
 */
export function ourSvid (r: X509SvidResponse, service: string, form: IdentityForm): WorkloadSvid {
  if (r.svids.length === 0) throw new WorkloadApiError('the Workload API sent no X509SVID for this workload')
  const ours = r.svids.find(s => serviceOf(s.spiffeId, form) === service)
  if (ours === undefined) {
    throw new WorkloadApiError(`the Workload API offers ${r.svids.map(s => s.spiffeId).join(', ')}; none is service "${service}" of the identity form ${describeForm(form)}: register an entry for ${service}, or set --identity-form`)
  }
  return ours
}

/** What a response holds for us, as one string: an unchanged one (another SVID of the process rotated) makes no new TLS generation. */
export function workloadFingerprint (r: X509SvidResponse, ours: WorkloadSvid): string {
  const h = createHash('sha256')
  for (const d of [...ours.chain, ours.keyDer, ...ours.bundle]) h.update(d)
  for (const td of [...r.federatedBundles.keys()].sort()) { h.update(td); for (const d of r.federatedBundles.get(td)!) h.update(d) }
  return h.digest('hex')
}

function serviceOf (uri: string, form: IdentityForm): string | undefined {
  try {
    return workloadOf(form, parseSpiffeId(uri))?.service
  } catch {
    return undefined
  }
}

function checkServiceMatches (svid: OwnSvid, service: string, form: IdentityForm, what: string): void {
  const w = workloadOf(form, svid.id)
  if (w === null) throw new CertificateError(`${what}: ${notOfForm(form, svid.id.uri)}`)
  if (w.service !== service) throw new CertificateError(`${what}: certificate is for service "${w.service}" (${svid.id.uri}) but --service is "${service}"; use the certificate issued for ${service}`)
}

function checkBundleCovers (bundle: TrustBundle, svid: OwnSvid, what: string): void {
  if (!bundle.trustDomains.includes(svid.id.trustDomain)) {
    throw new CertificateError(`${what}: has no root for our trust domain ${svid.id.trustDomain} (it has: ${bundle.trustDomains.join(', ') || 'none'}); peers could not be verified`)
  }
}

