/**
 * The proxy pairs every benchmark compares, started the same way:
 * client -> outbound proxy -> mTLS (TLS 1.3, ECDSA P-256, both sides verified)
 * -> inbound proxy -> target, each proxy its own process, one worker/thread
 * (haproxy and nginx once more at their defaults: see cPeers).
 *
 * Pairs: the naive Node pipe() pair, mesh-proxy (its real SVID checks and
 * intention decision on), the C peers stunnel, haproxy and nginx (stream),
 * installed from Debian when run as root, and Envoy configured as Consul does
 * (bench/envoy.ts; the binary test/peers/install.sh installs), once with
 * --concurrency 1 and once with its default (one worker per core); a peer
 * that is not installed is skipped with the reason printed. Plus the small
 * process helpers the benchmarks share.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createServer, connect, type AddressInfo } from 'node:net'
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { once } from 'node:events'
import { tmpdir, cpus } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import type { MeshLayout } from '../src/meshdir/layout.js'
import { consulServiceId } from '../src/core/identity/spiffe-id.js'
import { adminGet, adminPortFrom, bootstrapText, inboundBootstrap, installedEnvoy, listenerPort, outboundBootstrap, type EnvoyTls } from './envoy.js'

const here = dirname(fileURLToPath(import.meta.url))
export const BIN = join(here, '..', '..', 'bin', 'mesh-proxy.js')
const NAIVE = join(here, 'naive-proxy.js')

/** `--name value` from argv, or the default. */
export const arg = (name: string, dflt: string): string => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1]! : dflt }
export const median = (a: number[]): number => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]! }
export const machine = (): string => `node ${process.version}, OpenSSL ${process.versions.openssl}, ${cpus().length} x ${cpus()[0]?.model ?? '?'}`
/** Reference rows: what Node itself reaches with the least code (bench/naive-proxy.ts); never a ratio's denominator. */
export const FLOOR_PLAIN = 'Node floor: plain TCP relay pair, no TLS'
export const FLOOR_RESUME = 'Node floor: naive pair + session resumption'
export const isCPeer = (name: string): boolean => /stunnel|haproxy|nginx/.test(name)

export async function freePort (): Promise<number> {
  const s = createServer()
  s.listen(0, '127.0.0.1')
  await once(s, 'listening')
  const p = (s.address() as AddressInfo).port
  s.close()
  await once(s, 'close')
  return p
}

/** User and system CPU seconds of a process, from /proc. */
export function cpuTimes (pid: number): { user: number, sys: number } {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return { user: Number(f[11]) / 100, sys: Number(f[12]) / 100 } // utime, stime in clock ticks (USER_HZ = 100)
}

/** user+sys CPU seconds of a process, from /proc. */
export function cpuSeconds (pid: number): number {
  const t = cpuTimes(pid)
  return t.user + t.sys
}

/** Resident set size of a process in bytes, from /proc. */
export function rssBytes (pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(m?.[1] ?? NaN) * 1024
}

/**
 * Spawn `bin`; `ready` resolves once a stdout line satisfies `isReady`, and
 * rejects if the process exits first. Later output is read and dropped.
 */
export function spawnUntilLine (bin: string, args: string[], isReady: (line: string) => boolean): { child: ChildProcess, ready: Promise<void> } {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  const ready = new Promise<void>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! })
    lines.on('line', l => {
      if (!isReady(l)) return
      resolve()
      // From here on the output is drained in chunks without splitting lines:
      // the harness shares the cores with the proxies it measures.
      lines.close()
      child.stdout!.resume()
    })
    child.once('exit', code => reject(new Error(`${bin} ${args.join(' ')} exited ${String(code)}`)))
  })
  return { child, ready }
}

/** Spawn a node script; resolves once a stdout line satisfies `ready`. */
export async function startNode (args: string[], ready: (line: string) => boolean): Promise<ChildProcess> {
  const p = spawnUntilLine(process.execPath, args, ready)
  await p.ready
  return p.child
}

