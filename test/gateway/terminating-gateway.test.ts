// Why: a terminating gateway is where the mesh's identity and intentions
// stop and a service outside the mesh begins; it must present each
// represented service's SVID, let only what the intentions allow through,
// verify a TLS external target against the operator's CA, and connect
// nowhere but the targets it was given.
import t, { type Test } from 'tap'
import { connect as tlsConnect, createServer as createTlsServer, type TLSSocket } from 'node:tls'
import { writeFile } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { rotateRoot } from '../../src/meshdir/ca-store.js'
import { readMeshSettings } from '../../src/meshdir/layout.js'
import { join } from 'node:path'
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'
import { TD, appTry, echo, echoRoundTrip, echoSha, makeMesh, startApp, startSidecar, type TestMesh } from '../helpers/mesh.js'
import { startTerminating } from '../helpers/gateway.js'
import { python3Missing, unansweredPort, until } from '../helpers/ports.js'
import { createRootCa, issueCert } from '../../src/ca/issue.js'

/** A TLS echo server with a certificate for `name` from a CA of its own (not the mesh's); its CA file. */
async function externalTls (t: Test, dir: string, name: string): Promise<{ port: number, caFile: string, accepted: () => number }> {
  const ca = await createRootCa({ trustDomain: 'external.test', commonName: 'external CA' })
  const leaf = await issueCert({ ca, uris: [], dnsNames: [name], commonName: name })
  const caFile = join(dir, `${name}-ca.pem`)
  await writeFile(caFile, ca.certPem)
  let accepted = 0
  const live = new Set<Socket>()
  const server = createTlsServer({ cert: leaf.certPem, key: leaf.keyPem, allowHalfOpen: true }, (s: TLSSocket) => { accepted++; s.on('error', () => {}); s.pipe(s) })
  // Every TCP connection, also those whose handshake failed (the wrong-CA client's), ended at teardown.
  server.on('connection', (raw: Socket) => { live.add(raw); raw.on('close', () => live.delete(raw)) })
  server.on('tlsClientError', () => {})
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => { for (const s of live) s.destroy(); server.close(() => resolve()) }))
  return { port: (server.address() as AddressInfo).port, caFile, accepted: () => accepted }
}

/** A raw mTLS client of the gateway with `service`'s leaf and `sni`: the certificate the gateway presented, or the error. */
async function presented (mesh: TestMesh, port: number, sni: string | undefined): Promise<{ san?: string, error?: string }> {
  const web = await mesh.leaf('web')
  return await new Promise(resolve => {
    const s = tlsConnect({ host: '127.0.0.1', port, ...(sni === undefined ? {} : { servername: sni }), ca: mesh.ca.certPem, cert: web.certPem, key: web.keyPem, checkServerIdentity: () => undefined })
    s.on('secureConnect', () => { const san = s.getPeerX509Certificate()?.subjectAltName; s.destroy(); resolve(san === undefined ? {} : { san }) })
    s.on('error', (e: Error & { code?: string }) => resolve({ error: e.code ?? e.message }))
  })
}

t.test('allowed by intention: web reaches legacy-db (plain TCP) as an upstream, 2 MB each way', async t => {
  const mesh = await makeMesh(t, ['web'])
  await mesh.writeIntentions([{ source: 'web', destination: 'legacy-db', action: 'allow' }])
  const db = await startApp(t, echo)
  const gw = await startTerminating(t, { meshDir: mesh.dir, service: [`legacy-db=127.0.0.1:${db.port}`] })
  // Found through the mesh dir catalog, where the gateway registered legacy-db at its own address.
  const web = await startSidecar(t, { service: 'web', meshDir: mesh.dir, upstream: ['legacy-db:0'] })
  const r = await echoSha(web.addrs.upstreams.get('legacy-db')!.port, 2 * 1024 * 1024)
  t.equal(r.received, r.sent, 'sha256 equal both ways')
  t.match(await gw.sink.waitFor(l => l.msg === 'conn closed'), { listener: 'terminating_gateway', source: 'web', destination: 'legacy-db', intention: 'web => legacy-db', peer: `spiffe://${TD}/ns/default/dc/dc1/svc/web`, external: `127.0.0.1:${db.port}`, reason: 'eof' })
  t.match(await web.sink.waitFor(l => l.msg === 'conn closed'), { peer: `spiffe://${TD}/ns/default/dc/dc1/svc/legacy-db` }, 'web verified that it reached legacy-db')
  t.equal(gw.metrics.get('mesh_proxy_connections_total', { direction: 'terminating_gateway', result: 'allowed' }), 1)
  await web.stop()
  await gw.stop()
})

