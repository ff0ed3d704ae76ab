/**
 * The mesh dir: the embedded default control plane on one machine.
 *
 *   mesh.json                 { trustDomain, datacenter }
 *   ca/root.pem, ca/root.key  the CA (key 0600); present only where certs are issued
 *   ca/cross-signed.pem       during a root rotation: the new root signed by the old one
 *   ca/previous/<serial>.pem  roots that were replaced (still in the bundle until retired)
 *   bundle.pem                trust bundle: every root sidecars must trust
 *   certs/<svc>.pem|.key      leaf SVID (+ chain) and key (0600) per service
 *   intentions.json           the intentions document (see intentions/store.ts)
 *   catalog/<svc>/<id>.json   one file per running sidecar instance (see catalog/mesh-catalog.ts)
 */
import { join } from 'node:path'
import { readFile } from 'node:fs/promises'
import { ConfigError, errorCode } from '../core/errors.js'
import { parseTrustDomain } from '../core/identity/spiffe-id.js'
import { writeFileAtomic } from '../fsutil/atomic.js'

/** Paths inside one mesh dir. */
export interface MeshLayout {
  readonly root: string
  readonly settings: string
  readonly caCert: string
  readonly caKey: string
  readonly crossSigned: string
  readonly previous: string
  readonly bundle: string
  readonly intentions: string
  readonly catalog: string
  certFor (service: string): string
  keyFor (service: string): string
}

/** The layout of the mesh dir at `root`. */
export function meshLayout (root: string): MeshLayout {
  return {
    root,
    settings: join(root, 'mesh.json'),
    caCert: join(root, 'ca', 'root.pem'),
    caKey: join(root, 'ca', 'root.key'),
    crossSigned: join(root, 'ca', 'cross-signed.pem'),
    previous: join(root, 'ca', 'previous'),
    bundle: join(root, 'bundle.pem'),
    intentions: join(root, 'intentions.json'),
    catalog: join(root, 'catalog'),
    certFor: (s: string) => join(root, 'certs', `${s}.pem`),
    keyFor: (s: string) => join(root, 'certs', `${s}.key`)
  }
}

/** Mesh-wide settings kept in mesh.json. */
export interface MeshSettings {
  readonly trustDomain: string
  readonly datacenter: string
}

/** Read mesh.json; a clear error if the mesh dir was never initialised. */
export async function readMeshSettings (layout: MeshLayout): Promise<MeshSettings> {
  let text: string
  try {
    text = await readFile(layout.settings, 'utf8')
  } catch (err) {
    if (errorCode(err) === 'ENOENT') throw new ConfigError('--mesh-dir', `${layout.root} is not a mesh dir (no mesh.json); create one with "mesh-proxy ca init --mesh-dir ${layout.root}" or seed it with "mesh-proxy demo --mesh-dir ${layout.root} --seed-only"`)
    throw new ConfigError('--mesh-dir', `cannot read ${layout.settings}: ${(err as Error).message}`)
  }
  let json: unknown
  try { json = JSON.parse(text) } catch (err) {
    throw new ConfigError('--mesh-dir', `${layout.settings} is not valid JSON: ${(err as Error).message}`)
  }
  const o = json as Record<string, unknown>
  if (typeof o?.trustDomain !== 'string') throw new ConfigError('--mesh-dir', `${layout.settings}: "trustDomain" must be a string`)
  try { parseTrustDomain(o.trustDomain) } catch (err) {
    throw new ConfigError('--mesh-dir', `${layout.settings}: trustDomain ${JSON.stringify(o.trustDomain)} is invalid: ${(err as Error).message}`)
  }
  const datacenter = o.datacenter ?? 'dc1'
  if (typeof datacenter !== 'string' || datacenter === '') throw new ConfigError('--mesh-dir', `${layout.settings}: "datacenter" must be a non-empty string`)
  return { trustDomain: o.trustDomain, datacenter }
}

/** Write mesh.json atomically. */
export async function writeMeshSettings (layout: MeshLayout, s: MeshSettings): Promise<void> {
  await writeFileAtomic(layout.settings, JSON.stringify(s, null, 2) + '\n')
}