/** The binary's path, installing its Debian package when root; null (with the reason printed) when unavailable. */
export function ensure (bin: string, pkg: string): string | null {
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

/** Run a load tool to completion without blocking the event loop (the proxies' log pipes must keep draining). */
export async function runTool (bin: string, args: string[], opts: { allowFail?: boolean } = {}): Promise<string> {
  const p = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  p.stdout.on('data', (d: Buffer) => { out += d.toString() })
  p.stderr.on('data', (d: Buffer) => { err += d.toString() })
  const [code] = await once(p, 'exit') as [number | null]
  if (code !== 0 && opts.allowFail !== true) throw new Error(`${bin} ${args.join(' ')} exited ${String(code)}: ${out.slice(-300)} ${err.slice(-300)}`)
  return out
}

/** What one wrk run reports: requests/s, requests in all, latency percentiles (ms) and errors. */
export interface WrkResult { rps: number, requests: number, p50: number, p99: number, errors: number }

/** Parse wrk's --latency report; latencies in ms. */
export function parseWrk (out: string): WrkResult {
  const ms = (v: string, unit: string): number => Number(v) * ({ us: 0.001, ms: 1, s: 1000 }[unit] ?? NaN)
  const pct = (p: string): number => { const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s)\\s*$`, 'm').exec(out); return m === null ? NaN : ms(m[1]!, m[2]!) }
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN)
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN)
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0)
  const errors = (se === null ? 0 : se.slice(1).reduce((a, x) => a + Number(x), 0)) + non2xx
  return { rps, requests, p50: pct('50'), p99: pct('99'), errors }
}

/**
 * One iperf3 transfer of `bytes` through `port` to an iperf3 server: MB/s at
 * the receiver. iperf3 serves one test at a time and may still be finishing
 * the previous one ("the server is busy"): such a run is retried.
 */
export async function iperf (iperf3: string, port: number, bytes: number): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    const out = await runTool(iperf3, ['-c', '127.0.0.1', '-p', String(port), '-n', String(bytes), '-J'], { allowFail: true })
    let j: { error?: string, end?: { sum_received?: { bits_per_second: number } } } = {}
    try { j = JSON.parse(out.slice(out.indexOf('{'))) as typeof j } catch { j = { error: out.slice(0, 300) } }
    const bps = j.end?.sum_received?.bits_per_second
    if (j.error === undefined && bps !== undefined) return bps / 8 / 1e6
    if (attempt === 3) throw new Error(`iperf3 through port ${port} failed 3 times: ${j.error ?? 'no result'}`)
    process.stderr.write(`iperf3 attempt ${attempt} failed (${j.error ?? 'no result'}); retrying\n`)
    await new Promise(resolve => setTimeout(resolve, 500))
  }
}

/** Resolves once something accepts TCP on `port` (C proxies print no readiness line we can rely on). */
export async function listening (port: number, child?: ChildProcess, pollMs = 25): Promise<void> {
  for (let i = 0; i < 10_000 / pollMs; i++) {
    if (child !== undefined && child.exitCode !== null) throw new Error(`${child.spawnfile} exited with ${child.exitCode}`)
    const ok = await new Promise<boolean>(resolve => { const c = connect(port, '127.0.0.1'); c.once('connect', () => { c.destroy(); resolve(true) }); c.once('error', () => resolve(false)) })
    if (ok) return
    await new Promise(resolve => setTimeout(resolve, pollMs))
  }
  throw new Error(`nothing listens on ${port}`)
}

/** nginx as the HTTP backend: `keepAlive` on one port, every connection closed after its response on the other. */
export async function startBackend (nginx: string): Promise<{ keepAlive: number, closing: number, stop: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'mesh-bench-backend-'))
  const [keepAlive, closing] = [await freePort(), await freePort()]
  const conf = join(dir, 'nginx.conf')
  writeFileSync(conf, `worker_processes 1;\ndaemon off;\nmaster_process off;\npid ${join(dir, 'pid')};\nerror_log ${join(dir, 'err')};\nevents { worker_connections 20000; }\nhttp {\n  access_log off;\n  keepalive_requests 10000000;\n  server { listen 127.0.0.1:${keepAlive}; location / { return 200 "ok\\n"; } }\n  server { listen 127.0.0.1:${closing}; keepalive_timeout 0; location / { return 200 "ok\\n"; } }\n}\n`)
  const p = spawn(nginx, ['-p', dir, '-c', conf], { stdio: 'ignore' })
  await Promise.all([listening(keepAlive, p), listening(closing, p)])
  return { keepAlive, closing, stop: async () => { const gone = once(p, 'exit'); p.kill(); await gone } }
}

/** A running pair: clients connect to `port`; `pids` are both proxies. */
export interface Pair { readonly port: number, readonly pids: number[], stop (): Promise<void> }

/** One kind of proxy pair; `start` relays to `target` (a port on 127.0.0.1). */
export interface PairKind {
  readonly name: string
  /** Only in these figures (bulk, rr, churn, memory, startup); all when absent. */
  readonly figures?: readonly string[] | undefined
  start (target: number): Promise<Pair>
  /** One inbound proxy process alone: resolves when it can serve (for start-up time). */
  startOne (target: number): Promise<{ ready: Promise<void>, stop: () => Promise<void> }>
}

/** The pairs that take part in one figure ('bulk', 'rr', 'churn', 'memory', 'startup'). */
export const forFigure = (kinds: PairKind[], figure: string): PairKind[] => kinds.filter(k => k.figures === undefined || k.figures.includes(figure))

/** A process and its children (mesh-proxy --workers: the primary and its workers), for CPU and RSS figures. */
export function processTree (pid: number): number[] {
  let kids: number[] = []
  try { kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(x => x !== '').map(Number) } catch {}
  return [pid, ...kids.flatMap(processTree)]
}

/** Stop and reap; `graceful` sends SIGTERM (mesh-proxy's primary then stops its workers), else SIGKILL (with the children). */
export async function stopAll (procs: ChildProcess[], graceful = false): Promise<void> {
  await Promise.all(procs.map(async p => {
    if (p.exitCode !== null || p.signalCode !== null) return
    const tree = processTree(p.pid!)
    const gone = once(p, 'exit')
    if (graceful) p.kill('SIGTERM'); else for (const pid of tree) { try { process.kill(pid, 'SIGKILL') } catch {} }
    await gone
  }))
}

/** `mesh-proxy run` arguments of a pair's two sidecars: db's inbound on `inPort` to `target`, web's outbound to db on `outPort`. */
export const sidecarArgs = {
  inbound: (mesh: string, inPort: number, target: number): string[] => ['run', '--service', 'db', '--listen', `127.0.0.1:${inPort}`, '--to', `127.0.0.1:${target}`, '--mesh-dir', mesh],
  outbound: async (mesh: string, outPort: number): Promise<string[]> => ['run', '--service', 'web', '--listen', `127.0.0.1:${await freePort()}`, '--to', '127.0.0.1:1', '--upstream', `db:${outPort}`, '--mesh-dir', mesh]
}

/** Every pair this machine can run, naive and mesh-proxy first. */
export function pairKinds (layout: MeshLayout): PairKind[] {
  const mesh = layout.root
  const files = (s: string): string[] => [layout.certFor(s), layout.keyFor(s), layout.bundle]
  const naive = (name: string, variant: string[], figures?: readonly string[]): PairKind => ({
    name,
    figures,
    start: async target => {
      const [inPort, outPort] = [await freePort(), await freePort()]
      const a = await startNode([NAIVE, 'in', String(inPort), String(target), ...files('db'), ...variant], l => l === 'ready')
      const b = await startNode([NAIVE, 'out', String(outPort), String(inPort), ...files('web'), ...variant], l => l === 'ready')
      return { port: outPort, pids: [a.pid!, b.pid!], stop: () => stopAll([a, b]) }
    },
    startOne: async target => {
      const { child, ready } = spawnUntilLine(process.execPath, [NAIVE, 'in', String(await freePort()), String(target), ...files('db'), ...variant], l => l === 'ready')
      return { ready, stop: () => stopAll([child]) }
    }
  })
  const extra = (process.env.MESH_BENCH_ARGS ?? '').split(' ').filter(x => x !== '')
  const meshProxy = (workers: number, tunnel = false): PairKind => {
    const w = workers === 1 ? [] : ['--workers', String(workers)]
    const started = (l: string): boolean => l.includes(workers === 1 ? '"sidecar started"' : '"workers ready"')
    return {
      name: (workers === 1 ? 'mesh-proxy pair' : `mesh-proxy pair, --workers ${workers}`) + (tunnel ? ', --upstream-tunnel' : ''),
      start: async target => {
        const [inPort, outPort] = [await freePort(), await freePort()]
        const a = await startNode([BIN, ...sidecarArgs.inbound(mesh, inPort, target), '--admin', 'off', ...w, ...extra], started)
        const b = await startNode([BIN, ...await sidecarArgs.outbound(mesh, outPort), '--admin', 'off', ...w, ...extra, ...(tunnel ? ['--upstream-tunnel', 'db'] : [])], started)
        return { port: outPort, pids: [...processTree(a.pid!), ...processTree(b.pid!)], stop: () => stopAll([a, b]) }
      },
      startOne: async target => {
        // Ready = the admin server's /ready answers 200 (what a kubelet waits for).
        const admin = await freePort()
        const p = spawn(process.execPath, [BIN, ...sidecarArgs.inbound(mesh, await freePort(), target), '--admin', `127.0.0.1:${admin}`, '--log-level', 'warn', ...w, ...extra], { stdio: 'ignore' })
        const ready = (async () => {
          for (;;) {
            if (p.exitCode !== null) throw new Error(`mesh-proxy exited with ${p.exitCode}`)
            const ok = await fetch(`http://127.0.0.1:${admin}/ready`).then(r => r.status === 200, () => false)
            if (ok) return
            await new Promise(resolve => setTimeout(resolve, 5))
          }
        })()
        return { ready, stop: () => stopAll([p], true) }
      }
    }
  }
  const kinds = [
    naive('naive Node pipe() pair', []),
    naive(FLOOR_PLAIN, ['--plain'], ['bulk', 'rr']),
    naive(FLOOR_RESUME, ['--resume'], ['churn', 'memory']),
    meshProxy(1), meshProxy(1, true), meshProxy(2)
  ]
  for (const peer of [...cPeers(layout), ...cPeers(layout, true)]) {
    const bin = ensure(peer.bin, peer.pkg)
    if (bin === null) continue
    kinds.push({
      name: peer.name,
      start: async target => {
        const [inPort, outPort] = [await freePort(), await freePort()]
        const procs = [await peer.inbound(bin, inPort, target), await peer.outbound(bin, outPort, inPort)]
        await Promise.all([listening(inPort, procs[0]), listening(outPort, procs[1])])
        // Every process of the pair (nginx's master and its workers) for CPU and RSS.
        return { port: outPort, pids: procs.flatMap(p => processTree(p.pid!)), stop: () => stopAll(procs) }
      },
      startOne: async target => {
        const port = await freePort()
        const p = await peer.inbound(bin, port, target)
        return { ready: listening(port, p, 2), stop: () => stopAll([p]) }
      }
    })
  }
  const envoy = installedEnvoy()
  if ('reason' in envoy) process.stderr.write(`skipping the Envoy pairs: ${envoy.reason}\n`)
  else kinds.push(envoyPair(layout, envoy.bin, 1), envoyPair(layout, envoy.bin, undefined))
  return kinds
}

