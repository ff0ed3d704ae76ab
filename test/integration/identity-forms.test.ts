// Why: SPIRE, Kubernetes (SPIRE's k8s registrar, Istio, csi-driver-spiffe) and
// path-style deployments do not issue Consul's ID form. With --identity-form
// the same pair works on their IDs: the inbound maps the peer's ID to the
// service intentions name, the outbound expects the upstream's ID in that form.
// Certificates are made by openssl, not by our CA code.
import t from 'tap'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { opensslMissing, opensslPki } from '../helpers/openssl-pki.js'
import { startApp, startSidecar, echo, echoRoundTrip, appTry, mtlsTry } from '../helpers/mesh.js'

const skip = opensslMissing()
const TD = 'example.org'

const forms: Array<{ form: string, id: (svc: string) => string }> = [
  { form: 'kubernetes', id: svc => `spiffe://${TD}/ns/default/sa/${svc}` },
  { form: 'spiffe://{trustDomain}/workload/{service}', id: svc => `spiffe://${TD}/workload/${svc}` },
  { form: 'spiffe://example.org/{service}', id: svc => `spiffe://${TD}/${svc}` }
]

for (const { form, id } of forms) {
  t.test(`a pair on --identity-form ${form}`, { skip }, async t => {
    const pki = opensslPki(t)
    const root = await pki.root('root', TD)
    const bundle = await pki.bundle('bundle.pem', [root])
    const leaf = async (svc: string, uri = id(svc)): Promise<Record<string, string>> => { const l = await pki.leaf(root, svc, [], TD, uri); return { cert: l.cert, key: l.key, ca: bundle } }
    const intentions = join(pki.dir, 'intentions.json')
    await writeFile(intentions, JSON.stringify({ index: 1, defaultPolicy: 'deny', intentions: [{ source: 'web', destination: 'db', action: 'allow' }] }))
    const app = await startApp(t, echo)
    const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, intentions, identityForm: form, ...await leaf('db') })
    const web = await startSidecar(t, { service: 'web', upstream: [`db:0=127.0.0.1:${db.addrs.inbound!.port}`], identityForm: form, ...await leaf('web') })
    t.equal(await echoRoundTrip(web.addrs.upstreams.get('db')!.port, 'hello'), 'hello', 'bytes through web -> db')
    t.match(await db.sink.waitFor(l => l.msg === 'conn closed'), { peer: id('web'), source: 'web', destination: 'db', intention: 'web => db' }, 'the access log shows the SPIFFE ID and the service it maps to')

    // billing, of the same form, is not allowed: the table decides on the mapped name.
    const billing = await startSidecar(t, { service: 'billing', upstream: [`db:0=127.0.0.1:${db.addrs.inbound!.port}`], identityForm: form, ...await leaf('billing') })
    t.equal((await appTry(billing.addrs.upstreams.get('db')!.port, 'x')).got, '', 'billing is denied: its app gets nothing back')
    t.match(await db.sink.waitFor(l => l.msg === 'conn denied'), { source: 'billing', peer: id('billing') })

    // A Consul-form ID does not name a service under this form (a raw mTLS client: a sidecar would refuse db first).
    const c = await leaf('web', `spiffe://${TD}/ns/default/dc/dc1/svc/web`)
    const tried = await mtlsTry(db.addrs.inbound!.port, { certPem: await readFile(c.cert!, 'utf8'), keyPem: await readFile(c.key!, 'utf8') }, await readFile(bundle, 'utf8'))
    t.equal(tried.received, '', 'nothing from the app')
    const rejected = await db.sink.waitFor(l => l.msg === 'conn rejected' && l.reason === 'not_a_service')
    t.match(rejected.err, /does not have the identity form of --identity-form/)

    // The outbound expects the upstream's ID in the form: a server presenting another service's ID is refused.
    const wrong = await startSidecar(t, { service: 'web', upstream: [`billing:0=127.0.0.1:${db.addrs.inbound!.port}`], identityForm: form, ...await leaf('web') })
    t.equal((await appTry(wrong.addrs.upstreams.get('billing')!.port, 'x')).got, '')
    t.match(await wrong.sink.waitFor(l => l.msg === 'conn refused'), { reason: 'wrong_server_identity', err: new RegExp(`expected ${id('billing').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`) })
    for (const s of [wrong, billing, web, db]) await s.stop()
  })
}

t.test('a sidecar whose own certificate is not of its form refuses to start, naming the flag', { skip }, async t => {
  const pki = opensslPki(t)
  const root = await pki.root('root', TD)
  const l = await pki.leaf(root, 'web', [], TD, `spiffe://${TD}/ns/default/dc/dc1/svc/web`)
  await t.rejects(startSidecar(t, { service: 'web', upstream: ['db:0=127.0.0.1:1'], identityForm: 'kubernetes', cert: l.cert, key: l.key, ca: await pki.bundle('b.pem', [root]) }),
    /does not have the identity form of --identity-form kubernetes \(spiffe:\/\/<td>\/ns\/<namespace>\/sa\/<service>\)/)
})

t.test('a bad --identity-form is a configuration error naming the flag', async t => {
  await t.rejects(startSidecar(t, { service: 'web', upstream: ['db:0=127.0.0.1:1'], meshDir: '/x', identityForm: 'spiffe://{trustDomain}/svc-{service}' }), /--identity-form: .*a placeholder must be a whole path segment/)
})