t.test('repeated connections: resumed ones (tickets; the gateway takes no PSK) are verified and allowed too', async t => {
  const mesh = await makeMesh(t, ['web'])
  await mesh.writeIntentions([{ source: 'web', destination: 'legacy-db', action: 'allow' }])
  const db = await startApp(t, echo)
  const gw = await startTerminating(t, { meshDir: mesh.dir, service: [`legacy-db=127.0.0.1:${db.port}`] })
  const web = await startSidecar(t, { service: 'web', meshDir: mesh.dir, upstream: ['legacy-db:0'] })
  const port = web.addrs.upstreams.get('legacy-db')!.port
  // web offers its PSK first; declined twice (this server takes none), it makes a full handshake that keeps a ticket (resumption.ts).
  const N = 6
  for (let n = 1; n <= N; n++) t.equal(await echoRoundTrip(port, `query ${n}`), `query ${n}`, `connection ${n}`)
  await gw.sink.waitFor(() => gw.sink.msgs('conn closed').length === N)
  t.equal(gw.sink.msgs('conn closed').filter(l => l.source === 'web' && l.reason === 'eof').length, N, 'all relayed, each with web verified')
  t.equal(gw.sink.msgs('conn rejected').length, 0)
  const resumed = web.sink.msgs('conn closed').filter(l => l.resumed === true).length
  t.ok(resumed >= 1, `web resumed ${resumed} of them`)
  await web.stop()
  await gw.stop()
})

t.test('denied by intention: reset, the external service never sees a connection', async t => {
  const mesh = await makeMesh(t, ['billing'])
  await mesh.writeIntentions([{ source: 'web', destination: 'legacy-db', action: 'allow' }, { source: 'billing', destination: 'legacy-db', action: 'deny' }])
  const db = await startApp(t, echo)
  const gw = await startTerminating(t, { meshDir: mesh.dir, service: [`legacy-db=127.0.0.1:${db.port}`] })
  const billing = await startSidecar(t, { service: 'billing', meshDir: mesh.dir, upstream: ['legacy-db:0'] })
  const r = await appTry(billing.addrs.upstreams.get('legacy-db')!.port, 'let me in')
  t.match(r, { got: '', reset: true }, 'billing\'s app is reset')
  t.match(await gw.sink.waitFor(l => l.msg === 'conn denied'), { source: 'billing', destination: 'legacy-db', intention: 'billing => legacy-db' })
  t.equal(gw.metrics.get('mesh_proxy_connections_total', { direction: 'terminating_gateway', result: 'denied_intention' }), 1)
  t.equal(db.accepted(), 0, 'legacy-db saw nothing')
  await billing.stop()
  await gw.stop()
})

t.test('a TLS external target, verified against the CA file; a wrong CA fails closed', async t => {
  const mesh = await makeMesh(t, ['web'])
  await mesh.writeIntentions([{ source: 'web', destination: '*', action: 'allow' }])
  const api = await externalTls(t, mesh.dir, 'api.external.test')
  const other = await externalTls(t, mesh.dir, 'other.external.test')
  const gw = await startTerminating(t, {
    meshDir: mesh.dir,
    service: [`billing-api=127.0.0.1:${api.port},tls,ca=${api.caFile},sni=api.external.test`, `wrong-ca=127.0.0.1:${api.port},tls,ca=${other.caFile},sni=api.external.test`]
  })
  const web = await startSidecar(t, { service: 'web', meshDir: mesh.dir, upstream: ['billing-api:0', 'wrong-ca:0'] })
  const r = await echoSha(web.addrs.upstreams.get('billing-api')!.port, 256 * 1024)
  t.equal(r.received, r.sent, 'through the gateway and TLS to the external service')
  t.match(await gw.sink.waitFor(l => l.msg === 'conn closed' && l.destination === 'billing-api'), { external: `127.0.0.1:${api.port} (tls api.external.test)`, reason: 'eof' })
  const bad = await appTry(web.addrs.upstreams.get('wrong-ca')!.port, 'hello')
  t.match(bad, { got: '', reset: true }, 'a target whose certificate the CA file does not vouch for: the caller is reset')
  t.match(await gw.sink.waitFor(l => l.destination === 'wrong-ca' && l.msg === 'conn closed'), { reason: 'external_tls_failed', err: /TLS with wrong-ca at 127\.0\.0\.1:\d+ \(tls api\.external\.test\) failed: .*(unable to verify|self.signed|unable to get|local issuer)/i })
  t.equal(gw.metrics.get('mesh_proxy_connections_total', { direction: 'terminating_gateway', result: 'upstream_error' }), 1)
  await web.stop()
  await gw.stop()
})

