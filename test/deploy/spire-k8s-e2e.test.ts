// Why: the Kubernetes path (deploy/kubernetes/) is only worth shipping if its
// pieces work together: SPIRE issuing SVIDs to the entries of entries.json,
// spiffe-helper writing them with the pods' helper.conf, mesh-proxy run with the
// pods' exact args and mesh-proxy.json, renewing by itself. No cluster here, so
// the pods' containers run as local processes on loopback with the paths they
// see in the pod mapped into a temp dir (test/deploy/manifests.ts). What is not
// the manifest's own, and why:
// - node attestation: join_token instead of k8s_psat (no API server to review
//   the agent's token); the token names the node alias of entries.json, so the
//   workload entries keep their parent ID;
// - workload attestation: unix (uid) instead of k8s (no kubelet); web and db
//   run as one uid here, so they are told apart by the entries' hint, as
//   helper.conf already asks;
// - the bundle the agent starts from: `spire-server bundle show` instead of the
//   spire-bundle ConfigMap the k8sbundle notifier writes (no notifier);
// - ports: ephemeral on 127.0.0.1 (spire-server cannot bind port 0: freePort);
//   flags after the manifest's args override listen/to/admin/upstream;
// - the apps: an echo server for redis-server, this test for redis-cli;
// - the X509-SVID TTL of the entries: 20 s instead of 1 h, so that rotations
//   happen within the test.
// Real peers from test/peers/install.sh; without them the file skips, and fails under CI=true.
import t from 'tap'
import { execFile, execFileSync } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { connect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { X509Certificate } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { startApp, echo, echoRoundTrip, type LogSink } from '../helpers/mesh.js'
import { spawnCli } from '../helpers/cli.js'
import { needPeers, spawnPeer, freePort } from '../peers/peers.js'
import { K8S_DIR, container, find, layOutPod, loadObjects, mapQuotedPaths, replaceLine, type Obj } from './manifests.js'

const { env, skip } = needPeers(t, ['SPIRE_SERVER_BIN', 'SPIRE_AGENT_BIN', 'SPIFFE_HELPER_BIN'])
const run = promisify(execFile)
const SVID_TTL_S = 20

const spire = loadObjects('spire')
const demo = loadObjects('mesh-demo')
const serverConf = find(spire, 'ConfigMap', 'spire-server').data['server.conf'] as string
const agentConf = find(spire, 'ConfigMap', 'spire-agent').data['agent.conf'] as string
const TD = /trust_domain = "([^"]+)"/.exec(serverConf)![1]!

async function until (what: string, cond: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

async function httpStatus (url: string): Promise<number> {
  return (await fetch(url)).status
}

/** Write `msg` on a live socket and resolve once the same bytes came back. */
function echoOn (sock: Socket, msg: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = ''
    const onData = (d: Buffer): void => { got += d.toString(); if (got.length >= msg.length) { sock.off('data', onData); resolve(got) } }
    sock.on('data', onData)
    sock.once('close', () => reject(new Error(`closed after ${JSON.stringify(got)}`)))
    sock.write(msg)
  })
}

const serialOf = async (pem: string): Promise<string> => new X509Certificate(await readFile(pem)).serialNumber

