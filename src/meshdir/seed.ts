/**
 * Seed a mesh dir from certs-dev/ (the committed development CA, leaves and
 * intentions). Leaves that have expired are not copied: the sidecar issues a
 * fresh one from the dev CA at start. A dir that already holds a CA or a key
 * is refused unless `force`: the dev CA's private key is public.
 */
import { readFile, mkdir } from 'node:fs/promises'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { X509Certificate } from 'node:crypto'
import { meshLayout, writeMeshSettings, type MeshLayout } from './layout.js'
import { DEV_TRUST_DOMAIN, DEFAULT_DATACENTER } from '../core/config/defaults.js'
import { ConfigError } from '../core/errors.js'
import { PRIVATE_DIR, existingOf, writeFileAtomic } from '../fsutil/atomic.js'

/** certs-dev/ in the installed package. */
export const CERTS_DEV_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'certs-dev')
/** The services certs-dev/ holds leaves for. */
export const DEV_SERVICES = ['web', 'db', 'billing'] as const

/** Options of {@link seedMeshDir}. */
export interface SeedOptions {
  /** Replace a CA and keys already in the dir (default: refuse, writing nothing). */
  readonly force?: boolean
  /** Where the dev material comes from (default certs-dev/). */
  readonly from?: string
}

/**
 * Copy certs-dev/ into `dir` as a mesh dir. Refuses (ConfigError on
 * --mesh-dir, nothing written) when the dir holds a CA or a key, unless `force`.
 */
export async function seedMeshDir (dir: string, opts: SeedOptions = {}): Promise<MeshLayout> {
  const layout = meshLayout(dir)
  const from = opts.from ?? CERTS_DEV_DIR
  if (opts.force !== true) await refuseToReplace(layout)
  await mkdir(join(dir, 'ca'), { recursive: true, mode: PRIVATE_DIR })
  await mkdir(join(dir, 'certs'), { recursive: true, mode: PRIVATE_DIR })
  const caPem = await readFile(join(from, 'ca.pem'))
  await writeMeshSettings(layout, { trustDomain: DEV_TRUST_DOMAIN, datacenter: DEFAULT_DATACENTER })
  await writeFileAtomic(layout.caKey, await readFile(join(from, 'ca.key')), 0o600)
  await writeFileAtomic(layout.caCert, caPem)
  await writeFileAtomic(layout.bundle, caPem)
  await writeFileAtomic(layout.intentions, await readFile(join(from, 'intentions.json')))
  for (const s of DEV_SERVICES) {
    const pem = await readFile(join(from, `${s}.pem`), 'utf8')
    if (Date.parse(new X509Certificate(pem).validTo) < Date.now() + 60_000) continue
    await writeFileAtomic(layout.keyFor(s), await readFile(join(from, `${s}.key`)), 0o600)
    await writeFileAtomic(layout.certFor(s), pem)
  }
  return layout
}

async function refuseToReplace (layout: MeshLayout): Promise<void> {
  const there = await existingOf([layout.caCert, layout.caKey, ...DEV_SERVICES.map(s => layout.keyFor(s))])
  if (there.length === 0) return
  const what = there.some(p => p === layout.caCert || p === layout.caKey) ? 'a CA' : 'keys'
  throw new ConfigError('--mesh-dir', `${layout.root} already holds ${what} (${there.map(p => p.slice(layout.root.length + 1)).join(', ')}); seeding it from certs-dev/ would replace ${what === 'a CA' ? 'it' : 'them'} with the dev CA, whose private key is public. Nothing was written. Give --force to replace ${what === 'a CA' ? 'it' : 'them'}, or choose another --mesh-dir`)
}