t.test('a TLS target that asks for a client certificate gets client-cert=/client-key=', async t => {
  const mesh = await makeMesh(t, ['web'])
  await mesh.writeIntentions([{ source: 'web', destination: 'vault-db', action: 'allow' }])
  const serverCa = await createRootCa({ trustDomain: 'external.test', commonName: 'server CA' })
  const clientCa = await createRootCa({ trustDomain: 'clients.test', commonName: 'client CA' })
  const serverLeaf = await issueCert({ ca: serverCa, uris: [], dnsNames: ['db.external.test'], commonName: 'db.external.test' })
  const clientLeaf = await issueCert({ ca: clientCa, uris: [], dnsNames: ['gateway.clients.test'], commonName: 'gateway' })
  const files = { ca: join(mesh.dir, 'server-ca.pem'), cert: join(mesh.dir, 'gw-client.pem'), key: join(mesh.dir, 'gw-client.key') }
  await writeFile(files.ca, serverCa.certPem)
  await writeFile(files.cert, clientLeaf.certPem)
  await writeFile(files.key, clientLeaf.keyPem, { mode: 0o600 })
  const seen: string[] = []
  const server = createTlsServer({ cert: serverLeaf.certPem, key: serverLeaf.keyPem, ca: clientCa.certPem, requestCert: true, rejectUnauthorized: true, allowHalfOpen: true }, (s: TLSSocket) => {
    seen.push(String(s.getPeerX509Certificate()?.subject))
    s.on('error', () => {})
    s.pipe(s)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => server.close(() => resolve())))
  const port = (server.address() as AddressInfo).port
  const gw = await startTerminating(t, { meshDir: mesh.dir, service: [`vault-db=127.0.0.1:${port},tls,ca=${files.ca},sni=db.external.test,client-cert=${files.cert},client-key=${files.key}`] })
  const web = await startSidecar(t, { service: 'web', meshDir: mesh.dir, upstream: ['vault-db:0'] })
  t.equal(await echoRoundTrip(web.addrs.upstreams.get('vault-db')!.port, 'mutual'), 'mutual')
  t.same(seen, ['CN=gateway'], 'the external service verified the gateway\'s client certificate')
  await web.stop()
  await gw.stop()
})

t.test('the SNI picks the SVID; a service not on the list is refused in the handshake', async t => {
  const mesh = await makeMesh(t, ['web'])
  await mesh.writeIntentions([{ source: 'web', destination: '*', action: 'allow' }])
  const a = await startApp(t, echo)
  const gw = await startTerminating(t, { meshDir: mesh.dir, service: [`legacy-db=127.0.0.1:${a.port}`, `ldap=127.0.0.1:${a.port}`] })
  t.match(await presented(mesh, gw.at.port, `legacy-db.default.dc1.internal.${TD}`), { san: `URI:spiffe://${TD}/ns/default/dc/dc1/svc/legacy-db` })
  t.match(await presented(mesh, gw.at.port, `ldap.default.dc1.internal.${TD}`), { san: `URI:spiffe://${TD}/ns/default/dc/dc1/svc/ldap` })
  t.match(await presented(mesh, gw.at.port, `metadata.default.dc1.internal.${TD}`), { error: /ECONNRESET|alert|EPROTO|socket/i }, 'not represented: no handshake')
  t.match(await gw.sink.waitFor(l => l.msg === 'conn rejected' && l.reason === 'unknown_service'), { err: /does not represent metadata \(it represents legacy-db, ldap; add --service metadata=<host:port>\)/ })
  t.match(await presented(mesh, gw.at.port, 'legacy-db.default.dc1.internal.other.consul'), { error: /./ }, 'another trust domain: no handshake')
  t.ok(await gw.sink.waitFor(l => l.reason === 'foreign_trust_domain'))
  t.match(await presented(mesh, gw.at.port, undefined), { error: /./ }, 'no SNI: no handshake')
  t.match(await gw.sink.waitFor(l => l.reason === 'no_sni'), { msg: 'conn rejected', err: /no server_name/ })
  t.equal(a.accepted(), 0, 'nothing was connected to')
  await gw.stop()
})

