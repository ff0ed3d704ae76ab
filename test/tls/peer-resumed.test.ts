// Why: a resumed TLS session carries no certificate chain, and with --workers the
// process that resumes it may not be the one that verified the peer (or the
// verifier's cache may have dropped it). A fresh verifier must then reach the
// same verdict as on the full handshake: the SVID rules and the root of the
// peer's own trust domain, from the leaf in the session and our trust store —
// allowed peers identified, a leaf chained to another trust domain's root refused.
import t from 'tap'
import { createServer, connect, type TLSSocket } from 'node:tls'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { makeMesh, TD } from '../helpers/mesh.js'
import { createRootCa } from '../../src/ca/issue.js'
import { makeBundle } from '../../src/core/identity/bundle.js'
import { certsFromPem } from '../../src/core/identity/x509.js'
import { PeerVerifier } from '../../src/tls/peer.js'
import { PeerIdentityError } from '../../src/core/errors.js'

const OTHER_TD = 'other.example'

/** Two connections from `client` (the second offering the first's ticket); each verified by a verifier that never saw the peer. */
async function twoConnections (server: { certPem: string, keyPem: string }, client: { certPem: string, keyPem: string }, caPem: string, verify: (s: TLSSocket) => string): Promise<Array<{ resumed: boolean, verdict: string }>> {
  const seen: Array<{ resumed: boolean, verdict: string }> = []
  const srv = createServer({ cert: server.certPem, key: server.keyPem, ca: caPem, requestCert: true, rejectUnauthorized: true, ticketKeys: randomBytes(48) }, s => {
    seen.push({ resumed: s.isSessionReused(), verdict: verify(s) })
    s.end('x')
  })
  srv.listen(0, '127.0.0.1')
  await once(srv, 'listening')
  const port = (srv.address() as { port: number }).port
  let session: Buffer | undefined
  for (let i = 0; i < 2; i++) {
    const c = connect({ port, host: '127.0.0.1', cert: client.certPem, key: client.keyPem, ca: caPem, checkServerIdentity: () => undefined, ...(session === undefined ? {} : { session }) })
    c.on('session', (s: Buffer) => { session = s })
    c.resume()
    await once(c, 'end')
    c.end()
    await once(c, 'close')
  }
  srv.close()
  return seen
}

t.test('a resumed session is verified in full by a verifier that never saw the peer', async t => {
  const mesh = await makeMesh(t)
  const other = await createRootCa({ trustDomain: OTHER_TD })
  const caPem = mesh.ca.certPem + other.certPem
  const bundle = makeBundle([{ trustDomain: TD, cert: certsFromPem(mesh.ca.certPem, 'ca')[0]! }, { trustDomain: OTHER_TD, cert: certsFromPem(other.certPem, 'other')[0]! }])
  const verdict = (s: TLSSocket): string => {
    try {
      return new PeerVerifier(bundle).verifySocket(s).id.uri
    } catch (err) {
      return err instanceof PeerIdentityError ? err.reason : String(err)
    }
  }
  const db = await mesh.leaf('db')
  const cases = [
    { name: 'a peer of our trust domain', client: await mesh.leaf('web'), want: `spiffe://${TD}/ns/default/dc/dc1/svc/web` },
    { name: 'a leaf of our trust domain chained to another trust domain\'s root', client: await mesh.leaf('web', { ca: other }), want: 'foreign_trust_domain' }
  ]
  for (const c of cases) {
    const [full, resumed] = await twoConnections(db, c.client, caPem, verdict)
    t.same(full, { resumed: false, verdict: c.want }, `${c.name}: full handshake`)
    t.same(resumed, { resumed: true, verdict: c.want }, `${c.name}: resumed, same verdict from the session alone`)
  }
})