/**
 * An Envoy started on `bootstrap` (admin and listener on port 0); `ready`
 * resolves once its admin /ready answers 200 (server LIVE: listeners bound,
 * workers running) with the listener's bound port. Its log goes nowhere but
 * the tail kept for the error should it exit.
 */
function spawnEnvoy (bin: string, bootstrap: Record<string, unknown>, concurrency: number | undefined): { child: ChildProcess, ready: Promise<number> } {
  const dir = mkdtempSync(join(tmpdir(), 'mesh-bench-envoy-'))
  const config = join(dir, 'bootstrap.yaml')
  const adminPath = join(dir, 'admin-address')
  writeFileSync(config, bootstrapText(bootstrap))
  const workers = concurrency === undefined ? [] : ['--concurrency', String(concurrency)]
  const child = spawn(bin, ['-c', config, '--admin-address-path', adminPath, '--disable-hot-restart', ...workers, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] })
  let tail = ''
  child.stderr!.on('data', (d: Buffer) => { tail = (tail + d.toString()).slice(-2000) })
  const ready = (async () => {
    for (let i = 0; i < 2000; i++) { // 10 s
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`envoy exited (${String(child.exitCode ?? child.signalCode)}): ${tail}`)
      if (existsSync(adminPath)) {
        const admin = await adminPortFrom(adminPath)
        if (await adminGet(admin, '/ready').then(r => r.status === 200, () => false)) return await listenerPort(admin)
      }
      await new Promise(resolve => setTimeout(resolve, 5))
    }
    throw new Error(`envoy not ready within 10 s: ${tail}`)
  })()
  return { child, ready }
}