t.test('a caller whose certificate is not of our CA, or who has none: rejected, the target never dialled', async t => {
  const mesh = await makeMesh(t, [])
  await mesh.writeIntentions([], 'allow')
  const a = await startApp(t, echo)
  const gw = await startTerminating(t, { meshDir: mesh.dir, service: [`legacy-db=127.0.0.1:${a.port}`] })
  const rogueCa = await createRootCa({ trustDomain: TD })
  const rogue = await mesh.leaf('web', { ca: rogueCa })
  const sni = `legacy-db.default.dc1.internal.${TD}`
  for (const client of [rogue, null]) {
    const s = tlsConnect({ host: '127.0.0.1', port: gw.at.port, servername: sni, ca: mesh.ca.certPem, checkServerIdentity: () => undefined, ...(client === null ? {} : { cert: client.certPem, key: client.keyPem }) })
    s.on('error', () => {})
    s.on('secureConnect', () => { s.write('let me in') })
    await new Promise(resolve => s.once('close', resolve))
  }
  const rejected = await gw.sink.waitFor(l => l.msg === 'conn rejected' && /certificate|CERT|ISSUER/i.test(String(l.reason) + String(l.err)))
  t.match(rejected, { listener: 'terminating_gateway' }, 'a certificate from another CA')
  t.equal(gw.sink.msgs('conn rejected').length, 2, 'both rejected')
  t.equal(gw.metrics.get('mesh_proxy_connections_total', { direction: 'terminating_gateway', result: 'tls_error' }), 2)
  t.equal(a.accepted(), 0, 'legacy-db was never connected to')
  await gw.stop()
})

t.test('a caller that never finishes its handshake: closed at --handshake-timeout', async t => {
  const mesh = await makeMesh(t, [])
  const a = await startApp(t, echo)
  const gw = await startTerminating(t, { meshDir: mesh.dir, handshakeTimeout: '200ms', service: [`legacy-db=127.0.0.1:${a.port}`] })
  const s = connect({ host: '127.0.0.1', port: gw.at.port })
  s.on('error', () => {})
  await new Promise(resolve => s.once('close', resolve))
  t.match(await gw.sink.waitFor(l => l.msg === 'conn rejected'), { listener: 'terminating_gateway', reason: 'MP_ERR_HANDSHAKE_TIMEOUT', err: /200/ })
  t.equal(a.accepted(), 0)
  await gw.stop()
})

t.test('the SVID from files given per service (cert=, key=) and --ca, intentions from --intentions', async t => {
  const mesh = await makeMesh(t, ['web'])
  await mesh.writeIntentions([{ source: 'web', destination: 'legacy-db', action: 'allow' }])
  const leaf = await mesh.leaf('legacy-db')
  const cert = join(mesh.dir, 'legacy-db-from-vault.pem')
  const key = join(mesh.dir, 'legacy-db-from-vault.key')
  await writeFile(cert, leaf.certPem)
  await writeFile(key, leaf.keyPem, { mode: 0o600 })
  const db = await startApp(t, echo)
  const gw = await startTerminating(t, { ca: mesh.layout.bundle, intentions: mesh.layout.intentions, service: [`legacy-db=127.0.0.1:${db.port},cert=${cert},key=${key}`] })
  const web = await startSidecar(t, { service: 'web', meshDir: mesh.dir, upstream: [`legacy-db:0=127.0.0.1:${gw.at.port}`] })
  t.equal(await echoRoundTrip(web.addrs.upstreams.get('legacy-db')!.port, 'over the files\' SVID'), 'over the files\' SVID')
  t.match(await gw.sink.waitFor(l => l.msg === 'conn closed'), { source: 'web', destination: 'legacy-db', reason: 'eof' })
  await web.stop()
  await gw.stop()
})

t.test('bad --service values: the flag, the value and the fix', async t => {
  const mesh = await makeMesh(t, [])
  const cases: ReadonlyArray<[unknown, RegExp]> = [
    [undefined, /--service: a terminating gateway needs at least one external service/],
    [['legacy-db'], /"legacy-db" is not <service>=<host:port>/],
    [['legacy-db=10.0.0.9:5432,tls'], /10\.0\.0\.9 is an IP address; give the name its certificate carries with sni=<name>/],
    [['legacy-db=db.internal:5432,ca=x.pem'], /ca=, sni= and client-cert=\/client-key= are for a TLS target; add ",tls"/],
    [['legacy-db=db.internal:5432,tls,client-cert=c.pem'], /client-cert= and client-key= go together/],
    [['legacy-db=db.internal:5432,cert=a.pem'], /cert= and key= go together/],
    [['legacy-db=db.internal:5432,proxy'], /unknown option "proxy"/],
    [['legacy-db=:5432'], /is not an address to connect to/],
    [['a=h:1', 'a=h:2'], /a is given twice/]
  ]
  for (const [service, why] of cases) {
    await t.rejects(startTerminating(t, { meshDir: mesh.dir, ...(service === undefined ? {} : { service }) }), { errors: [{ message: why }] }, String(service))
  }
  await t.rejects(startTerminating(t, { service: ['legacy-db=db.internal:5432'] }), { errors: [{ message: /--service: legacy-db: .*mesh/ }] }, 'no certificates from anywhere')
})

