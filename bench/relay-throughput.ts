/**
 * Relay throughput over loopback: one TCP stream of --size bytes pushed
 * client -> outbound sidecar -> mTLS (TLS 1.3, ECDSA P-256) -> inbound sidecar
 * -> sink, for each of: no proxy (the loopback ceiling), the naive Node pipe()
 * pair, and mesh-proxy (real SVID checks and intention decision on). Each
 * proxy runs as its own process, as in production. Reports MB/s (median of
 * --runs, with min-max) and the proxies' CPU seconds per GB (user+sys from
 * /proc).
 *
 *   npm run build && node dist/bench/relay-throughput.js [--size-mb 1024] [--runs 3] [--save out.json] [--compare base.json]
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer, connect, type AddressInfo } from 'node:net'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { once } from 'node:events'
import { tmpdir, cpus } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import { seedMeshDir } from '../src/meshdir/seed.js'

const here = dirname(fileURLToPath(import.meta.url))
const BIN = join(here, '..', '..', 'bin', 'mesh-proxy.js')
const NAIVE = join(here, 'naive-proxy.js')
const arg = (name: string, dflt: string): string => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1]! : dflt }
const SIZE = Number(arg('size-mb', '1024')) * 1024 * 1024
const RUNS = Number(arg('runs', '3'))

async function freePort (): Promise<number> {
  const s = createServer()
  s.listen(0, '127.0.0.1')
  await once(s, 'listening')
  const p = (s.address() as AddressInfo).port
  s.close()
  await once(s, 'close')
  return p
}

function cpuSeconds (pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(f[11]) + Number(f[12])) / 100 // utime + stime, clock ticks (USER_HZ = 100)
}

async function startProc (args: string[], ready: (line: string) => boolean): Promise<ChildProcess> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  const rl = createInterface({ input: child.stdout! })
  await new Promise<void>((resolve, reject) => {
    rl.on('line', l => { if (ready(l)) resolve() })
    child.once('exit', code => reject(new Error(`${args.join(' ')} exited ${String(code)}`)))
  })
  child.stdout!.resume()
  return child
}

/** A sink that counts bytes and answers "done" at EOF. */
async function startSink (): Promise<{ port: number, close: () => void }> {
  const s = createServer({ allowHalfOpen: true }, c => {
    let n = 0
    c.on('data', (d: Buffer) => { n += d.length })
    c.on('end', () => c.end(String(n)))
  })
  s.listen(0, '127.0.0.1')
  await once(s, 'listening')
  return { port: (s.address() as AddressInfo).port, close: () => s.close() }
}

async function push (port: number): Promise<number> {
  const chunk = Buffer.alloc(64 * 1024, 7)
  const c = connect({ port, host: '127.0.0.1', allowHalfOpen: true })
  await once(c, 'connect')
  const t0 = performance.now()
  let sent = 0
  let reply = ''
  c.on('data', (d: Buffer) => { reply += d.toString() })
  const ended = once(c, 'end')
  while (sent < SIZE) {
    sent += chunk.length
    if (!c.write(chunk)) await once(c, 'drain')
  }
  c.end()
  await ended
  const secs = (performance.now() - t0) / 1000
  c.destroy()
  if (Number(reply) !== SIZE) throw new Error(`sink got ${reply} bytes, sent ${SIZE}`)
  return SIZE / 1e6 / secs
}

interface Row { name: string, mbps: number[], cpuPerGB: number[] }

async function measure (name: string, setup: (sinkPort: number) => Promise<{ port: number, pids: number[], stop: () => void }>): Promise<Row> {
  const row: Row = { name, mbps: [], cpuPerGB: [] }
  for (let i = 0; i < RUNS; i++) {
    const sink = await startSink()
    const { port, pids, stop } = await setup(sink.port)
    await push(port).catch((e: Error) => { process.stderr.write(`warm-up: ${e.message}\n`) }) // warm-up: handshake, JIT
    const cpu0 = pids.reduce((a, p) => a + cpuSeconds(p), 0)
    row.mbps.push(await push(port))
    const cpu1 = pids.reduce((a, p) => a + cpuSeconds(p), 0)
    row.cpuPerGB.push((cpu1 - cpu0) / (SIZE / 1e9))
    stop()
    sink.close()
  }
  return row
}

const median = (a: number[]): number => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]! }

async function main (): Promise<void> {
  const mesh = mkdtempSync(join(tmpdir(), 'mesh-bench-'))
  const layout = await seedMeshDir(mesh)
  const rows: Row[] = []
  rows.push(await measure('no proxy (loopback ceiling)', async sink => ({ port: sink, pids: [], stop: () => {} })))
  rows.push(await measure('naive Node pipe() pair', async sink => {
    const [inPort, outPort] = [await freePort(), await freePort()]
    const files = (s: string): string[] => [layout.certFor(s), layout.keyFor(s), layout.bundle]
    const a = await startProc([NAIVE, 'in', String(inPort), String(sink), ...files('db')], l => l === 'ready')
    const b = await startProc([NAIVE, 'out', String(outPort), String(inPort), ...files('web')], l => l === 'ready')
    return { port: outPort, pids: [a.pid!, b.pid!], stop: () => { a.kill(); b.kill() } }
  }))
  rows.push(await measure('mesh-proxy pair', async sink => {
    const [inPort, outPort] = [await freePort(), await freePort()]
    const started = (l: string): boolean => l.includes('"sidecar started"')
    const extra = ['--admin', 'off', ...(process.env.MESH_BENCH_ARGS ?? '').split(' ').filter(x => x !== '')]
    const a = await startProc([BIN, 'run', '--service', 'db', '--listen', `127.0.0.1:${inPort}`, '--to', `127.0.0.1:${sink}`, '--mesh-dir', mesh, ...extra], started)
    const b = await startProc([BIN, 'run', '--service', 'web', '--upstream', `db:${outPort}`, '--mesh-dir', mesh, ...extra], started)
    return { port: outPort, pids: [a.pid!, b.pid!], stop: () => { a.kill(); b.kill() } }
  }))

  const compare = arg('compare', '')
  const base = compare === '' ? null : JSON.parse(readFileSync(compare, 'utf8')) as Row[]
  const lines = [
    `relay throughput, ${SIZE / 1024 / 1024} MiB one way, median of ${RUNS} runs; node ${process.version}, OpenSSL ${process.versions.openssl}, ${cpus().length} x ${cpus()[0]?.model ?? '?'}`,
    '',
    `| path | MB/s (median) | min-max | proxy CPU s/GB |${base === null ? '' : ' vs base |'}`,
    `|---|---:|---:|---:|${base === null ? '' : '---:|'}`
  ]
  for (const r of rows) {
    const b = base?.find(x => x.name === r.name)
    const delta = b === undefined ? '' : ` ${(((median(r.mbps) / median(b.mbps)) - 1) * 100).toFixed(1)}% |`
    lines.push(`| ${r.name} | ${median(r.mbps).toFixed(0)} | ${Math.min(...r.mbps).toFixed(0)}-${Math.max(...r.mbps).toFixed(0)} | ${median(r.cpuPerGB).toFixed(2)} |${base === null ? '' : delta}`)
  }
  process.stdout.write(lines.join('\n') + '\n')
  const save = arg('save', '')
  if (save !== '') writeFileSync(save, JSON.stringify(rows, null, 2))
}

await main()
