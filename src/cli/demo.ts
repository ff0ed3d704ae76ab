/**
 * `mesh-proxy demo`: a whole mesh on loopback, in one process, seeded from
 * certs-dev/. A db app with its sidecar, web and billing sidecars with db as an
 * upstream; web's bytes reach db over mTLS, billing is refused by a deny
 * intention, and the terminal says so in plain words.
 */
import { connect, createServer, type Server, type AddressInfo } from 'node:net'
import { once } from 'node:events'
import { Writable } from 'node:stream'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino, type Logger } from 'pino'
import { resolveConfig } from '../core/config/resolve.js'
import { Sidecar } from '../sidecar/sidecar.js'
import { seedMeshDir } from '../meshdir/seed.js'

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
  out?: (line: string) => void
}

/** Run the demo; resolves with the exit code (0 when everything behaved as intended). */
export async function runDemo (opts: DemoOptions = {}): Promise<number> {
  const say = opts.out ?? ((l: string) => { process.stdout.write(l + '\n') })
  const dir = opts.meshDir ?? await mkdtemp(join(tmpdir(), 'mesh-proxy-demo-'))
  await seedMeshDir(dir, { force: opts.force === true })
  say(`mesh dir: ${dir} (seeded from certs-dev/: dev CA, leaves for web, db, billing, intentions)`)
  if (opts.seedOnly === true) return 0
  const tap = new LogTap(opts.verbose === true)
  const logger: Logger = pino({ level: 'debug' }, tap)
  const stack: Array<() => Promise<void>> = []
  try {
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
    say(`db app (plain TCP) on 127.0.0.1:${appPort}`)
    const start = async (flags: Record<string, unknown>): Promise<Awaited<ReturnType<Sidecar['start']>>> => {
      const sc = new Sidecar({ config: resolveConfig({ flags: { meshDir: dir, ...flags }, env: {}, file: null }), logger: logger.child({ sidecar: flags.service }) })
      const addrs = await sc.start()
      stack.push(() => sc.close())
      return addrs
    }
    const db = await start({ service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${appPort}` })
    say(`db sidecar: mTLS on ${db.inbound!.host}:${db.inbound!.port} -> db app, registered in the mesh dir catalog`)
    const web = await start({ service: 'web', upstream: ['db:0'] })
    const billing = await start({ service: 'billing', upstream: ['db:0'] })
    const webPort = web.upstreams.get('db')!.port
    const billingPort = billing.upstreams.get('db')!.port
    say(`web sidecar: upstream db on 127.0.0.1:${webPort}; billing sidecar: upstream db on 127.0.0.1:${billingPort}`)
    say('')

    const webReply = await exchange(webPort, 'hello from web')
    const opened = tap.lines.find(l => l.msg === 'conn opened' && l.sidecar === 'db')
    const webOk = webReply.startsWith('db: got "hello from web"')
    say(webOk ? `OK   web -> db: sent "hello from web", db answered: ${webReply.trim()}` : `FAIL web -> db: unexpected answer ${JSON.stringify(webReply)}`)
    if (opened !== undefined) say(`     over mTLS: db's sidecar verified ${String(opened.peer)} and allowed it by intention "${String(opened.intention)}"`)

    const connsBefore = appConns
    const billingReply = await exchange(billingPort, 'hello from billing')
    const denied = await waitLine(tap, l => l.msg === 'conn denied' && l.source === 'billing')
    const billingOk = billingReply === '' && denied !== undefined && appConns === connsBefore
    say(billingOk ? 'OK   billing -> db: refused; db app received nothing' : `FAIL billing -> db: expected a refusal, got ${JSON.stringify(billingReply)}`)
    if (denied !== undefined) say(`     decided by intention "${String(denied.intention)}" (precedence ${String(denied.precedence)}): ${String(denied.reason)}`)
    say('')
    if (opts.keep === true) {
      say(`Mesh running (--keep). Try: printf 'hi\\n' | nc 127.0.0.1 ${webPort}   Ctrl-C to stop.`)
      await new Promise<void>(resolve => { process.once('SIGINT', resolve); process.once('SIGTERM', resolve) })
    }
    return webOk && billingOk ? 0 : 1
  } finally {
    for (const close of stack.reverse()) await close()
    if (opts.meshDir === undefined && opts.keep !== true) await rm(dir, { recursive: true, force: true })
  }
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
