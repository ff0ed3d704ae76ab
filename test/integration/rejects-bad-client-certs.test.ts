// Why: the inbound side is the mesh's front door. A peer without a valid
// SVID of our trust domain must never reach the app: no cert, an unknown CA,
// an expired cert, a foreign trust domain, a CA:TRUE leaf, two URI SANs.
// Each is refused with a logged reason, and the sidecar keeps serving.
import t from 'tap'
import { createRootCa, issueCert } from '../../src/ca/issue.js'
import { consulServiceId } from '../../src/core/identity/spiffe-id.js'
import { makeMesh, startApp, startSidecar, mtlsTry, echo, TD } from '../helpers/mesh.js'

t.test('bad client certificates are refused before the app', async t => {
  const mesh = await makeMesh(t)
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }])
  const app = await startApp(t, echo)
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, meshDir: mesh.dir })
  const port = db.addrs.inbound!.port
  const webId = consulServiceId({ trustDomain: TD, datacenter: 'dc1', service: 'web' }).uri
  const otherCa = await createRootCa({ trustDomain: 'other.consul' })
  const hour = 3_600_000

  const cases: Array<[string, { certPem: string, keyPem: string } | null, RegExp]> = [
    ['no client certificate', null, /no_certificate/],
    ['client certificate from an unknown CA', await issueCert({ ca: otherCa, uris: [webId] }), /UNABLE_TO_(GET_ISSUER_CERT|VERIFY_LEAF_SIGNATURE)/],
    ['expired client certificate', await mesh.leaf('web', { notBefore: new Date(Date.now() - 3 * hour), notAfter: new Date(Date.now() - hour) }), /CERT_HAS_EXPIRED/],
    ['client certificate of a foreign trust domain', await mesh.leaf('web', { td: 'other.consul' }), /foreign_trust_domain/],
    ['leaf with CA:TRUE', await issueCert({ ca: mesh.ca, uris: [webId], isCA: true }), /leaf_is_ca|INVALID_CA|invalid CA/],
    ['two URI SANs', await issueCert({ ca: mesh.ca, uris: [webId, webId.replace('/web', '/db')] }), /multiple_uri_san/]
  ]
  for (const [name, cert, reason] of cases) {
    const before = db.sink.msgs('conn rejected').length
    const r = await mtlsTry(port, cert, mesh.ca.certPem)
    t.equal(r.received, '', `${name}: no byte comes back`)
    const line = await db.sink.waitFor(l => l.msg === 'conn rejected' && db.sink.msgs('conn rejected').indexOf(l) >= before)
    t.match(`${String(line.reason)} ${String(line.err)}`, reason, `${name}: logged with its reason`)
    t.match(line.remote, /^127\.0\.0\.1:\d+$/, `${name}: and the client's address`)
  }
  t.equal(app.accepted(), 0, 'the app never saw a connection')
  t.equal(db.sink.msgs('conn opened').length, 0)

  const good = await mtlsTry(port, await mesh.leaf('web'), mesh.ca.certPem, 'still here')
  t.equal(good.received, 'still here', 'a valid peer is still served afterwards')
  t.ok(db.metrics.get('mesh_proxy_handshake_failures_total', { reason: 'multiple_uri_san' }) >= 1, 'failures counted by reason')
  await db.stop()
})

t.test('a peer that hangs up mid-handshake is routine: logged at debug', async t => {
  const mesh = await makeMesh(t)
  const app = await startApp(t, echo)
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, meshDir: mesh.dir })
  const { connect } = await import('node:net')
  const c = connect(db.addrs.inbound!.port, '127.0.0.1')
  await new Promise(resolve => c.once('connect', resolve))
  c.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01])) // the start of a ClientHello
  c.resetAndDestroy()
  const line = await db.sink.waitFor(l => l.msg === 'conn rejected')
  t.match(line, { level: 20, reason: 'ECONNRESET' })
  await db.stop()
})
