/**
 * `mesh-proxy demo`: a whole mesh on loopback, in one process, seeded from
 * certs-dev/. A db app with its sidecar, web and billing sidecars with db as an
 * upstream; web's bytes reach db over mTLS, billing is refused by a deny
 * intention, and the terminal says so in plain words. `--keep` leaves it
 * running until SIGINT/SIGTERM (demo-keep.ts).
 */
import { connect, createServer, type Server, type AddressInfo } from 'node:net'
import { once } from 'node:events'
import { Writable } from 'node:stream'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino, type Logger } from 'pino'
import { resolveConfig } from '../core/config/resolve.js'
import { Sidecar, type SidecarAddresses } from '../sidecar/sidecar.js'
import { MetricsRegistry } from '../metrics/metrics.js'
import { AdminServer, sidecarView } from '../admin/server.js'
import { seedMeshDir } from '../meshdir/seed.js'
import type { HostPort } from '../core/config/types.js'
import { ERR, ListenError, MeshProxyError } from '../core/errors.js'
import { runTwoDatacenterDemo } from './demo-dc.js'
import { adminAt, printKeep, untilSignal, type DemoMesh } from './demo-keep.js'

/** Keeps JSON log lines in memory and lets the demo wait for one. */
class LogTap extends Writable {
  readonly lines: Array<Record<string, unknown>> = []
  readonly #echo: boolean
  constructor (echo: boolean) { super(); this.#echo = echo }
  override _write (chunk: Buffer, _e: string, cb: () => void): void {
    for (const l of chunk.toString().split('\n')) if (l !== '') this.lines.push(JSON.parse(l) as Record<string, unknown>)
    if (this.#echo) process.stderr.write(chunk)
    cb()
  }
}

/** Options of the demo command. */
export interface DemoOptions {
  keep?: boolean
  meshDir?: string
  seedOnly?: boolean
  /** Seed --mesh-dir even when it holds a CA or keys. */
  force?: boolean
  verbose?: boolean
  /** With keep: db's admin port, web's and billing's the next two; 0 = any free port (default 19000). */
  adminPort?: string
  /** `2`: web in dc1 reaches db in dc2 through two mesh gateways (demo-dc.ts). */
  datacenters?: string
  out?: (line: string) => void
}

type Say = (line: string) => void

/** Run the demo; resolves with the exit code (0 when everything behaved as intended). */
export async function runDemo (opts: DemoOptions = {}): Promise<number> {
  const say: Say = opts.out ?? ((l: string) => { process.stdout.write(l + '\n') })
  if (opts.datacenters !== undefined && opts.datacenters !== '1') return await twoDatacenters(opts, say)
  const temp = opts.meshDir === undefined
  // Validate before anything is written or bound.
  const adminBase = opts.keep === true ? adminAt(opts.adminPort) : undefined
  const dir = opts.meshDir ?? await mkdtemp(join(tmpdir(), 'mesh-proxy-demo-'))
  const stack: Array<() => Promise<void>> = []
  // Registered now, so that a Ctrl-C while the mesh comes up still stops it and removes a temporary dir.
  const signal = opts.keep === true ? untilSignal() : undefined
  let stopping = false
  try {
    await seedMeshDir(dir, { force: opts.force === true })
    say(`mesh dir: ${dir} (seeded from certs-dev/: dev CA, leaves for web, db, billing, intentions)`)
    if (opts.seedOnly === true) return 0
    const tap = new LogTap(opts.verbose === true)
    const mesh = await startMesh(dir, pino({ level: 'debug' }, tap), stack, adminBase)
    say(`db app (plain TCP) on 127.0.0.1:${mesh.appPort}`)
    say(`db sidecar: mTLS on ${mesh.db.inbound!.host}:${mesh.db.inbound!.port} -> db app, registered in the mesh dir catalog`)
    say(`web sidecar: upstream db on 127.0.0.1:${mesh.webPort}; billing sidecar: upstream db on 127.0.0.1:${mesh.billingPort}`)
    say('')
    const ok = await showAllowAndDeny(mesh, tap, say)
    say('')
    if (signal !== undefined) {
      printKeep(mesh, { temp }, say)
      say(`stopping (${await signal.received}): closing the sidecars and the db app`)
      stopping = true
    }
    return ok ? 0 : 1
  } finally {
    signal?.dispose()
    for (const close of stack.reverse()) await close()
    if (temp) await rm(dir, { recursive: true, force: true })
    if (stopping) say(temp ? `removed the temporary mesh dir ${dir} (its CA key with it); stopped` : `kept the mesh dir ${dir}; stopped`)
  }
}

/** `--datacenters 2`, on its own: it brings its own temporary mesh dirs. */
async function twoDatacenters (opts: DemoOptions, say: Say): Promise<number> {
  if (opts.datacenters !== '2') throw new MeshProxyError(ERR.USAGE, `--datacenters: ${JSON.stringify(opts.datacenters)} is not 1 or 2`)
  const other = (['keep', 'meshDir', 'seedOnly', 'adminPort'] as const).find(k => opts[k] !== undefined)
  if (other !== undefined) throw new MeshProxyError(ERR.USAGE, `--datacenters 2 runs in temporary mesh dirs and stops when done; it does not take --${other.replace(/[A-Z]/g, c => '-' + c.toLowerCase())}`)
  return await runTwoDatacenterDemo(say, opts.verbose === true)
}

/** The db app, db's sidecar, web's and billing's; with `adminBase` an admin endpoint each. */
async function startMesh (dir: string, logger: Logger, stack: Array<() => Promise<void>>, adminBase: number | undefined): Promise<DemoMesh & { appConns: () => number }> {
  let appConns = 0
  const app = createServer(s => {
    appConns++
    s.once('data', d => { s.end(`db: got "${d.toString().trim()}" (${d.length} bytes)\n`) })
    s.on('error', () => {})
  })
  app.listen(0, '127.0.0.1')
  await once(app, 'listening')
  stack.push(() => closeServer(app))
  const appPort = (app.address() as AddressInfo).port
  const admins = new Map<string, HostPort>()
  const start = async (n: number, flags: Record<string, unknown>): Promise<SidecarAddresses> => {
    const service = String(flags.service)
    const metrics = new MetricsRegistry()
    const log = logger.child({ sidecar: service })
    const sc = new Sidecar({ config: resolveConfig({ flags: { meshDir: dir, ...flags }, env: {}, file: null }), logger: log, metrics })
    if (adminBase !== undefined) {
      const admin = new AdminServer({ view: sidecarView(sc, metrics), logger: log })
      const at = { host: '127.0.0.1', port: adminBase === 0 ? 0 : adminBase + n }
      admins.set(service, await admin.start(at).catch((err: unknown) => {
        throw err instanceof ListenError ? new ListenError('--admin-port', `${service}'s admin ${err.message.replace(/^--admin: cannot listen: /, '')} (--admin-port 0 takes any free ports)`, err) : err
      }))
      stack.push(() => admin.close())
    }
    const addrs = await sc.start()
    stack.push(() => sc.close())
    return addrs
  }
  const db = await start(0, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${appPort}` })
  const web = await start(1, { service: 'web', upstream: ['db:0'] })
  const billing = await start(2, { service: 'billing', upstream: ['db:0'] })
  return { dir, appPort, db, webPort: web.upstreams.get('db')!.port, billingPort: billing.upstreams.get('db')!.port, admins, appConns: () => appConns }
}

async function showAllowAndDeny (mesh: DemoMesh & { appConns: () => number }, tap: LogTap, say: Say): Promise<boolean> {
  const webReply = await exchange(mesh.webPort, 'hello from web')
  const opened = tap.lines.find(l => l.msg === 'conn opened' && l.sidecar === 'db')
  const webOk = webReply.startsWith('db: got "hello from web"')
  say(webOk ? `OK   web -> db: sent "hello from web", db answered: ${webReply.trim()}` : `FAIL web -> db: unexpected answer ${JSON.stringify(webReply)}`)
  if (opened !== undefined) say(`     over mTLS: db's sidecar verified ${String(opened.peer)} and allowed it by intention "${String(opened.intention)}"`)

  const connsBefore = mesh.appConns()
  const billingReply = await exchange(mesh.billingPort, 'hello from billing')
  const denied = await waitLine(tap, l => l.msg === 'conn denied' && l.source === 'billing')
  const billingOk = billingReply === '' && denied !== undefined && mesh.appConns() === connsBefore
  say(billingOk ? 'OK   billing -> db: refused; db app received nothing' : `FAIL billing -> db: expected a refusal, got ${JSON.stringify(billingReply)}`)
  if (denied !== undefined) say(`     decided by intention "${String(denied.intention)}" (precedence ${String(denied.precedence)}): ${String(denied.reason)}`)
  return webOk && billingOk
}

async function exchange (port: number, text: string): Promise<string> {
  const s = connect({ host: '127.0.0.1', port })
  let got = ''
  s.on('data', (d: Buffer) => { got += d.toString() })
  s.on('error', () => {}) // a refusal is a reset: what came back until then is the answer
  s.write(text + '\n')
  await new Promise(resolve => s.once('close', resolve))
  return got
}

async function waitLine (tap: LogTap, pred: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown> | undefined> {
  for (let i = 0; i < 100; i++) {
    const hit = tap.lines.find(pred)
    if (hit !== undefined) return hit
    await new Promise(resolve => setImmediate(resolve))
  }
  return undefined
}

function closeServer (s: Server): Promise<void> {
  return new Promise(resolve => s.close(() => resolve()))
}
