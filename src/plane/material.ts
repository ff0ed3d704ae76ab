/**
 * Loading our TLS material at the edge: plain PEM files (--cert --key --ca),
 * or the mesh dir (certs/<svc>.pem|.key and bundle.pem; a leaf is issued on
 * first start when the mesh dir holds the CA key). Every error names the file.
 */
import { readFile } from 'node:fs/promises'
import { fileExists } from '../fsutil/atomic.js'
import { CertificateError, errorCode, toError } from '../core/errors.js'
import { bundleFromPem, type TrustBundle } from '../core/identity/bundle.js'
import { parseSpiffeBundle, toTrustBundle } from '../core/identity/spiffe-bundle.js'
import { parseOwnSvid, type OwnSvid } from '../core/identity/svid.js'
import { toConsulService } from '../core/identity/spiffe-id.js'
import { issueLeaf, DEFAULT_LEAF_TTL_MS } from '../meshdir/ca-store.js'
import type { MeshLayout, MeshSettings } from '../meshdir/layout.js'

/** Our SVID and the bundle we verify peers with. */
export interface Material {
  readonly svid: OwnSvid
  readonly bundle: TrustBundle
}

async function readText (path: string, flag: string): Promise<string> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    const code = errorCode(err)
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : toError(err).message
    throw new CertificateError(`${flag} ${path}: cannot read (${why})`)
  }
}

/** Load from plain files; the SVID must be a Consul service identity for `service`. */
export async function loadFromFiles (files: { cert: string, key: string, ca: string }, service: string): Promise<Material> {
  const [certPem, keyPem, caPem] = await Promise.all([readText(files.cert, '--cert'), readText(files.key, '--key'), readText(files.ca, '--ca')])
  const svid = parseOwnSvid(certPem, keyPem, { cert: `--cert ${files.cert}`, key: `--key ${files.key}` })
  checkServiceMatches(svid, service, `--cert ${files.cert}`)
  // --ca may be PEM roots or a SPIFFE bundle document (JWKS, as SPIRE and spiffe-helper write it).
  const bundle = caPem.trimStart().startsWith('{')
    ? toTrustBundle(parseSpiffeBundle(svid.id.trustDomain, caPem))
    : bundleFromPem(caPem, svid.id.trustDomain, `--ca ${files.ca}`)
  checkBundleCovers(bundle, svid, `--ca ${files.ca}`)
  return { svid, bundle }
}

/** Load from the mesh dir, issuing a leaf for `service` if the dir holds a CA and there is none yet. */
export async function loadFromMeshDir (layout: MeshLayout, settings: MeshSettings, service: string, leafTtlMs = DEFAULT_LEAF_TTL_MS): Promise<Material> {
  const certPath = layout.certFor(service)
  const keyPath = layout.keyFor(service)
  if (!await fileExists(certPath) && await fileExists(layout.caKey)) await issueLeaf(layout, settings, service, leafTtlMs)
  if (!await fileExists(certPath)) throw new CertificateError(`mesh dir ${layout.root} has no certificate for ${service} (${certPath}) and no CA to issue one; run "mesh-proxy cert issue ${service} --mesh-dir ${layout.root}"`)
  const [certPem, keyPem, bundlePem] = await Promise.all([readText(certPath, 'mesh dir certificate'), readText(keyPath, 'mesh dir key'), readText(layout.bundle, 'mesh dir bundle')])
  const svid = parseOwnSvid(certPem, keyPem, { cert: certPath, key: keyPath })
  checkServiceMatches(svid, service, certPath)
  const bundle = bundleFromPem(bundlePem, settings.trustDomain, layout.bundle)
  checkBundleCovers(bundle, svid, layout.bundle)
  return { svid, bundle }
}

function checkServiceMatches (svid: OwnSvid, service: string, what: string): void {
  const consul = toConsulService(svid.id)
  if (consul === null) throw new CertificateError(`${what}: ${svid.id.uri} is not a Consul service identity (spiffe://<td>/ns/<ns>/dc/<dc>/svc/<name>)`)
  if (consul.service !== service) throw new CertificateError(`${what}: certificate is for service "${consul.service}" (${svid.id.uri}) but --service is "${service}"; use the certificate issued for ${service}`)
}

function checkBundleCovers (bundle: TrustBundle, svid: OwnSvid, what: string): void {
  if (!bundle.trustDomains.includes(svid.id.trustDomain)) {
    throw new CertificateError(`${what}: has no root for our trust domain ${svid.id.trustDomain} (it has: ${bundle.trustDomains.join(', ') || 'none'}); peers could not be verified`)
  }
}