/** Envoy outbound (web) -> mTLS -> Envoy inbound (db), with the mesh dir's certificates and SPIFFE IDs; `concurrency` undefined: Envoy's default. */
function envoyPair (layout: MeshLayout, bin: string, concurrency: number | undefined): PairKind {
  const { trustDomain, datacenter } = JSON.parse(readFileSync(layout.settings, 'utf8')) as { trustDomain: string, datacenter: string }
  const id = (service: string): string => consulServiceId({ trustDomain, datacenter, service }).uri
  const tls = (s: string): EnvoyTls => ({ certPem: readFileSync(layout.certFor(s), 'utf8'), keyPem: readFileSync(layout.keyFor(s), 'utf8'), caPem: readFileSync(layout.bundle, 'utf8') })
  // Circuit breakers above the memory figure's held connections (Envoy's default, 1024 per cluster, resets the rest).
  const maxConnections = 100_000
  const inbound = (target: number): ReturnType<typeof spawnEnvoy> => spawnEnvoy(bin, inboundBootstrap({ tls: tls('db'), sourceSpiffeId: id('web'), appPort: target, maxConnections }), concurrency)
  return {
    name: concurrency === undefined ? 'envoy pair, default concurrency' : `envoy pair, --concurrency ${concurrency}`,
    start: async target => {
      const a = inbound(target)
      const inPort = await a.ready.catch(async (e: unknown) => { await stopAll([a.child]); throw e })
      const b = spawnEnvoy(bin, outboundBootstrap({ tls: tls('web'), upstream: 'db', upstreamSpiffeId: id('db'), trustDomain, upstreamPort: inPort, maxConnections }), concurrency)
      const port = await b.ready.catch(async (e: unknown) => { await stopAll([a.child, b.child]); throw e })
      return { port, pids: [a.child.pid!, b.child.pid!], stop: () => stopAll([a.child, b.child]) }
    },
    startOne: async target => {
      const a = inbound(target)
      return { ready: a.ready.then(() => {}), stop: () => stopAll([a.child]) }
    }
  }
}

