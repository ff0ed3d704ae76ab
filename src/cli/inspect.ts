/**
 * `cert inspect`: what a certificate is and whether it passes. A leaf is
 * judged by the SVID leaf rules, a CA certificate (basicConstraints CA:TRUE)
 * by the signing-certificate rules; with `--ca <bundle>` (PEM roots or a SPIFFE
 * bundle) or `--mesh-dir` the chain verdict says which root it verified
 * against, or why not. Exit 1 if any check fails.
 */
import { readFile } from 'node:fs/promises'
import { ConfigError, errorCode } from '../core/errors.js'
import { parseSpiffeId, toConsulService } from '../core/identity/spiffe-id.js'
import { LEAF_RULES, SIGNING_RULES, type LeafRule } from '../core/identity/svid.js'
import { rootsFromPem } from '../core/identity/bundle.js'
import { parseSpiffeBundle } from '../core/identity/spiffe-bundle.js'
import { verifyChain, type ChainFailure } from '../core/identity/chain.js'
import type { CertFacts } from '../core/identity/x509.js'
import { meshLayout } from '../meshdir/layout.js'

/** Where `cert inspect` takes its trusted roots from. */
export interface InspectOptions {
  /** PEM roots, or a SPIFFE bundle (JSON). */
  readonly ca?: string
  /** A mesh dir: its bundle.pem. */
  readonly meshDir?: string
}

type Say = (l: string) => void

const FAILURE_WORDS: Record<ChainFailure, string> = {
  unknown_issuer: 'unknown issuer',
  bad_signature: 'bad signature',
  expired: 'expired',
  not_yet_valid: 'not yet valid',
  issuer_not_ca: 'issuer not a CA',
  foreign_trust_domain: 'foreign trust domain',
  too_long: 'chain too long'
}

/** Print the facts and every check of `chain` (read from `file`); resolves with the exit code. */
export async function inspectChain (file: string, chain: readonly CertFacts[], o: InspectOptions, say: Say): Promise<number> {
  const trust = await loadRoots(o)
  const cert = chain[0]!
  const now = Date.now()
  printFacts(file, chain, now, say)
  say('checks:')
  let failed = 0
  const line = (f: string | null, what: string): void => {
    if (f !== null) failed++
    say(`  ${f === null ? 'ok  ' : 'FAIL'} ${what}${f === null ? '' : ': ' + f}`)
  }
  const rules: readonly LeafRule[] = cert.isCA ? SIGNING_RULES : LEAF_RULES
  for (const rule of rules) line(rule.check(cert), rule.describe)
  for (const [i, c] of chain.slice(1).entries()) {
    const f = SIGNING_RULES.map(r => r.check(c)).find(x => x !== null) ?? null
    line(f, `chain[${i + 1}] ${c.subject} is a signing certificate (CA, keyCertSign)`)
  }
  const validity = now < cert.notBefore.getTime() ? 'not yet valid' : now > cert.notAfter.getTime() ? 'expired' : null
  line(validity, 'within its validity period')
  if (trust === undefined) {
    say('  --   chain not checked: no trust bundle given (--ca <bundle> or --mesh-dir <dir>)')
  } else {
    const v = verifyChain(chain, trust.roots, now)
    if (v.ok) {
      const via = v.path.slice(1, -1).map(c => c.subject)
      const itself = v.path.length === 1 ? ' (it is that root)' : ''
      line(null, `chain verified against ${v.root.subject} (sha256 ${v.root.fingerprint256.slice(0, 23)}…) from ${trust.source}${itself}${via.length > 0 ? ' via ' + via.join(', ') : ''}`)
    } else {
      say(`  FAIL chain not verified against ${trust.source}: ${FAILURE_WORDS[v.failure]}: ${v.why}`)
      failed++
    }
  }
  return failed === 0 ? 0 : 1
}

function printFacts (file: string, chain: readonly CertFacts[], now: number, say: Say): void {
  const cert = chain[0]!
  const validity = now < cert.notBefore.getTime() ? 'NOT YET VALID' : now > cert.notAfter.getTime() ? 'EXPIRED' : 'valid now'
  let consul = ''
  try {
    const c = toConsulService(parseSpiffeId(cert.uris[0] ?? ''))
    if (c !== null) consul = `service ${c.service} (namespace ${c.namespace}, datacenter ${c.datacenter}, trust domain ${c.trustDomain})`
  } catch { /* reported by the checks */ }
  say(`file:        ${file} (${chain.length} certificate${chain.length === 1 ? '' : 's'})`)
  say(`kind:        ${cert.isCA ? 'CA certificate (basicConstraints CA:TRUE): judged by the signing-certificate rules' : 'leaf: judged by the X.509-SVID leaf rules'}`)
  say(`spiffe id:   ${cert.uris.join(', ') || '(none)'}`)
  if (consul !== '') say(`identity:    ${consul}`)
  say(`serial:      ${cert.serial}`)
  say(`subject:     ${cert.subject}`)
  say(`issuer:      ${cert.issuer}`)
  say(`not before:  ${cert.notBefore.toISOString()}`)
  say(`not after:   ${cert.notAfter.toISOString()} (${validity})`)
}

/** The roots of --ca or of --mesh-dir's bundle.pem; undefined when neither is given. */
async function loadRoots (o: InspectOptions): Promise<{ roots: CertFacts[], source: string } | undefined> {
  if (o.ca !== undefined && o.meshDir !== undefined) throw new ConfigError('--ca', 'give --ca or --mesh-dir, not both')
  const flag = o.ca !== undefined ? '--ca' : '--mesh-dir'
  const path = o.ca ?? (o.meshDir === undefined ? undefined : meshLayout(o.meshDir).bundle)
  if (path === undefined) return undefined
  let text: string
  try { text = await readFile(path, 'utf8') } catch (err) {
    const why = errorCode(err) === 'ENOENT' ? (flag === '--ca' ? `${path} does not exist` : `${o.meshDir!} has no bundle.pem; is it a mesh dir?`) : `cannot read ${path}: ${(err as Error).message}`
    throw new ConfigError(flag, why)
  }
  if (text.trimStart().startsWith('{')) return { roots: [...parseSpiffeBundle('(bundle)', text).x509Authorities], source: `${path} (SPIFFE bundle)` }
  return { roots: rootsFromPem(text, path), source: path }
}
