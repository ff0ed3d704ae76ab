// Why: a control plane is one implementation of plane/types.ts, and the
// sidecar wires every plane the same way. A plane written here, in the test,
// in memory (no files, no agent) gets what the three built-in ones get: its
// TLS generations reach new handshakes, a new intention table is logged and
// enforced, readiness says why while it starts, close() reaches it once.
import t from 'tap'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import { once } from 'node:events'
import { makeMesh, startApp, echo, captureLogger, type TestMesh } from '../helpers/mesh.js'
import { resolveConfig } from '../../src/core/config/resolve.js'
import { Cell } from '../../src/core/watched.js'
import { parseOwnSvid } from '../../src/core/identity/svid.js'
import { bundleFromPem } from '../../src/core/identity/bundle.js'
import { compileAuthorizer, validateIntentionsDoc } from '../../src/core/intentions/table.js'
import { buildTlsState, type TlsState } from '../../src/tls/context.js'
import { Sidecar } from '../../src/sidecar/sidecar.js'
import type { ControlPlane, IntentionsState } from '../../src/plane/types.js'

class MemoryPlane implements ControlPlane {
  readonly mode = 'memory'
  readonly tls = new Cell<TlsState>('certificates')
  readonly intentions = new Cell<IntentionsState>('intentions')
  readonly resolver = null
  notReadyReason: string | undefined = 'memory: waiting for the test'
  closes = 0
  readonly #loaded: Promise<void>
  #release = (): void => {}
  constructor () { this.#loaded = new Promise(resolve => { this.#release = resolve }) }
  load (tls: TlsState, intentions: IntentionsState): void {
    this.tls.set(tls)
    this.intentions.set(intentions)
    this.notReadyReason = undefined
    this.#release()
  }
  async start (): Promise<void> { await this.#loaded }
  async reload (): Promise<void> {}
  close (): void { this.closes++ }
}

async function tlsFor (mesh: TestMesh, service: string): Promise<TlsState> {
  const leaf = await mesh.leaf(service)
  return buildTlsState(parseOwnSvid(leaf.certPem, leaf.keyPem, { cert: 'test', key: 'test' }), bundleFromPem(mesh.ca.certPem, 'x', 'test'))
}

function table (action: 'allow' | 'deny', index: number): IntentionsState {
  const doc = validateIntentionsDoc({ index, defaultPolicy: 'deny', intentions: [{ source: 'web', destination: 'db', action }] }, 'test')
  return { doc, authorize: compileAuthorizer(doc, { namespace: 'default', name: 'db' }) }
}

/** A client of ours, as web: the server's leaf serial and an echo. */
async function asWeb (mesh: TestMesh, port: number, web: TlsState): Promise<{ sock: TLSSocket, fingerprint: string }> {
  const sock = tlsConnect({ host: '127.0.0.1', port, secureContext: web.clientContext, servername: 'db', checkServerIdentity: () => undefined })
  sock.on('error', () => {})
  await once(sock, 'secureConnect')
  sock.write('ping')
  await once(sock, 'data')
  return { sock, fingerprint: sock.getPeerX509Certificate()!.fingerprint256 }
}

t.test('a plane of our own: TLS swaps, intention changes, readiness and close go through the one wiring', async t => {
  const mesh = await makeMesh(t)
  const app = await startApp(t, echo)
  const plane = new MemoryPlane()
  const config = resolveConfig({ flags: { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, meshDir: '/not/used', enforceOnChange: true, admin: 'off' }, env: {}, file: null })
  const { logger, sink } = captureLogger()
  const sidecar = new Sidecar({ config, logger, plane: () => plane })
  t.teardown(() => sidecar.destroy())
  const started = sidecar.start()
  await new Promise(resolve => setImmediate(resolve))
  t.match(sidecar.status(), { state: 'starting', ready: false, reason: 'memory: waiting for the test' }, 'readiness says the plane\'s reason')
  const web = await tlsFor(mesh, 'web')
  const first = await tlsFor(mesh, 'db')
  plane.load(first, table('allow', 1))
  const addrs = await started
  t.match(sink.msgs('sidecar started')[0], { mode: 'memory', spiffeId: first.svid.id.uri })
  const port = addrs.inbound!.port

  const a = await asWeb(mesh, port, web)
  t.equal(a.fingerprint, first.svid.chain[0]!.fingerprint256, 'the first generation serves')
  const second = await tlsFor(mesh, 'db')
  plane.tls.set(second)
  const b = await asWeb(mesh, port, web)
  t.equal(b.fingerprint, second.svid.chain[0]!.fingerprint256, 'a new generation serves new handshakes')
  t.equal(sidecar.connections, 2, 'the live connection of the old generation is kept')

  const reloaded = sink.waitForNext(l => l.msg === 'intentions reloaded')
  plane.intentions.set(table('deny', 2))
  t.match(await reloaded, { version: 2, intentions: 1, defaultPolicy: 'deny', closedConnections: 2 })
  await Promise.all([a.sock, b.sock].map(async s => { if (!s.closed) await new Promise(resolve => s.on('close', resolve)) })) // (a reset: once() would reject on its error)
  t.equal(sink.msgs('conn closed').filter(l => l.reason === 'revoked').length, 2, 'both closed as revoked')

  await sidecar.close()
  await sidecar.close()
  t.equal(plane.closes, 1, 'close() reaches the plane once')
  t.equal(sidecar.status().state, 'stopped')
})

t.test('a plane whose start fails: nothing stays open, the reason is kept', async t => {
  const plane = new MemoryPlane()
  plane.start = async () => { throw new Error('memory: no certificates') }
  const config = resolveConfig({ flags: { service: 'web', upstream: ['db:0=127.0.0.1:1'], meshDir: '/not/used', admin: 'off' }, env: {}, file: null })
  const { logger } = captureLogger()
  const sidecar = new Sidecar({ config, logger, plane: () => plane })
  await t.rejects(sidecar.start(), /memory: no certificates/)
  t.match(sidecar.status(), { state: 'stopped', ready: false })
  t.equal(plane.closes, 1, 'the plane was closed')
  t.equal(sidecar.connections, 0)
})

