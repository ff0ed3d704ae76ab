/**
 * Relay throughput over loopback: one TCP stream of --size bytes pushed
 * client -> outbound sidecar -> mTLS (TLS 1.3, ECDSA P-256) -> inbound sidecar
 * -> sink, for each of: no proxy (the loopback ceiling), the naive Node pipe()
 * pair, mesh-proxy (real SVID checks and intention decision on), and the C
 * peers stunnel, haproxy and nginx (stream), one worker each, same
 * certificates (installed from Debian when run as root, else skipped with the
 * reason printed). Each proxy runs as its own process, as in production. Reports MB/s (median of
 * --runs, with min-max) and the proxies' CPU seconds per GB (user+sys from
 * /proc).
 *
 *   npm run build && node dist/bench/relay-throughput.js [--size-mb 1024] [--runs 3] [--save out.json] [--compare base.json]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
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

/** A sink that counts bytes and answers with the count once all SIZE bytes arrived (no half-close needed). */
async function startSink (): Promise<{ port: number, close: () => void }> {
  const s = createServer(c => {
    let n = 0
    c.on('data', (d: Buffer) => { n += d.length; if (n === SIZE) c.write(String(n)) })
    c.on('error', () => {})
  })
  s.listen(0, '127.0.0.1')
  await once(s, 'listening')
  return { port: (s.address() as AddressInfo).port, close: () => s.close() }
}

async function push (port: number): Promise<number> {
  const chunk = Buffer.alloc(64 * 1024, 7)
  const c = connect({ port, host: '127.0.0.1' })
  await once(c, 'connect')
  const t0 = performance.now()
  let sent = 0
  let reply = ''
  const answered = new Promise<void>((resolve, reject) => {
    c.on('data', (d: Buffer) => { reply += d.toString(); if (reply === String(SIZE)) resolve() })
    c.once('close', () => reject(new Error(`closed after ${reply === '' ? 'no answer' : reply}`)))
  })
  while (sent < SIZE) {
    sent += chunk.length
    if (!c.write(chunk)) await once(c, 'drain')
  }
  await answered
  const secs = (performance.now() - t0) / 1000
  c.destroy()
  if (Number(reply) !== SIZE) throw new Error(`sink got ${reply} bytes, sent ${SIZE}`)
  return SIZE / 1e6 / secs
}

interface Row { name: string, mbps: number[], cpuPerGB: number[], pids: number }

