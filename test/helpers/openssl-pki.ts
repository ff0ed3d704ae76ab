// Certificates made by the openssl CLI, not by our CA code: roots, intermediates,
// cross-signed roots and Consul-form SVID leaves, as a CA that is not ours
// (Vault, SPIRE with an upstream authority, cert-manager) would issue them.
// Everything lands in a tap testdir; `opensslMissing()` says when to skip.
import type { Test } from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { consulServiceId } from '../../src/core/identity/spiffe-id.js'
import { TD } from './mesh.js'

/** A CA certificate made by openssl: its PEM file and key file. */
export interface OpensslCa { readonly name: string, readonly cert: string, readonly key: string }

/** A leaf's files as `--cert/--key/--ca` take them; `cert` holds the leaf and then `chain`. */
export interface OpensslLeaf { readonly cert: string, readonly key: string, readonly leafOnly: string }

/** The openssl CLI, run in one directory. */
export interface OpensslPki {
  readonly dir: string
  /** A self-signed root of `td` (Consul shape: CA:TRUE, keyCertSign|cRLSign, URI SAN spiffe://td). */
  root (name: string, td?: string): Promise<OpensslCa>
  /** A CA certificate for `subject`'s key and name issued by `issuer`: an intermediate, or a cross-signed root when `subject` is a root. */
  signCa (issuer: OpensslCa, subject: OpensslCa | string, td?: string): Promise<OpensslCa>
  /** An SVID for `service` issued by `issuer` (Consul's form unless `uri` is given); the cert file carries `chain` after the leaf. */
  leaf (issuer: OpensslCa, service: string, chain?: readonly OpensslCa[], td?: string, uri?: string): Promise<OpensslLeaf>
  /** A PEM file holding these CA certificates (a trust bundle). */
  bundle (name: string, cas: readonly OpensslCa[]): Promise<string>
  /** `openssl verify` of `leaf` against `roots` with `untrusted` intermediates: true when OK. */
  verify (leaf: OpensslLeaf, roots: string, untrusted?: readonly OpensslCa[]): boolean
}

/** Why openssl tests cannot run here, or undefined when they can. */
export function opensslMissing (): string | undefined {
  return spawnSync('openssl', ['version']).status === 0 ? undefined : 'openssl is not installed (Debian package "openssl")'
}

export function opensslPki (t: Test): OpensslPki {
  const dir = t.testdir({})
  const f = (name: string): string => join(dir, name)
  const ssl = (...args: string[]): void => { execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] }) }
  const serial = (): string => '0x1' + randomBytes(15).toString('hex')
  const key = (name: string): string => { ssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', f(name)); return f(name) }
  const ext = async (name: string, lines: string[]): Promise<string> => { await writeFile(f(name), lines.join('\n') + '\n'); return f(name) }
  const caExt = (td: string): string[] => ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign', `subjectAltName=URI:spiffe://${td}`, 'subjectKeyIdentifier=hash', 'authorityKeyIdentifier=keyid:always']

  return {
    dir,
    async root (name, td = TD) {
      const k = key(`${name}.key`)
      ssl('req', '-x509', '-new', '-key', k, '-subj', `/CN=${name}`, '-days', '2', '-set_serial', serial(), '-out', f(`${name}.pem`),
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-addext', `subjectAltName=URI:spiffe://${td}`)
      return { name, cert: f(`${name}.pem`), key: k }
    },
    async signCa (issuer, subject, td = TD) {
      const name = typeof subject === 'string' ? subject : `${subject.name}-by-${issuer.name}`
      const k = typeof subject === 'string' ? key(`${name}.key`) : subject.key
      const cn = typeof subject === 'string' ? subject : subject.name
      ssl('req', '-new', '-key', k, '-subj', `/CN=${cn}`, '-out', f(`${name}.csr`))
      ssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', issuer.cert, '-CAkey', issuer.key, '-set_serial', serial(), '-days', '2', '-extfile', await ext(`${name}.ext`, caExt(td)), '-out', f(`${name}.pem`))
      return { name, cert: f(`${name}.pem`), key: k }
    },
    async leaf (issuer, service, chain = [], td = TD, uri) {
      const k = key(`${service}.key`)
      const id = uri ?? consulServiceId({ trustDomain: td, datacenter: 'dc1', service }).uri
      ssl('req', '-new', '-key', k, '-subj', `/CN=${service}`, '-out', f(`${service}.csr`))
      const e = await ext(`${service}.ext`, ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyAgreement', 'extendedKeyUsage=serverAuth,clientAuth',
        `subjectAltName=URI:${id}`, 'subjectKeyIdentifier=hash', 'authorityKeyIdentifier=keyid:always'])
      ssl('x509', '-req', '-in', f(`${service}.csr`), '-CA', issuer.cert, '-CAkey', issuer.key, '-set_serial', serial(), '-days', '1', '-extfile', e, '-out', f(`${service}.leaf.pem`))
      const pems = [await readFile(f(`${service}.leaf.pem`), 'utf8'), ...await Promise.all(chain.map(c => readFile(c.cert, 'utf8')))]
      await writeFile(f(`${service}.pem`), pems.join(''))
      return { cert: f(`${service}.pem`), key: k, leafOnly: f(`${service}.leaf.pem`) }
    },
    async bundle (name, cas) {
      await writeFile(f(name), (await Promise.all(cas.map(c => readFile(c.cert, 'utf8')))).join(''))
      return f(name)
    },
    verify (leaf, roots, untrusted = []) {
      const args = ['verify', '-CAfile', roots, ...untrusted.flatMap(u => ['-untrusted', u.cert]), leaf.leafOnly]
      return spawnSync('openssl', args, { cwd: dir }).status === 0
    }
  }
}
