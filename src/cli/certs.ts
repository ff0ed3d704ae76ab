/**
 * Minimal CA commands on the mesh dir (the full lifecycle, rotation and CSR
 * signing belong to the certificates issue): `ca init`, `cert issue`, and
 * `dev gen-certs` which regenerates certs-dev/.
 */
import { readFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { createRootCa, issueCert } from '../ca/issue.js'
import { consulServiceId, parseTrustDomain } from '../identity/spiffe-id.js'
import { meshLayout, readMeshSettings, writeMeshSettings } from '../meshdir/layout.js'
import { writeFileAtomic } from '../fsutil/atomic.js'
import { exists, DEV_SERVICES } from '../meshdir/seed.js'
import { DEV_TRUST_DOMAIN, DEFAULT_DATACENTER } from '../config/defaults.js'
import { ConfigError, CertificateError } from '../errors.js'
import { parseDuration } from '../config/resolve.js'
import { updateIntentions } from '../intentions/store.js'

const YEAR_MS = 365 * 24 * 3_600_000

/** `ca init`: a new root CA in the mesh dir. Refuses to overwrite one. */
export async function caInit (o: { meshDir: string, trustDomain?: string, datacenter?: string }, say: (l: string) => void): Promise<number> {
  const layout = meshLayout(o.meshDir)
  if (await exists(layout.caCert)) throw new ConfigError('--mesh-dir', `${layout.caCert} already exists; this mesh dir has a CA (remove the dir to start over)`)
  const trustDomain = parseTrustDomain(o.trustDomain ?? `${crypto.randomUUID()}.consul`)
  const ca = await createRootCa({ trustDomain })
  await writeMeshSettings(layout, { trustDomain, datacenter: o.datacenter ?? DEFAULT_DATACENTER })
  await writeFileAtomic(layout.caKey, ca.keyPem, 0o600)
  await writeFileAtomic(layout.caCert, ca.certPem)
  await writeFileAtomic(layout.bundle, ca.certPem)
  await updateIntentions(layout.intentions, doc => doc)
  say(`created CA for trust domain ${trustDomain} in ${o.meshDir}`)
  return 0
}

/** `cert issue <service>`: a leaf SVID signed by the mesh dir's CA. */
export async function certIssue (service: string, o: { meshDir: string, ttl?: string }, say: (l: string) => void): Promise<number> {
  const layout = meshLayout(o.meshDir)
  const settings = await readMeshSettings(layout)
  if (!await exists(layout.caKey)) throw new CertificateError(`${layout.caKey} is missing: this mesh dir has no CA signer (run "mesh-proxy ca init --mesh-dir ${o.meshDir}")`)
  const ttlMs = parseDuration(o.ttl ?? '72h', '--ttl')
  const ca = { certPem: await readFile(layout.caCert, 'utf8'), keyPem: await readFile(layout.caKey, 'utf8') }
  const id = consulServiceId({ trustDomain: settings.trustDomain, datacenter: settings.datacenter, service })
  const leaf = await issueCert({ ca, uris: [id.uri], commonName: service, dnsNames: [service], notAfter: new Date(Date.now() + ttlMs) })
  await writeFileAtomic(layout.keyFor(service), leaf.keyPem, 0o600)
  await writeFileAtomic(layout.certFor(service), leaf.certPem)
  say(`issued ${id.uri} -> ${layout.certFor(service)} (key ${layout.keyFor(service)}, mode 0600)`)
  return 0
}

/** `dev gen-certs [dir]`: regenerate the committed development CA and leaves. */
export async function genDevCerts (dir: string, say: (l: string) => void): Promise<number> {
  await mkdir(dir, { recursive: true })
  const ca = await createRootCa({ trustDomain: DEV_TRUST_DOMAIN, commonName: 'mesh-proxy DEV CA (not for production)', notAfter: new Date(Date.now() + 10 * YEAR_MS) })
  await writeFileAtomic(join(dir, 'ca.pem'), ca.certPem)
  await writeFileAtomic(join(dir, 'ca.key'), ca.keyPem, 0o600)
  for (const s of DEV_SERVICES) {
    const id = consulServiceId({ trustDomain: DEV_TRUST_DOMAIN, datacenter: DEFAULT_DATACENTER, service: s })
    const leaf = await issueCert({ ca, uris: [id.uri], commonName: s, dnsNames: [s], notAfter: new Date(Date.now() + 5 * YEAR_MS) })
    await writeFileAtomic(join(dir, `${s}.pem`), leaf.certPem)
    await writeFileAtomic(join(dir, `${s}.key`), leaf.keyPem, 0o600)
  }
  const intentions = {
    index: 1,
    defaultPolicy: 'deny',
    intentions: [
      { source: 'web', destination: 'db', action: 'allow', description: 'web reads and writes db' },
      { source: 'billing', destination: 'db', action: 'deny', description: 'billing must go through web' }
    ]
  }
  await writeFileAtomic(join(dir, 'intentions.json'), JSON.stringify(intentions, null, 2) + '\n')
  say(`wrote dev CA (${DEV_TRUST_DOMAIN}), leaves for ${DEV_SERVICES.join(', ')} and intentions to ${dir}`)
  return 0
}
