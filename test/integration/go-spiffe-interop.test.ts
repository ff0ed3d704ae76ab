// Why: SPIRE-based workloads use go-spiffe, the SPIFFE reference library, and
// it is the strictest reader of X509-SVIDs and Consul-form SPIFFE IDs there is.
// A go-spiffe client must reach a mesh-proxy inbound and a mesh-proxy outbound
// a go-spiffe server, each side authorizing the other's exact ID
// (tlsconfig.AuthorizeID), with bytes intact (sha256). Real CAs issue leaves
// from an intermediate: one variant builds root -> intermediate -> leaf with the
// openssl CLI (not our CA code), the bundle holding the root only and each
// leaf PEM carrying leaf + intermediate. The peers come from
// test/peers/install.sh; without them the file skips, and fails under CI=true.
import t, { type Test } from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { makeMesh, startApp, startSidecar, echo, echoSha, TD, type TestSidecar } from '../helpers/mesh.js'
import { opensslPki } from '../helpers/openssl-pki.js'
import { consulServiceId } from '../../src/core/identity/spiffe-id.js'
import { needPeers, spawnPeer } from '../peers/peers.js'

const { env, skip } = needPeers(t, ['GO_SPIFFE_SERVER', 'GO_SPIFFE_CLIENT'])
const idOf = (service: string): string => consulServiceId({ trustDomain: TD, datacenter: 'dc1', service }).uri

/** PEM files of one workload: leaf (+ intermediates), PKCS#8 key, and the trust bundle. */
interface Files { cert: string, key: string, ca: string }

/** The go-spiffe echo server with `files`, authorizing `peerId`; resolves with its port once listening. */
async function goServer (t: Test, files: Files, peerId: string): Promise<{ port: number, stderr: () => string }> {
  const p = spawnPeer(t, env.GO_SPIFFE_SERVER!, ['-listen', '127.0.0.1:0', '-svid', files.cert, '-key', files.key, '-bundle', files.ca, '-authorize', peerId])
  const m = await p.waitFor(/listening 127\.0\.0\.1:(\d+)/)
  return { port: Number(m[1]), stderr: p.stderr }
}

/** The go-spiffe client sends `size` random bytes to `port`, authorizing `peerId`, and reports both sha256s. */
async function goClient (t: Test, files: Files, peerId: string, port: number, size: number): Promise<{ code: number | null, result?: { sent: number, sentSha256: string, received: number, receivedSha256: string }, stderr: string }> {
  const p = spawnPeer(t, env.GO_SPIFFE_CLIENT!, ['-connect', `127.0.0.1:${port}`, '-servername', `db.default.dc1.internal.${TD}`, '-svid', files.cert, '-key', files.key, '-bundle', files.ca, '-authorize', peerId, '-send', String(size)])
  const { code } = await p.exited
  const out = p.stdout().trim()
  return { code, stderr: p.stderr(), ...(code === 0 && out !== '' ? { result: JSON.parse(out) } : {}) }
}


const MiB = 1024 * 1024

/** Both directions with a given set of files for web and db. */
function bothDirections (label: string, setup: (t: Test) => Promise<{ web: Files, db: Files }>): void {
  t.test(`${label}: go-spiffe client (web) -> mesh-proxy inbound (db)`, { skip }, async t => {
    const { web, db } = await setup(t)
    const intentions = join(t.testdirName, 'files-intentions.json')
    await writeFile(intentions, JSON.stringify({ intentions: [{ source: 'web', destination: 'db', action: 'allow' }] }))
    const app = await startApp(t, echo)
    const side = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, ...db, intentions })
    const r = await goClient(t, web, idOf('db'), side.addrs.inbound!.port, 2 * MiB)
    t.equal(r.code, 0, `go-spiffe's client authorized db and finished (${r.stderr.trim() || 'no error'})`)
    t.equal(r.result?.received, 2 * MiB, 'every byte came back')
    t.equal(r.result?.receivedSha256, r.result?.sentSha256, 'sha256 of the echo equals sha256 of what was sent')
    const line = await side.sink.waitFor(l => l.msg === 'conn closed' || l.msg === 'conn rejected')
    if (line.msg !== 'conn closed') t.comment(`db logged: ${JSON.stringify(line)}`)
    t.match(line, { msg: 'conn closed', source: 'web', intention: 'web => db' }, 'db identified the go-spiffe client as web')
    await side.stop()
  })

  t.test(`${label}: mesh-proxy outbound (web) -> go-spiffe server (db)`, { skip }, async t => {
    const { web, db } = await setup(t)
    const server = await goServer(t, db, idOf('web'))
    const side = await startSidecar(t, { service: 'web', upstream: [`db:0=127.0.0.1:${server.port}`], ...web })
    const r = await echoSha(side.addrs.upstreams.get('db')!.port, 2 * MiB)
    t.equal(r.receivedBytes, 2 * MiB, 'every byte came back')
    t.equal(r.received, r.sent, 'sha256 of the echo equals sha256 of what was sent')
    const line = await side.sink.waitFor(l => l.msg === 'conn closed' || l.msg === 'conn refused')
    if (line.msg !== 'conn closed') t.comment(`web logged: ${JSON.stringify(line)}`)
    t.match(line, { msg: 'conn closed', peer: idOf('db') }, 'web verified the go-spiffe server as db')
    t.match(server.stderr(), new RegExp(`accepted ${idOf('web').replace(/[.]/g, '\\.')}`), 'go-spiffe\'s server authorized web')
    await side.stop()
  })
}

/** Leaves from our own CA (test/helpers/mesh.ts), as a mesh dir holds them. */
async function meshFiles (t: Test): Promise<{ web: Files, db: Files }> {
  const mesh = await makeMesh(t, ['web', 'db'])
  const files = (s: string): Files => ({ cert: mesh.layout.certFor(s), key: mesh.layout.keyFor(s), ca: mesh.layout.bundle })
  return { web: files('web'), db: files('db') }
}

/** root -> intermediate -> leaves, made by the openssl CLI (test/helpers/openssl-pki.ts); the bundle is the root alone. */
async function opensslChainFiles (t: Test): Promise<{ web: Files, db: Files }> {
  const pki = opensslPki(t)
  const root = await pki.root('root')
  const mid = await pki.signCa(root, 'intermediate')
  const leaf = async (service: string): Promise<Files> => {
    const l = await pki.leaf(mid, service, [mid])
    if (!pki.verify(l, root.cert, [mid])) throw new Error(`openssl verify refused ${service}'s chain`)
    return { cert: l.cert, key: l.key, ca: root.cert }
  }
  return { web: await leaf('web'), db: await leaf('db') }
}

bothDirections('leaves of our CA', meshFiles)
bothDirections('leaves under an openssl intermediate', opensslChainFiles)

t.test('go-spiffe refuses a mesh-proxy that is not the ID it authorizes', { skip }, async t => {
  const { web, db } = await meshFiles(t)
  const intentions = join(t.testdirName, 'files-intentions.json')
  await writeFile(intentions, JSON.stringify({ intentions: [{ source: 'web', destination: 'db', action: 'allow' }] }))
  const app = await startApp(t, echo)
  const side: TestSidecar = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, ...db, intentions })
  const r = await goClient(t, web, idOf('cache'), side.addrs.inbound!.port, 16)
  t.equal(r.code, 1, 'the client exits 1')
  t.match(r.stderr, /unexpected ID/, `go-spiffe names the mismatch: ${r.stderr.trim()}`)
  t.equal(app.accepted(), 0, 'no byte reached db\'s app')
  await side.stop()
})