interface CPeer {
  readonly name: string
  readonly bin: string
  readonly pkg: string
  inbound (bin: string, port: number, target: number): Promise<ChildProcess>
  outbound (bin: string, port: number, inPort: number): Promise<ChildProcess>
}

/**
 * `--suite TLS_AES_128_GCM_SHA256`: the C peers offer and accept that TLS 1.3 suite
 * only (both sides), for a like-for-like look at mesh-proxy, whose resumed
 * connections run TLS_AES_128_GCM_SHA256 (a PSK from Node's callbacks needs a
 * SHA-256 suite: src/tls/psk.ts). Default: each peer's own order (AES-256-GCM first).
 */
export const SUITE = arg('suite', '')
if (SUITE !== '' && !/^TLS_[A-Z0-9_]+$/.test(SUITE)) throw new Error(`--suite ${SUITE}: give one TLS 1.3 suite name, e.g. TLS_AES_128_GCM_SHA256`)

/**
 * stunnel, haproxy and nginx (stream) with the same certificates, mTLS both
 * ways, one worker each; with `defaults`, haproxy and nginx as they run out of
 * the box (haproxy's nbthread: one thread per core; nginx `worker_processes
 * auto` under its master), named `..., default workers` (stunnel's default is
 * already a thread per connection).
 */