t.test('close() does not wait for an external target that never answers (its TCP connect, its TLS handshake)', { skip: python3Missing() }, async t => {
  const mesh = await makeMesh(t, ['web'])
  await mesh.writeIntentions([{ source: 'web', destination: '*', action: 'allow' }])
  const blackhole = await unansweredPort(t)
  const held = new Set<Socket>()
  let accepted: () => void = () => {}
  const silent = createServer(s => { held.add(s); s.on('error', () => {}); accepted() }) // TCP, never a TLS byte
  await new Promise<void>(resolve => silent.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { for (const s of held) s.destroy(); silent.close() })
  const caFile = join(mesh.dir, 'ca.pem')
  await writeFile(caFile, mesh.ca.certPem)
  const rows: Array<[string, string]> = [
    ['its TCP connect', `stuck-dial=127.0.0.1:${blackhole}`],
    ['its TLS handshake', `stuck-tls=127.0.0.1:${(silent.address() as AddressInfo).port},tls,ca=${caFile},sni=stuck.external.test`]
  ]
  for (const [why, service] of rows) {
    const name = service.split('=')[0]!
    // Deadlines far beyond the test's own timeout: only the drain's end can stop them.
    const gw = await startTerminating(t, { meshDir: mesh.dir, service: [service], connectTimeout: '1h', handshakeTimeout: '1h', drainTimeout: '200ms' })
    const web = await startSidecar(t, { service: 'web', meshDir: mesh.dir, upstream: [`${name}:0`] })
    const dialed = why === 'its TLS handshake' ? new Promise<void>(resolve => { accepted = resolve }) : undefined
    const c = connect(web.addrs.upstreams.get(name)!.port, '127.0.0.1')
    let reset = false
    c.on('error', (e: Error & { code?: string }) => { reset = e.code === 'ECONNRESET' })
    const closed = new Promise(resolve => c.once('close', resolve))
    c.write('anyone there?')
    await until(() => gw.metrics.get('mesh_proxy_connections_active', { direction: 'terminating_gateway' }) === 1)
    await dialed
    await gw.stop() // asserts no live connection and the gauge at 0
    await closed
    t.equal(reset, true, `${why}: the calling app is reset`)
    t.equal(gw.metrics.get('mesh_proxy_connections_total', { direction: 'terminating_gateway', result: 'aborted' }), 1, `${why}: counted aborted`)
    t.match(gw.sink.msgs('conn closed')[0], { reason: 'aborted', destination: name }, `${why}: logged aborted, not as the target's fault`)
    await web.stop()
  }
})

t.test('after a root rotation: a caller whose leaf comes with the cross-signed root is verified and allowed', async t => {
  // The gateway picks its context per SNI; Node completes a peer's chain from the
  // server's own context only, so the chain it reports stops at the cross-signed copy.
  const mesh = await makeMesh(t, [])
  await mesh.writeIntentions([{ source: 'web', destination: 'legacy-db', action: 'allow' }])
  await rotateRoot(mesh.layout, await readMeshSettings(mesh.layout)) // no leaf on disk: both are issued from the new root
  const db = await startApp(t, echo)
  const gw = await startTerminating(t, { meshDir: mesh.dir, service: [`legacy-db=127.0.0.1:${db.port}`] })
  const web = await startSidecar(t, { service: 'web', meshDir: mesh.dir, upstream: ['legacy-db:0'] })
  t.equal((readFileSync(mesh.layout.certFor('web'), 'utf8').match(/BEGIN CERTIFICATE/g) ?? []).length, 2, 'web\'s leaf is sent with the cross-signed root')
  t.equal(await echoRoundTrip(web.addrs.upstreams.get('legacy-db')!.port, 'after rotation'), 'after rotation')
  t.match(await gw.sink.waitFor(l => l.msg === 'conn closed'), { source: 'web', destination: 'legacy-db', reason: 'eof' })
  t.equal(gw.sink.msgs('conn rejected').length, 0)
  await web.stop()
  await gw.stop()
})