async function measure (name: string, setup: (sinkPort: number) => Promise<{ port: number, pids: number[], stop: () => void }>): Promise<Row> {
  const row: Row = { name, mbps: [], cpuPerGB: [], pids: 0 }
  for (let i = 0; i < RUNS; i++) {
    const sink = await startSink()
    const { port, pids, stop } = await setup(sink.port)
    row.pids = pids.length
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

/** The binary's path, installing its Debian package when root; null (with the reason printed) when unavailable. */
async function ensure (bin: string, pkg: string): Promise<string | null> {
  const which = (): string | null => { const r = spawnSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' }); return r.status === 0 ? r.stdout.trim() : null }
  let path = which()
  if (path === null && process.getuid?.() === 0) {
    process.stderr.write(`installing ${pkg} (apt-get) for the comparison...\n`)
    spawnSync('sh', ['-c', `apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${pkg}`], { stdio: 'ignore' })
    path = which()
  }
  if (path === null) process.stderr.write(`skipping ${bin}: not installed and not root (Debian packages: ${pkg})\n`)
  return path
}

/** Wait until something accepts TCP on `port` (C proxies print no readiness line we can rely on). */
async function listening (port: number, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`${child.spawnfile} exited with ${child.exitCode}`)
    const ok = await new Promise<boolean>(resolve => { const c = connect(port, '127.0.0.1'); c.once('connect', () => { c.destroy(); resolve(true) }); c.once('error', () => resolve(false)) })
    if (ok) return
    await new Promise(resolve => setTimeout(resolve, 25))
  }
  throw new Error(`nothing listens on ${port}`)
}

interface CPeer { name: string, bin: string, pkg: string, start: (bin: string, inPort: number, outPort: number, sink: number) => Promise<ChildProcess[]> }

/** stunnel, haproxy and nginx (stream) pairs with the same certificates, mTLS both ways, one worker each. */
function cPeers (mesh: string): CPeer[] {
  const dir = mkdtempSync(join(tmpdir(), 'mesh-bench-c-'))
  const c = (s: string): string => join(mesh, 'certs', `${s}.pem`)
  const k = (s: string): string => join(mesh, 'certs', `${s}.key`)
  const ca = join(mesh, 'bundle.pem')
  for (const s of ['web', 'db']) writeFileSync(join(dir, `${s}.combined.pem`), readFileSync(c(s), 'utf8') + readFileSync(k(s), 'utf8'))
  const run = async (bin: string, args: string[], port: number): Promise<ChildProcess> => {
    const p = spawn(bin, args, { stdio: 'ignore' })
    await listening(port, p)
    return p
  }
  const file = (name: string, text: string): string => { const f = join(dir, name); writeFileSync(f, text); return f }
  return [
    {
      name: 'stunnel pair', bin: 'stunnel4', pkg: 'stunnel4',
      start: async (bin, inPort, outPort, sink) => [
        await run(bin, [file('in.conf', `foreground = yes\npid =\n[in]\naccept = 127.0.0.1:${inPort}\nconnect = 127.0.0.1:${sink}\ncert = ${c('db')}\nkey = ${k('db')}\nCAfile = ${ca}\nverifyChain = yes\nrequireCert = yes\n`)], inPort),
        await run(bin, [file('out.conf', `foreground = yes\npid =\n[out]\nclient = yes\naccept = 127.0.0.1:${outPort}\nconnect = 127.0.0.1:${inPort}\ncert = ${c('web')}\nkey = ${k('web')}\nCAfile = ${ca}\nverifyChain = yes\ncheckHost = db\nsni = db\n`)], outPort)
      ]
    },
    {
      name: 'haproxy pair', bin: 'haproxy', pkg: 'haproxy',
      start: async (bin, inPort, outPort, sink) => {
        const head = 'global\n  nbthread 1\n  maxconn 4000\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 1h\n  timeout server 1h\n'
        return [
          await run(bin, ['-db', '-f', file('in.cfg', `${head}frontend f\n  bind 127.0.0.1:${inPort} ssl crt ${join(dir, 'db.combined.pem')} ca-file ${ca} verify required\n  default_backend b\nbackend b\n  server s 127.0.0.1:${sink}\n`)], inPort),
          await run(bin, ['-db', '-f', file('out.cfg', `${head}frontend f\n  bind 127.0.0.1:${outPort}\n  default_backend b\nbackend b\n  server s 127.0.0.1:${inPort} ssl crt ${join(dir, 'web.combined.pem')} ca-file ${ca} verify required sni str(db)\n`)], outPort)
        ]
      }
    },
    {
      name: 'nginx stream pair', bin: 'nginx', pkg: 'nginx libnginx-mod-stream',
      start: async (bin, inPort, outPort, sink) => {
        const head = (n: string): string => `load_module /usr/lib/nginx/modules/ngx_stream_module.so;\nworker_processes 1;\ndaemon off;\nmaster_process off;\npid ${join(dir, n + '.pid')};\nerror_log ${join(dir, n + '.err')};\nevents { worker_connections 10000; }\n`
        return [
          await run(bin, ['-p', dir, '-c', file('in.nginx', `${head('in')}stream { server { listen 127.0.0.1:${inPort} ssl; ssl_certificate ${c('db')}; ssl_certificate_key ${k('db')}; ssl_client_certificate ${ca}; ssl_verify_client on; proxy_pass 127.0.0.1:${sink}; } }\n`)], inPort),
          await run(bin, ['-p', dir, '-c', file('out.nginx', `${head('out')}stream { server { listen 127.0.0.1:${outPort}; proxy_pass 127.0.0.1:${inPort}; proxy_ssl on; proxy_ssl_certificate ${c('web')}; proxy_ssl_certificate_key ${k('web')}; proxy_ssl_trusted_certificate ${ca}; proxy_ssl_verify on; proxy_ssl_name db; proxy_ssl_server_name on; } }\n`)], outPort)
        ]
      }
    }
  ]
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

  for (const peer of cPeers(mesh)) {
    const bin = await ensure(peer.bin, peer.pkg)
    if (bin === null) continue
    rows.push(await measure(peer.name, async sink => {
      const [inPort, outPort] = [await freePort(), await freePort()]
      const procs = await peer.start(bin, inPort, outPort, sink)
      return { port: outPort, pids: procs.map(p => p.pid!), stop: () => { for (const p of procs) p.kill() } }
    }))
  }

  const compare = arg('compare', '')
  const base = compare === '' ? null : JSON.parse(readFileSync(compare, 'utf8')) as Row[]
  const lines = [
    `relay throughput, ${SIZE / 1024 / 1024} MiB one way, median of ${RUNS} runs; node ${process.version}, OpenSSL ${process.versions.openssl}, ${cpus().length} x ${cpus()[0]?.model ?? '?'}`,
    '',
    `| path | MB/s (median) | min-max | proxy CPU s/GB | × best C peer |${base === null ? '' : ' vs base |'}`,
    `|---|---:|---:|---:|---:|${base === null ? '' : '---:|'}`
  ]
  const cRows = rows.filter(r => /stunnel|haproxy|nginx/.test(r.name))
  const bestC = cRows.length === 0 ? NaN : Math.max(...cRows.map(r => median(r.mbps)))
  for (const r of rows) {
    const b = base?.find(x => x.name === r.name)
    const delta = b === undefined ? '' : ` ${(((median(r.mbps) / median(b.mbps)) - 1) * 100).toFixed(1)}% |`
    const ratio = Number.isNaN(bestC) || r.pids === 0 ? '—' : `${(median(r.mbps) / bestC).toFixed(2)}×`
    lines.push(`| ${r.name} | ${median(r.mbps).toFixed(0)} | ${Math.min(...r.mbps).toFixed(0)}-${Math.max(...r.mbps).toFixed(0)} | ${median(r.cpuPerGB).toFixed(2)} | ${ratio} |${base === null ? '' : delta}`)
  }
  process.stdout.write(lines.join('\n') + '\n')
  const save = arg('save', '')
  if (save !== '') writeFileSync(save, JSON.stringify(rows, null, 2))
}

await main()
