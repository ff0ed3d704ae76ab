/**
 * `mesh-proxy demo --datacenters 2`: web in dc1 reaches db in dc2 through
 * both datacenters' mesh gateways, on loopback, in one process. The two
 * mesh dirs share the dev CA and trust domain (as Consul's WAN-federated
 * datacenters share the primary's CA); each has its own catalog. The
 * gateways are given no certificate and no key.
 */
import { connect, createServer, type Server, type AddressInfo } from 'node:net'
import { once } from 'node:events'
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino, type Logger } from 'pino'
import { Writable } from 'node:stream'
import { resolveConfig } from '../core/config/resolve.js'
import { DEFAULT_TIMEOUTS } from '../core/config/defaults.js'
import type { HostPort } from '../core/config/types.js'
import { Sidecar } from '../sidecar/sidecar.js'
import { MeshGateway } from '../gateway/mesh.js'
import { MeshCatalog } from '../meshdir/catalog.js'
import { seedMeshDir } from '../meshdir/seed.js'
import { gatewaysFile } from '../meshdir/gateways.js'
import { meshLayout, readMeshSettings, writeMeshSettings } from '../meshdir/layout.js'
import { noopMetrics } from '../metrics/metrics.js'

type Say = (line: string) => void

/** Log lines kept in memory, to quote what the sidecars verified. */
class Lines extends Writable {
  readonly lines: Array<Record<string, unknown>> = []
  override _write (chunk: Buffer, _e: string, cb: () => void): void {
    for (const l of chunk.toString().split('\n')) if (l !== '') this.lines.push(JSON.parse(l) as Record<string, unknown>)
    cb()
  }
}

/** dc2's mesh dir beside dc1's: the same CA, bundle and intentions, datacenter dc2, its own catalog. */
async function secondDatacenter (dc1: string, dc2: string): Promise<void> {
  const a = meshLayout(dc1)
  const b = meshLayout(dc2)
  await seedMeshDir(dc2, { force: true }) // the dev CA and intentions; its leaves are dc1's and replaced below
  await writeMeshSettings(b, { ...await readMeshSettings(a), datacenter: 'dc2' })
  // db's leaf there must say dc/dc2: removed, so that db's sidecar issues itself one from the dev CA.
  await rm(b.certFor('db'), { force: true })
  await rm(b.keyFor('db'), { force: true })
  await copyFile(a.intentions, b.intentions)
}

/** Run the two-datacenter demo; resolves with the exit code. */
export async function runTwoDatacenterDemo (say: Say, verbose: boolean): Promise<number> {
  const root = await mkdtemp(join(tmpdir(), 'mesh-proxy-demo-dc-'))
  const stack: Array<() => Promise<void>> = []
  const tap = new Lines()
  const logger = pino({ level: 'debug' }, verbose ? pino.multistream([{ stream: tap, level: 'debug' }, { stream: process.stderr, level: 'debug' }]) : tap)
  try {
    const dc1 = join(root, 'dc1')
    const dc2 = join(root, 'dc2')
    await seedMeshDir(dc1)
    await secondDatacenter(dc1, dc2)
    say(`mesh dirs: ${dc1} (dc1) and ${dc2} (dc2), one dev CA and trust domain, a catalog each`)
    const appPort = await dbApp(stack)
    const db = await sidecar(stack, logger, { service: 'db', meshDir: dc2, listen: '127.0.0.1:0', to: `127.0.0.1:${appPort}` })
    const gw2 = await gateway(stack, logger, 'dc2', meshLayout(dc2).catalog, new Map())
    const gw1 = await gateway(stack, logger, 'dc1', meshLayout(dc1).catalog, new Map([['dc2', [gw2]]]))
    // Where each datacenter's gateways are; web's upstream db is in dc2, reached through dc1's gateway (mode local).
    await writeFile(gatewaysFile(dc1), JSON.stringify({ dc1: [`127.0.0.1:${gw1.port}`], dc2: [`127.0.0.1:${gw2.port}`] }) + '\n')
    const web = await sidecar(stack, logger, { service: 'web', meshDir: dc1, upstream: ['db:0'], upstreamDc: ['db=dc2'] })
    say(`dc2: db app on 127.0.0.1:${appPort}, db sidecar on ${db.inbound!.host}:${db.inbound!.port}, mesh gateway on 127.0.0.1:${gw2.port}`)
    say(`dc1: mesh gateway on 127.0.0.1:${gw1.port} (dc2 through 127.0.0.1:${gw2.port}), web sidecar: upstream db (--upstream-dc db=dc2) on 127.0.0.1:${web.upstreams.get('db')!.port}`)
    say('')
    const reply = await exchange(web.upstreams.get('db')!.port, 'hello from web in dc1')
    const ok = reply.startsWith('db: got "hello from web in dc1"')
    say(ok ? `OK   web (dc1) -> gateway dc1 -> gateway dc2 -> db (dc2): db answered: ${reply.trim()}` : `FAIL web (dc1) -> db (dc2): unexpected answer ${JSON.stringify(reply)}`)
    const inbound = tap.lines.find(l => l.msg === 'conn opened' && l.listener === 'inbound')
    const outbound = tap.lines.find(l => l.msg === 'conn opened' && l.listener === 'outbound')
    if (inbound !== undefined) say(`     end to end mTLS: db's sidecar verified ${String(inbound.peer)}, intention "${String(inbound.intention)}"`)
    if (outbound !== undefined) say(`     and web's sidecar verified ${String(outbound.peer)}`)
    say('     the gateways routed by SNI and hold no certificate and no key: they never saw the plaintext')
    return ok ? 0 : 1
  } finally {
    for (const close of stack.reverse()) await close()
    await rm(root, { recursive: true, force: true })
  }
}

async function dbApp (stack: Array<() => Promise<void>>): Promise<number> {
  const app: Server = createServer(s => {
    s.once('data', d => { s.end(`db: got "${d.toString().trim()}" (${d.length} bytes)\n`) })
    s.on('error', () => {})
  })
  app.listen(0, '127.0.0.1')
  await once(app, 'listening')
  stack.push(() => new Promise(resolve => app.close(() => resolve())))
  return (app.address() as AddressInfo).port
}

async function sidecar (stack: Array<() => Promise<void>>, logger: Logger, flags: Record<string, unknown>): Promise<Awaited<ReturnType<Sidecar['start']>>> {
  const sc = new Sidecar({ config: resolveConfig({ flags, env: {}, file: null }), logger: logger.child({ sidecar: String(flags.service) }), metrics: noopMetrics })
  stack.push(() => sc.close())
  return await sc.start()
}

async function gateway (stack: Array<() => Promise<void>>, logger: Logger, dc: string, catalogDir: string, remote: Map<string, HostPort[]>): Promise<HostPort> {
  const resolver = new MeshCatalog(catalogDir)
  const gw = new MeshGateway({ listen: { host: '127.0.0.1', port: 0 }, datacenter: dc, trustDomain: (await readMeshSettings(meshLayout(join(catalogDir, '..')))).trustDomain, resolver, remoteGateways: remote, timeouts: DEFAULT_TIMEOUTS, logger: logger.child({ gateway: dc }) })
  stack.push(async () => { await gw.close(); resolver.close() })
  return await gw.start()
}

async function exchange (port: number, text: string): Promise<string> {
  const s = connect({ host: '127.0.0.1', port })
  let got = ''
  s.on('data', (d: Buffer) => { got += d.toString() })
  s.on('error', () => {})
  s.write(text + '\n')
  await new Promise(resolve => s.once('close', resolve))
  return got
}
