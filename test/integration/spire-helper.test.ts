// Why: the SPIRE way to hand a workload its identity without the Workload API
// in the process is spiffe-helper writing svid.pem / svid_key.pem /
// svid_bundle.pem and rewriting them, one file after the other, at every
// rotation. A mesh-proxy run with --cert/--key/--ca on those files must take up
// every new SVID without failing a connection. Real peers: spire-server and
// spire-agent (join-token node attestation, unix workload attestor, one
// registration entry per service in Consul's ID form, told apart by hint),
// two spiffe-helpers; short SVID TTL so rotations happen within the test.
// They come from test/peers/install.sh; without them the file skips, and
// fails under CI=true.
import t, { type Test } from 'tap'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startApp, startSidecar, echo, TD } from '../helpers/mesh.js'
import { consulServiceId } from '../../src/core/identity/spiffe-id.js'
import { needPeers, spawnPeer, keepConnecting } from '../peers/peers.js'
import { startSpire } from '../peers/spire.js'

const { env, skip } = needPeers(t, ['SPIRE_SERVER_BIN', 'SPIRE_AGENT_BIN', 'SPIFFE_HELPER_BIN'])
const idOf = (service: string): string => consulServiceId({ trustDomain: TD, datacenter: 'dc1', service }).uri

/** spiffe-helper in daemon mode for the entry hinted `service`; resolves with the files once first written. */
async function startHelper (t: Test, spire: { dir: string, agentSocket: string }, service: string): Promise<{ cert: string, key: string, ca: string, updates: () => number }> {
  const certDir = join(spire.dir, service)
  await mkdir(certDir)
  const conf = join(spire.dir, `helper-${service}.conf`)
  await writeFile(conf, `
agent_address = "${spire.agentSocket}"
cert_dir = "${certDir}"
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "svid_bundle.pem"
hint = "${service}"
daemon_mode = true
`)
  const helper = spawnPeer(t, env.SPIFFE_HELPER_BIN!, ['-config', conf])
  await helper.waitFor(/X\.509 certificates updated/)
  return { cert: join(certDir, 'svid.pem'), key: join(certDir, 'svid_key.pem'), ca: join(certDir, 'svid_bundle.pem'), updates: () => (helper.stdout() + helper.stderr()).split('X.509 certificates updated').length - 1 }
}

t.test('SVIDs from SPIRE through spiffe-helper files rotate under load: no failed connection', { skip, timeout: 120_000 }, async t => {
  const spire = await startSpire(t, env, TD, ['db', 'web'].map(s => ({ id: idOf(s), hint: s })))
  const dbFiles = await startHelper(t, spire, 'db')
  const webFiles = await startHelper(t, spire, 'web')
  const intentions = join(spire.dir, 'intentions.json')
  await writeFile(intentions, JSON.stringify({ intentions: [{ source: 'web', destination: 'db', action: 'allow' }] }))
  const app = await startApp(t, echo)
  const { updates: _u1, ...dbTls } = dbFiles
  const { updates: _u2, ...webTls } = webFiles
  const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, ...dbTls, intentions })
  const web = await startSidecar(t, { service: 'web', upstream: [`db:0=127.0.0.1:${db.addrs.inbound!.port}`], ...webTls })
  t.equal(db.sidecar.tls.svid.id.uri, idOf('db'), 'db runs with the SVID SPIRE issued for its entry')
  t.equal(web.sidecar.tls.svid.id.uri, idOf('web'), 'web too')
  const firstDb = db.sidecar.tls.svid.chain[0]!.serial
  const firstWeb = web.sidecar.tls.svid.chain[0]!.serial

  const load = keepConnecting(web.addrs.upstreams.get('db')!.port)
  await load.after(3)
  // Two rotations of each: every 'certificates reloaded' came from spiffe-helper rewriting the files.
  const reloaded = (side: typeof db, n: number): Promise<unknown> => side.sink.waitFor(l => l.msg === 'certificates reloaded' && side.sink.msgs('certificates reloaded').indexOf(l) === n - 1)
  await Promise.all([reloaded(db, 2), reloaded(web, 2)])
  await load.after(3) // connections made with the newest SVIDs on both sides
  await load.stop()

  t.not(db.sidecar.tls.svid.chain[0]!.serial, firstDb, 'db took up a rotated SVID')
  t.not(web.sidecar.tls.svid.chain[0]!.serial, firstWeb, 'web took up a rotated SVID')
  const halfWritten = [...db.sink.msgs('certificate reload failed; keeping the current certificates'), ...web.sink.msgs('certificate reload failed; keeping the current certificates')].length
  t.comment(`spiffe-helper wrote db's files ${dbFiles.updates()} times, web's ${webFiles.updates()} times; ${halfWritten} half-written sets kept out; ${load.results.length} connections`)
  t.equal(load.results.filter(ok => !ok).length, 0, `none of ${load.results.length} connections failed across the rotations`)
  const rejected = db.sink.msgs('conn rejected')
  if (rejected.length > 0) t.comment(`db rejected ${rejected.length}; the first: ${JSON.stringify(rejected[0])}`)
  t.equal(rejected.length, 0, 'db rejected no handshake')
  t.equal(web.sink.msgs('conn refused').length, 0, 'web refused no connection')
  t.same(db.sink.msgs('conn closed').filter(l => l.source !== 'web').map(l => l.source), [], 'every connection was identified as web')
  await web.stop()
  await db.stop()
})
