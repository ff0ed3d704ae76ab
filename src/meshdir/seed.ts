/**
 * Seed a mesh dir from certs-dev/ (the committed development CA, leaves and
 * intentions). Leaves that have expired are not copied: the sidecar issues a
 * fresh one from the dev CA at start.
 */
import { copyFile, readFile, mkdir } from 'node:fs/promises'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { X509Certificate } from 'node:crypto'
import { meshLayout, writeMeshSettings, type MeshLayout } from './layout.js'
import { DEV_TRUST_DOMAIN, DEFAULT_DATACENTER } from '../core/config/defaults.js'
import { PRIVATE_DIR, writeFileAtomic } from '../fsutil/atomic.js'

/** certs-dev/ in the installed package. */
export const CERTS_DEV_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'certs-dev')
/** The services certs-dev/ holds leaves for. */
export const DEV_SERVICES = ['web', 'db', 'billing'] as const

/** Copy certs-dev/ into `dir` as a mesh dir. Existing files are replaced. */
export async function seedMeshDir (dir: string, from = CERTS_DEV_DIR): Promise<MeshLayout> {
  const layout = meshLayout(dir)
  await mkdir(join(dir, 'ca'), { recursive: true, mode: PRIVATE_DIR })
  await mkdir(join(dir, 'certs'), { recursive: true, mode: PRIVATE_DIR })
  await writeMeshSettings(layout, { trustDomain: DEV_TRUST_DOMAIN, datacenter: DEFAULT_DATACENTER })
  await copyFile(join(from, 'ca.pem'), layout.caCert)
  await writeFileAtomic(layout.caKey, await readFile(join(from, 'ca.key')), 0o600)
  await copyFile(join(from, 'ca.pem'), layout.bundle)
  await copyFile(join(from, 'intentions.json'), layout.intentions)
  for (const s of DEV_SERVICES) {
    const pem = await readFile(join(from, `${s}.pem`), 'utf8')
    if (Date.parse(new X509Certificate(pem).validTo) < Date.now() + 60_000) continue
    await writeFileAtomic(layout.certFor(s), pem)
    await writeFileAtomic(layout.keyFor(s), await readFile(join(from, `${s}.key`)), 0o600)
  }
  return layout
}

