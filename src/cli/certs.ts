/**
 * Minimal CA commands on the mesh dir (the full lifecycle, rotation and CSR
 * signing belong to the certificates issue): `ca init`, `cert issue`, and
 * `dev gen-certs` which regenerates certs-dev/.
 */
import { readFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { createRootCa, issueCert } from '../ca/issue.js'
import { consulServiceId, parseTrustDomain, parseSpiffeId, toConsulService } from '../core/identity/spiffe-id.js'
import { certsFromPem } from '../core/identity/x509.js'
import { inspectChain, type InspectOptions } from './inspect.js'
import { bundleFromPem } from '../core/identity/bundle.js'
import { formatSpiffeBundle } from '../core/identity/spiffe-bundle.js'
import { rotateRoot, retireOldRoots, signServiceCsr, issueLeaf } from '../meshdir/ca-store.js'
import { meshLayout, readMeshSettings, writeMeshSettings } from '../meshdir/layout.js'
import { PRIVATE_DIR, writeFileAtomic, fileExists, existingOf } from '../fsutil/atomic.js'
import { DEV_SERVICES } from '../meshdir/seed.js'
import { DEV_TRUST_DOMAIN, DEFAULT_DATACENTER } from '../core/config/defaults.js'
import { CertificateError, ConfigError, errorCode, toError } from '../core/errors.js'
import { parseDuration } from '../core/config/resolve.js'
import type * as X509 from '@peculiar/x509'
import { updateIntentions } from '../meshdir/intentions-store.js'

const YEAR_MS = 365 * 24 * 3_600_000

/** `ca init`: a new root CA in the mesh dir. Refuses to overwrite one unless --force. */
export async function caInit (o: { meshDir: string, trustDomain?: string, datacenter?: string, force?: boolean }, say: (l: string) => void): Promise<number> {
  const layout = meshLayout(o.meshDir)
  const there = o.force === true ? [] : await existingOf([layout.caCert, layout.caKey])
  if (there.length > 0) throw new ConfigError('--mesh-dir', `${there.join(' and ')} already exist${there.length === 1 ? 's' : ''}; this mesh dir has a CA. Nothing was written. Give --force to replace it (every leaf it signed stops being trusted), or choose another --mesh-dir`)
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
export async function certIssue (service: string, o: { meshDir: string, ttl?: string, force?: boolean }, say: (l: string) => void): Promise<number> {
  const layout = meshLayout(o.meshDir)
  const settings = await readMeshSettings(layout)
  const ttlMs = parseDuration(o.ttl ?? '72h', '--ttl')
  if (o.force !== true && await fileExists(layout.keyFor(service))) throw new ConfigError('--mesh-dir', `${layout.keyFor(service)} already exists; ${service} has a key. Nothing was written. Give --force to replace its key and certificate (a sidecar with the CA renews its own leaf), or choose another --mesh-dir`)
  await issueLeaf(layout, settings, service, ttlMs)
  const id = consulServiceId({ trustDomain: settings.trustDomain, datacenter: settings.datacenter, service })
  say(`issued ${id.uri} -> ${layout.certFor(service)} (key ${layout.keyFor(service)}, mode 0600)`)
  return 0
}

/** `dev gen-certs [dir]`: regenerate the committed development CA and leaves; replacing existing ones needs --force. */
export async function genDevCerts (dir: string, say: (l: string) => void, o: { force?: boolean } = {}): Promise<number> {
  const there = o.force === true ? [] : await existingOf(['ca.pem', 'ca.key', ...DEV_SERVICES.map(s => `${s}.key`)].map(f => join(dir, f)))
  if (there.length > 0) throw new ConfigError('dev gen-certs', `${dir} already holds a CA or keys (${there.map(p => p.slice(dir.length).replace(/^\//, '')).join(', ')}). Nothing was written. Give --force to replace them, or another dir`)
  await mkdir(dir, { recursive: true, mode: PRIVATE_DIR })
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

/** `cert sign --csr file --service name`: sign a CSR; the workload's key never leaves it. */
export async function certSign (o: { meshDir: string, csr: string, service?: string, ttl?: string, out?: string }, say: (l: string) => void): Promise<number> {
  const layout = meshLayout(o.meshDir)
  const settings = await readMeshSettings(layout)
  let csrPem: string
  try { csrPem = await readFile(o.csr, 'utf8') } catch (err) { throw new ConfigError('--csr', `cannot read ${o.csr}: ${(err as Error).message}`) }
  const service = o.service ?? await csrService(csrPem)
  if (service === undefined) throw new ConfigError('--service', `${o.csr} names no service (no Consul SPIFFE ID, no CN); give --service`)
  const pem = await signServiceCsr(layout, settings, service, csrPem, parseDuration(o.ttl ?? '72h', '--ttl'))
  if (o.out === undefined) say(pem.trimEnd())
  else { await writeFileAtomic(o.out, pem); say(`signed ${o.csr} for ${service} -> ${o.out}`) }
  return 0
}

/** `cert inspect file.pem [--ca bundle | --mesh-dir dir]`: identity, validity, the SVID or signing rules, the chain verdict (inspect.ts); exit 1 if any fails. */
export async function certInspect (file: string, say: (l: string) => void, o: InspectOptions = {}): Promise<number> {
  const pem = await readFile(file, 'utf8').catch((err: unknown) => {
    throw new CertificateError(`${file}: cannot read (${errorCode(err) === 'ENOENT' ? 'no such file' : toError(err).message})`)
  })
  const chain = certsFromPem(pem, file)
  return await inspectChain(file, chain, o, say)
}

/** `ca rotate`: a new root, cross-signed by the old one; both trusted until `ca retire-old`. */
export async function caRotate (o: { meshDir: string }, say: (l: string) => void): Promise<number> {
  const layout = meshLayout(o.meshDir)
  const r = await rotateRoot(layout, await readMeshSettings(layout))
  say(`rotated root ${r.oldSerial} -> ${r.newSerial}; the bundle trusts both, new leaves carry the cross-signed root; sidecars with the signer re-issue their leaves within 30 s. Run "mesh-proxy ca retire-old" once every leaf has rotated (after more than twice the leaf TTL).`)
  return 0
}

/** `ca retire-old`: drop replaced roots from the bundle. */
export async function caRetireOld (o: { meshDir: string }, say: (l: string) => void): Promise<number> {
  const n = await retireOldRoots(meshLayout(o.meshDir))
  say(`removed ${n} old root${n === 1 ? '' : 's'} from the bundle`)
  return 0
}

/** `ca bundle --format spiffe|pem`: print the trust bundle. */
export async function caBundle (o: { meshDir: string, format?: string }, say: (l: string) => void): Promise<number> {
  const layout = meshLayout(o.meshDir)
  const settings = await readMeshSettings(layout)
  const pem = await readFile(layout.bundle, 'utf8')
  const format = o.format ?? 'pem'
  if (format === 'pem') { say(bundleFromPem(pem, settings.trustDomain, layout.bundle).pem.trimEnd()); return 0 }
  if (format !== 'spiffe') throw new ConfigError('--format', `must be "spiffe" or "pem", got ${JSON.stringify(format)}`)
  say(formatSpiffeBundle(bundleFromPem(pem, settings.trustDomain, layout.bundle), settings.trustDomain).trimEnd())
  return 0
}

/** The service a CSR asks for: its Consul SPIFFE ID's name, else its CN. */
async function csrService (csrPem: string): Promise<string | undefined> {
  const x509 = await import('@peculiar/x509') // only this command reads a CSR: not loaded by `run`
  try {
    const csr = new x509.Pkcs10CertificateRequest(csrPem)
    const san = csr.getExtension('2.5.29.17') as X509.SubjectAlternativeNameExtension | null
    const uri = san?.names.items.find((n: X509.GeneralName) => n.type === 'url')?.value
    if (uri !== undefined) {
      const c = toConsulService(parseSpiffeId(uri))
      if (c !== null) return c.service
    }
    return /CN=([A-Za-z0-9_-]+)/.exec(csr.subject)?.[1]
  } catch {
    return undefined // signServiceCsr reports the malformed CSR
  }
}