function cPeers (layout: MeshLayout, defaults = false): CPeer[] {
  const dir = mkdtempSync(join(tmpdir(), 'mesh-bench-c-'))
  const c = (s: string): string => layout.certFor(s)
  const k = (s: string): string => layout.keyFor(s)
  const ca = layout.bundle
  for (const s of ['web', 'db']) writeFileSync(join(dir, `${s}.combined.pem`), readFileSync(c(s), 'utf8') + readFileSync(k(s), 'utf8'))
  let n = 0
  const file = (name: string, text: string): string => { const f = join(dir, `${++n}-${name}`); writeFileSync(f, text); return f }
  const run = async (bin: string, args: string[]): Promise<ChildProcess> => spawn(bin, args, { stdio: 'ignore' })
  const stunnelSuite = SUITE === '' ? '' : `ciphersuites = ${SUITE}\n`
  const haproxySuite = SUITE === '' ? '' : ` ciphersuites ${SUITE}`
  const haproxyHead = `global\n${defaults ? '' : '  nbthread 1\n'}  maxconn 8000\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 1h\n  timeout server 1h\n`
  const nginxHead = (tag: string): string => `load_module /usr/lib/nginx/modules/ngx_stream_module.so;\nworker_processes ${defaults ? 'auto' : '1'};\nworker_rlimit_nofile 20000;\ndaemon off;\nmaster_process ${defaults ? 'on' : 'off'};\npid ${join(dir, tag + '.pid')};\nerror_log ${join(dir, tag + '.err')};\nevents { worker_connections 20000; }\n`
  const peers: CPeer[] = [
    {
      name: 'stunnel pair', bin: 'stunnel4', pkg: 'stunnel4',
      inbound: async (bin, port, target) => await run(bin, [file('in.conf', `foreground = yes\npid =\n[in]\naccept = 127.0.0.1:${port}\nconnect = 127.0.0.1:${target}\ncert = ${c('db')}\nkey = ${k('db')}\nCAfile = ${ca}\nverifyChain = yes\nrequireCert = yes\n${stunnelSuite}`)]),
      outbound: async (bin, port, inPort) => await run(bin, [file('out.conf', `foreground = yes\npid =\n[out]\nclient = yes\naccept = 127.0.0.1:${port}\nconnect = 127.0.0.1:${inPort}\ncert = ${c('web')}\nkey = ${k('web')}\nCAfile = ${ca}\nverifyChain = yes\ncheckHost = db\nsni = db\n${stunnelSuite}`)])
    },
    {
      name: 'haproxy pair', bin: 'haproxy', pkg: 'haproxy',
      inbound: async (bin, port, target) => await run(bin, ['-db', '-f', file('in.cfg', `${haproxyHead}frontend f\n  bind 127.0.0.1:${port} ssl crt ${join(dir, 'db.combined.pem')} ca-file ${ca} verify required${haproxySuite}\n  default_backend b\nbackend b\n  server s 127.0.0.1:${target}\n`)]),
      outbound: async (bin, port, inPort) => await run(bin, ['-db', '-f', file('out.cfg', `${haproxyHead}frontend f\n  bind 127.0.0.1:${port}\n  default_backend b\nbackend b\n  server s 127.0.0.1:${inPort} ssl crt ${join(dir, 'web.combined.pem')} ca-file ${ca} verify required sni str(db)${haproxySuite}\n`)])
    },
    {
      name: 'nginx stream pair', bin: 'nginx', pkg: 'nginx libnginx-mod-stream',
      inbound: async (bin, port, target) => { const t = `in${++n}`; return await run(bin, ['-p', dir, '-c', file('in.nginx', `${nginxHead(t)}stream { server { listen 127.0.0.1:${port} ssl; ssl_certificate ${c('db')}; ssl_certificate_key ${k('db')}; ssl_client_certificate ${ca}; ssl_verify_client on; ${SUITE === '' ? '' : `ssl_conf_command Ciphersuites ${SUITE}; `}proxy_pass 127.0.0.1:${target}; } }\n`)]) },
      outbound: async (bin, port, inPort) => { const t = `out${++n}`; return await run(bin, ['-p', dir, '-c', file('out.nginx', `${nginxHead(t)}stream { server { listen 127.0.0.1:${port}; proxy_pass 127.0.0.1:${inPort}; proxy_ssl on; proxy_ssl_certificate ${c('web')}; proxy_ssl_certificate_key ${k('web')}; proxy_ssl_trusted_certificate ${ca}; proxy_ssl_verify on; proxy_ssl_name db; proxy_ssl_server_name on; ${SUITE === '' ? '' : `proxy_ssl_conf_command Ciphersuites ${SUITE}; `}} }\n`)]) }
    }
  ]
  return defaults ? peers.filter(p => p.bin !== 'stunnel4').map(p => ({ ...p, name: `${p.name}, default workers` })) : peers
}
