// Why: our own SVID is checked with the SPIFFE rules before we serve with it;
// the 18 go-spiffe cases in ../shared/conformance/spiffe/x509svid give the
// outcome, with our own message text.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { CONFORMANCE } from '../../helpers/paths.js'
import { parseOwnSvid } from '../../../src/core/identity/svid.js'

const dir = join(CONFORMANCE, 'spiffe', 'x509svid')
const read = (f: string): string => readFileSync(join(dir, f), 'utf8')

const cases: Array<[string, string, string, RegExp | { id: string, certs: number }]> = [
  ['leaf only RSA', 'good-leaf-only.pem', 'key-pkcs8-rsa.pem', { id: 'spiffe://example.org/workload-1', certs: 1 }],
  ['leaf and intermediate', 'good-leaf-and-intermediate.pem', 'key-pkcs8-ecdsa.pem', { id: 'spiffe://example.org/workload-1', certs: 2 }],
  ['key then cert in one file', 'good-key-and-cert.pem', 'good-key-and-cert.pem', { id: 'spiffe://example.org/workload-1', certs: 1 }],
  ['cert then key in one file', 'good-cert-and-key.pem', 'good-cert-and-key.pem', { id: 'spiffe://example.org/workload-1', certs: 1 }],
  ['no certificate block', 'key-pkcs8-rsa.pem', 'key-pkcs8-rsa.pem', /no certificates found/],
  ['no private key block', 'good-leaf-only.pem', 'good-leaf-only.pem', /no private key found/],
  ['key not PEM', 'good-leaf-only.pem', 'not-pem', /private key: no PEM blocks found/],
  ['cert not PEM', 'not-pem', 'key-pkcs8-rsa.pem', /no PEM blocks found/],
  ['corrupt key', 'good-leaf-only.pem', 'corrupt-key.pem', /cannot parse PEM encoded private key/],
  ['corrupt cert', 'corrupt-cert.pem', 'key-pkcs8-rsa.pem', /malformed/],
  ['key does not match', 'good-leaf-and-intermediate.pem', 'key-pkcs8-rsa.pem', /leaf certificate does not match private key/],
  ['no URI SAN', 'wrong-leaf-empty-id.pem', 'key-pkcs8-rsa.pem', /certificate contains no URI SAN/],
  ['leaf CA:TRUE', 'wrong-leaf-ca-true.pem', 'key-pkcs8-rsa.pem', /leaf certificate must not have CA flag set to true/],
  ['no digitalSignature', 'wrong-leaf-no-digital-signature.pem', 'key-pkcs8-rsa.pem', /leaf certificate must have 'digitalSignature' set as key usage/],
  ['keyCertSign on leaf', 'wrong-leaf-cert-sign.pem', 'key-pkcs8-rsa.pem', /leaf certificate must not have 'keyCertSign' set as key usage/],
  ['cRLSign on leaf', 'wrong-leaf-crl-sign.pem', 'key-pkcs8-rsa.pem', /leaf certificate must not have 'cRLSign' set as key usage/],
  ['intermediate not CA', 'wrong-intermediate-no-ca.pem', 'key-pkcs8-rsa.pem', /signing certificate must have CA flag set to true/],
  ['intermediate without keyCertSign', 'wrong-intermediate-no-key-cert-sign.pem', 'key-pkcs8-rsa.pem', /signing certificate must have 'keyCertSign' set as key usage/]
]

for (const [name, cert, key, want] of cases) {
  t.test(name, async t => {
    const run = (): ReturnType<typeof parseOwnSvid> => parseOwnSvid(read(cert), read(key), { cert, key })
    if (want instanceof RegExp) {
      t.throws(run, { message: want })
      const err = (() => { try { run() } catch (e) { return (e as Error).message } return '' })()
      t.ok(err.includes(cert) || err.includes(key), `error names the file: ${err}`)
    } else {
      const svid = run()
      t.equal(svid.id.uri, want.id)
      t.equal(svid.chain.length, want.certs)
    }
  })
}
t.equal(cases.length, 18, 'all 18 conformance cases')
