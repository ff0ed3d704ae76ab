// Why: `--control-plane spiffe` against the real thing: spire-agent's Workload
// API (SPIRE 1.13, from test/peers/install.sh), not our double. Both sidecars of
// a pair take their SVIDs over FetchX509SVID, in the Kubernetes form
// (spiffe://<td>/ns/<ns>/sa/<sa>) and in a path form given as a template; the
// SVIDs live 20 s, so the agent rotates them within the test while connections
// run. SPIRE sends one process every SVID its uid is entitled to (db's and
// web's here): each sidecar must take its own. Without the peers the file
// skips, and fails under CI=true.
import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startApp, startSidecar, echo, echoSha, type TestSidecar } from '../helpers/mesh.js'
import { needPeers, keepConnecting } from '../peers/peers.js'
import { startSpire } from '../peers/spire.js'

const { env, skip } = needPeers(t, ['SPIRE_SERVER_BIN', 'SPIRE_AGENT_BIN'])
const TD = 'example.org'

const FORMS = [
  { name: 'kubernetes', flag: 'kubernetes', idOf: (s: string) => `spiffe://${TD}/ns/default/sa/${s}` },
  { name: 'a path form (template)', flag: 'spiffe://{trustDomain}/workload/{service}', idOf: (s: string) => `spiffe://${TD}/workload/${s}` }
]

for (const form of FORMS) {
  t.test(`SVIDs in ${form.name} over the Workload API, rotated under load: no failed connection`, { skip, timeout: 120_000 }, async t => {
    const spire = await startSpire(t, env, TD, ['db', 'web'].map(s => ({ id: form.idOf(s), hint: s })))
    const intentions = join(spire.dir, 'intentions.json')
    await writeFile(intentions, JSON.stringify({ defaultPolicy: 'deny', intentions: [{ source: 'web', destination: 'db', action: 'allow' }] }))
    const app = await startApp(t, echo)
    const plane = { controlPlane: 'spiffe', spiffeEndpointSocket: `unix://${spire.agentSocket}`, identityForm: form.flag, admin: 'off' }
    const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, intentions, ...plane })
    const web = await startSidecar(t, { service: 'web', upstream: [`db:0=127.0.0.1:${db.addrs.inbound!.port}`], ...plane })
    t.equal(db.sidecar.tls.svid.id.uri, form.idOf('db'), 'db took its own SVID of the two the agent sends')
    t.equal(web.sidecar.tls.svid.id.uri, form.idOf('web'), 'web too')
    const firstDb = db.sidecar.tls.svid.chain[0]!.serial
    const firstWeb = web.sidecar.tls.svid.chain[0]!.serial
    const upstream = web.addrs.upstreams.get('db')!.port

    const bulk = echoSha(upstream, 16 * 1024 * 1024)
    const load = keepConnecting(upstream)
    await load.after(3)
    const rotated = (side: TestSidecar): Promise<unknown> => side.sink.waitFor(l => l.msg === 'certificates reloaded' && l.previousSerial !== undefined)
    await Promise.all([rotated(db), rotated(web)])
    await load.after(3) // connections made with the rotated SVIDs on both sides
    await load.stop()
    const r = await bulk
    t.equal(r.received, r.sent, 'a 16 MiB echo through the pair: every byte back (sha256)')

    t.not(db.sidecar.tls.svid.chain[0]!.serial, firstDb, 'db took up the SVID the agent rotated')
    t.not(web.sidecar.tls.svid.chain[0]!.serial, firstWeb, 'web too')
    t.equal(load.results.filter(ok => !ok).length, 0, `none of ${load.results.length} connections failed across the rotations`)
    t.equal(db.sink.msgs('conn rejected').length, 0, 'db rejected no handshake')
    t.equal(web.sink.msgs('conn refused').length, 0, 'web refused no connection')
    t.same(db.sink.msgs('conn closed').filter(l => l.source !== 'web').map(l => l.source), [], 'every connection was identified as web')
    t.match(db.sink.msgs('conn closed')[0], { peer: form.idOf('web') }, 'the access log shows the SPIFFE ID and the service it maps to')
    // Until the agent has synced its entries it answers "no identity issued"; the sidecar retries (not ready) until then.
    for (const side of [db, web]) {
      const first = side.sink.lines.findIndex(l => l.msg === 'certificates reloaded')
      const before = side.sink.lines.slice(0, first).filter(l => l.msg === 'workload api response rejected; keeping the current SVID')
      t.comment(`${side.sidecar.tls.svid.id.uri}: ${before.length} answers before the agent had the entry (${String(before[0]?.err ?? 'none')})`)
      t.same(side.sink.lines.slice(first).filter(l => /^workload api .*; keeping the current SVID$/.test(String(l.msg))).map(l => l.err), [], 'after the first SVID, no error from the agent')
    }
    await web.stop()
    await db.stop()
  })
}