t.test('the Kubernetes manifests run as local processes: SPIRE → spiffe-helper → mesh-proxy web → db, and rotation', { skip, timeout: 150_000 }, async t => {
  // Short: UNIX socket paths are limited to 108 bytes.
  const root = await mkdtemp(join(tmpdir(), 'mp-k8s-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))

  // spire-server with the manifest's server.conf; only what needs a cluster is swapped.
  const port = await freePort()
  const serverSocket = join(root, 'server.sock')
  let sconf = serverConf.replaceAll('/run/spire/data', join(root, 'server-data'))
  sconf = replaceLine(sconf, /bind_address = "0\.0\.0\.0"/, 'bind_address = "127.0.0.1"')
  sconf = replaceLine(sconf, /bind_port = "8081"/, `bind_port = "${port}"`)
  sconf = replaceLine(sconf, /bind_port = "8080"/, `bind_port = "${await freePort()}"`)
  sconf = replaceLine(sconf, /socket_path = "[^"]+"/, `socket_path = "${serverSocket}"`)
  sconf = replaceLine(sconf, /^ {2}NodeAttestor "k8s_psat".*$/m, '  NodeAttestor "join_token" { plugin_data {} }')
  sconf = replaceLine(sconf, /^ {2}Notifier "k8sbundle".*\n/m, '')
  await writeFile(join(root, 'server.conf'), sconf)
  const server = spawnPeer(t, env.SPIRE_SERVER_BIN!, ['run', '-config', join(root, 'server.conf')])
  await server.waitFor(/Starting Server APIs.*network=unix|network=unix.*Starting Server APIs/)
  await server.waitFor(/Starting Server APIs.*network=tcp|network=tcp.*Starting Server APIs/)
  const cli = async (...args: string[]): Promise<string> => (await run(env.SPIRE_SERVER_BIN!, [...args, '-socketPath', serverSocket])).stdout

  // entries.json as register-entries.sh feeds it (stdin), k8s selectors swapped for the uid.
  const entries = JSON.parse(await readFile(join(K8S_DIR, 'spire', 'entries.json'), 'utf8')) as { entries: Obj[] }
  const nodeAlias = entries.entries.find(e => e.parent_id === `spiffe://${TD}/spire/server`)!
  for (const e of entries.entries) {
    if ((e.selectors as Obj[]).some(s => s.type === 'k8s')) {
      e.selectors = [{ type: 'unix', value: `uid:${process.getuid!()}` }]
      e.x509_svid_ttl = SVID_TTL_S
    }
  }
  const created = execFileSync(env.SPIRE_SERVER_BIN!, ['entry', 'create', '-data', '-', '-socketPath', serverSocket], { input: JSON.stringify(entries) }).toString()
  t.equal(created.match(/^Entry ID/gm)?.length, entries.entries.length, 'spire-server took every entry of entries.json')
  await writeFile(join(root, 'bootstrap-bundle.pem'), await cli('bundle', 'show'))
  const token = (await cli('token', 'generate', '-spiffeID', nodeAlias.spiffe_id as string)).match(/Token: (\S+)/)![1]!

  // spire-agent with the manifest's agent.conf; its socket on the "node" (hostPath) where the pods' volumes find it.
  const agentDs = find(spire, 'DaemonSet', 'spire-agent').spec.template.spec as Obj
  const agentSocket = layOutPod(root, 'spire-agent', { ...agentDs, volumes: (agentDs.volumes as Obj[]).filter(v => v.hostPath !== undefined) }, spire)('spire-agent')(/socket_path = "([^"]+)"/.exec(agentConf)![1]!)
  let aconf = replaceLine(agentConf, /socket_path = "[^"]+"/, `socket_path = "${agentSocket}"`)
  aconf = replaceLine(aconf, /data_dir = "\/run\/spire"/, `data_dir = "${join(root, 'agent-data')}"`)
  aconf = replaceLine(aconf, /server_address = "[^"]+"/, 'server_address = "127.0.0.1"')
  aconf = replaceLine(aconf, /server_port = "8081"/, `server_port = "${port}"`)
  aconf = replaceLine(aconf, /trust_bundle_path = "[^"]+"/, `trust_bundle_path = "${join(root, 'bootstrap-bundle.pem')}"`)
  aconf = replaceLine(aconf, /bind_address = "0\.0\.0\.0"/, 'bind_address = "127.0.0.1"')
  aconf = replaceLine(aconf, /bind_port = "9980"/, `bind_port = "${await freePort()}"`)
  aconf = replaceLine(aconf, /^ {2}NodeAttestor "k8s_psat".*$/m, '  NodeAttestor "join_token" { plugin_data {} }')
  aconf = replaceLine(aconf, /^ {2}WorkloadAttestor "k8s".*$/m, '  WorkloadAttestor "unix" { plugin_data {} }')
  await writeFile(join(root, 'agent.conf'), aconf)
  const agent = spawnPeer(t, env.SPIRE_AGENT_BIN!, ['run', '-config', join(root, 'agent.conf'), '-joinToken', token])
  await agent.waitFor(/Starting Workload and SDS APIs/)

  /** One pod: its volumes laid out, spiffe-helper with its args and helper.conf, then mesh-proxy with its args (+ `overrides`). */
  async function startPod (name: string, overrides: (local: (p: string) => string) => string[]): Promise<{ sink: LogSink, files: { cert: string, key: string, ca: string }, started: Record<string, unknown>, admin: string }> {
    const deploy = find(demo, 'Deployment', name)
    const spec = deploy.spec.template.spec as Obj
    const paths = layOutPod(root, name, spec, demo.filter(o => o.kind === 'ConfigMap' && o.metadata.namespace === deploy.metadata.namespace))

    const helper = container(spec, 'spiffe-helper')
    const helperPath = paths('spiffe-helper')
    const helperArgs = (helper.args as string[]).map(a => a.startsWith('/') ? helperPath(a) : a)
    const confFile = helperArgs[helperArgs.indexOf('-config') + 1]!
    const healthPort = await freePort()
    const helperConf = replaceLine(mapQuotedPaths(await readFile(confFile, 'utf8'), helperPath), /bind_port = \d+/, `bind_port = ${healthPort}`)
    await writeFile(confFile, helperConf)
    const h = spawnPeer(t, env.SPIFFE_HELPER_BIN!, helperArgs)
    await h.waitFor(/X\.509 certificates updated/)
    // The native sidecar's startupProbe: mesh-proxy starts once this says 200.
    t.equal(await httpStatus(`http://127.0.0.1:${healthPort}${helper.startupProbe.httpGet.path as string}`), 200, `${name}: spiffe-helper's startupProbe passes once the files are written`)

    const mp = container(spec, 'mesh-proxy')
    const mpPath = paths('mesh-proxy')
    const args = (mp.args as string[]).map(a => a.startsWith('/') ? mpPath(a) : a)
    const configFile = args[args.indexOf('--config') + 1]!
    const config = JSON.parse(await readFile(configFile, 'utf8')) as Record<string, unknown>
    for (const [k, v] of Object.entries(config)) if (typeof v === 'string' && v.startsWith('/')) config[k] = mpPath(v)
    await writeFile(configFile, JSON.stringify(config))
    const p = spawnCli(t, [...args, ...overrides(mpPath)])
    const started = await Promise.race([p.sink.waitFor(l => l.msg === 'sidecar started'), new Promise<never>((_resolve, reject) => p.child.once('exit', code => reject(new Error(`${name} mesh-proxy exited ${String(code)}: ${p.stderr()}`))))])
    const admin = String((await p.sink.waitFor(l => l.msg === 'admin listening')).admin)
    t.equal(await httpStatus(`http://${admin}${mp.readinessProbe.httpGet.path as string}`), 200, `${name}: mesh-proxy's readinessProbe passes`)
    return { sink: p.sink, files: { cert: config.cert as string, key: config.key as string, ca: config.ca as string }, started, admin }
  }

  const app = await startApp(t, echo) // stands for redis-server on 127.0.0.1:6379
  const db = await startPod('db', () => ['--listen', '127.0.0.1:0', '--to', `127.0.0.1:${app.port}`, '--admin', '127.0.0.1:0'])
  const dbPort = Number(String(db.started.inbound).split(' => ')[0]!.split(':').at(-1))
  const web = await startPod('web', () => ['--upstream', `db:0=127.0.0.1:${dbPort}`, '--admin', '127.0.0.1:0'])
  const upPort = Number(String((web.started.upstreams as string[])[0]).split(' => ')[0]!.split(':').at(-1))
  const idOf = (svc: string): string => entries.entries.find(e => e.hint === svc)!.spiffe_id as string
  t.equal(db.started.spiffeId, idOf('db'), 'db runs with the SVID of its entry')
  t.equal(web.started.spiffeId, idOf('web'), 'web runs with the SVID of its entry')
  t.equal(idOf('db'), `spiffe://${TD}/ns/mesh-demo/sa/db`, 'the entries are of the Kubernetes form (ns/<namespace>/sa/<ServiceAccount>), as mesh-proxy.json\'s identityForm says')

  t.equal(await echoRoundTrip(upPort, 'hello db'), 'hello db', 'bytes go web → db and back')
  // db's access log: the peer's SPIFFE ID as SPIRE issued it, and the service it maps to under the form (what the intention names).
  const closed = await db.sink.waitFor(l => l.msg === 'conn closed')
  t.match(closed, { peer: idOf('web'), source: 'mesh-demo/web', destination: 'mesh-demo/db' }, 'db took web\'s sa/web SVID as mesh-demo/web')

  /** The leaf db's public listener presents to a new connection (a fresh TLS client holding web's files, no session to resume). */
  const dbLeafNow = async (): Promise<string> => {
    const [cert, key, ca] = await Promise.all([readFile(web.files.cert), readFile(web.files.key), readFile(web.files.ca)])
    return await new Promise((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port: dbPort, cert, key, ca, checkServerIdentity: () => undefined }, () => { resolve(s.getPeerX509Certificate()!.serialNumber); s.destroy() })
      s.once('error', reject)
    })
  }

  const live = connect(upPort, '127.0.0.1')
  await new Promise(resolve => live.once('connect', resolve))
  t.equal(await echoOn(live, 'before'), 'before', 'a live connection through web → db')
  const leaf0 = await dbLeafNow()
  const marks = { db: db.sink.lines.length, web: web.sink.lines.length }
  const reloadedSince = (side: { sink: LogSink }, mark: number): Array<Record<string, unknown>> => side.sink.lines.slice(mark).filter(l => l.msg === 'certificates reloaded')
  await until('both sidecars to take up a rotated SVID', () => reloadedSince(db, marks.db).length > 0 && reloadedSince(web, marks.web).length > 0, 60_000)
  t.comment(`reloaded: db ${JSON.stringify(reloadedSince(db, marks.db).map(l => l.serial))}, web ${JSON.stringify(reloadedSince(web, marks.web).map(l => l.serial))}`)

  t.equal(await echoOn(live, 'after rotation'), 'after rotation', 'the live connection keeps flowing across the rotation of both leaves')
  let leaf1 = ''
  let fileLeaf = ''
  // The files may rotate again between the two reads: read until they agree.
  await until('a probe and db\'s file to agree', async () => { leaf1 = await dbLeafNow(); fileLeaf = await serialOf(db.files.cert); return leaf1 === fileLeaf }, 20_000)
  t.not(leaf1, leaf0, 'a new connection to db gets a new leaf')
  t.equal(leaf1, fileLeaf, 'the one spiffe-helper wrote last')
  t.equal(await echoRoundTrip(upPort, 'new conn'), 'new conn', 'a new connection web → db with the rotated leaves')
  t.equal(db.sink.lines.filter(l => l.msg === 'conn rejected').length, 0, 'db rejected no handshake')
  // spiffe-helper writes its three files one after the other: a half-written set is kept out, not a failure.
  t.comment(`half-written sets kept out: ${[...db.sink.lines, ...web.sink.lines].filter(l => l.msg === 'certificate reload failed; keeping the current certificates').length}`)
  live.destroy()
})
