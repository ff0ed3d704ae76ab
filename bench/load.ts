/**
 * Request/response, connection churn, memory per held connection and start-up
 * time, for every proxy pair in bench/pairs.ts, side by side in one run:
 *
 * - rr: wrk, --conns (32) keep-alive connections, --duration (10 s), against an
 *   nginx backend answering a tiny HTTP response: requests/s, p50, p99.
 * - churn: the same with the backend closing every connection, so every request
 *   is a new connection: a full mTLS handshake and (mesh-proxy) an SVID check
 *   and intention decision on each. New connections/s, p50, p99.
 * - memory: RSS growth of both proxy processes per held connection, --hold
 *   (3000) echo connections open at once, each proved end to end by an echo.
 * - startup: process start until the inbound proxy can serve (mesh-proxy and
 *   Envoy: the admin /ready answers 200; the others: the port accepts).
 *
 * Medians of --runs (3) with min-max. wrk and nginx come from Debian (installed
 * when root); without them rr and churn are skipped with the reason printed.
 *
 *   npm run build && node dist/bench/load.js [--runs 3] [--duration 10] [--conns 32] [--hold 3000] [--only rr,churn,memory,startup]
 *     [--pairs <name part>,…]   (only the pairs whose name contains one of these)
 */
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'
import { mkdtempSync } from 'node:fs'
import { once } from 'node:events'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { seedMeshDir } from '../src/meshdir/seed.js'
import { arg, cpuTimes, ensure, forFigure, isCPeer, machine, median, pairKinds, parseWrk, rssBytes, runTool, startBackend, type PairKind } from './pairs.js'

const RUNS = Number(arg('runs', '3'))
const DURATION = Number(arg('duration', '10'))
const CONNS = Number(arg('conns', '32'))
const HOLD = Number(arg('hold', '3000'))
const ONLY = arg('only', 'rr,churn,memory,startup').split(',')
const PAIRS = arg('pairs', '').split(',').filter(x => x !== '')

const range = (xs: number[], digits = 0): string => `${Math.min(...xs).toFixed(digits)}-${Math.max(...xs).toFixed(digits)}`

/** cpuUs: both proxies' CPU (user+sys) per request in µs; user: the user-space share of it. */
interface RrRow { name: string, rps: number[], p50: number[], p99: number[], errors: number[], cpuUs: number[], user: number[] }

async function wrkRows (wrk: string, kinds: PairKind[], target: number, label: string): Promise<RrRow[]> {
  const rows: RrRow[] = []
  for (const kind of [{ name: 'no proxy (backend direct)', start: async (t: number) => ({ port: t, pids: [], stop: async () => {} }) }, ...kinds]) {
    const row: RrRow = { name: kind.name, rps: [], p50: [], p99: [], errors: [], cpuUs: [], user: [] }
    for (let i = 0; i < RUNS; i++) {
      const pair = await kind.start(target)
      const url = `http://127.0.0.1:${pair.port}/`
      await runTool(wrk, ['-t2', `-c${CONNS}`, '-d2s', url]) // warm-up
      const cpu = (): { user: number, sys: number } => pair.pids.map(cpuTimes).reduce((a, t) => ({ user: a.user + t.user, sys: a.sys + t.sys }), { user: 0, sys: 0 })
      const c0 = cpu()
      const r = parseWrk(await runTool(wrk, ['-t2', `-c${CONNS}`, `-d${DURATION}s`, '--latency', url]))
      const c1 = cpu()
      const used = c1.user - c0.user + c1.sys - c0.sys
      row.cpuUs.push(used / r.requests * 1e6); row.user.push(used === 0 ? NaN : (c1.user - c0.user) / used)
      row.rps.push(r.rps); row.p50.push(r.p50); row.p99.push(r.p99); row.errors.push(r.errors)
      await pair.stop()
    }
    process.stderr.write(`${label} ${kind.name}: ${median(row.rps).toFixed(0)}/s\n`)
    rows.push(row)
  }
  return rows
}

function wrkTable (title: string, unit: string, rows: RrRow[], against: string[]): string {
  const ref = against.map(name => rows.find(r => r.name.startsWith(name)))
  const best = rows.filter(r => isCPeer(r.name)).sort((a, b) => median(b.rps) - median(a.rps))[0]
  const cols = best === undefined ? [] : ref.filter(r => r !== undefined)
  const lines = [
    title, '',
    `| path | ${unit} (median) | min-max | p50 ms | p99 ms | errors |${cols.map(r => ` × ${r!.name.split(' ')[0]} |`).join('')}${best === undefined ? '' : ' p99 × best C |'} proxies' CPU µs per ${unit.split('/')[0]!.replace(/s$/, '')} | user share |`,
    `|---|---:|---:|---:|---:|---:|${cols.map(() => '---:|').join('')}${best === undefined ? '' : '---:|'}---:|---:|`
  ]
  for (const r of rows) {
    const direct = r.name.startsWith('no proxy')
    const ratios = cols.map(c => direct ? ' — |' : ` ${(median(r.rps) / median(c!.rps)).toFixed(2)}× |`).join('')
    const p99 = best === undefined ? '' : direct ? ' — |' : ` ${(median(r.p99) / median(best.p99)).toFixed(2)}× |`
    lines.push(`| ${r.name} | ${median(r.rps).toFixed(0)} | ${range(r.rps)} | ${median(r.p50).toFixed(2)} | ${median(r.p99).toFixed(2)} | ${r.errors.reduce((a, x) => a + x, 0)} |${ratios}${p99}${direct ? ' — | — |' : ` ${median(r.cpuUs).toFixed(0)} | ${(100 * median(r.user)).toFixed(0)} % |`}`)
  }
  return lines.join('\n') + '\n'
}

/** An echo server in this process. */
async function startEcho (): Promise<{ port: number, close: () => void }> {
  const conns = new Set<Socket>()
  const s = createServer(c => { conns.add(c); c.on('error', () => {}); c.once('close', () => conns.delete(c)); c.pipe(c) })
  s.listen(0, '127.0.0.1', 20000)
  await once(s, 'listening')
  return { port: (s.address() as AddressInfo).port, close: () => { for (const c of conns) c.destroy(); s.close() } }
}

/** Open one connection through `port` and prove it end to end with one echoed byte. */
async function openEchoed (port: number): Promise<Socket> {
  const c = connect({ port, host: '127.0.0.1' })
  c.on('error', () => {})
  await once(c, 'connect')
  c.write('x')
  const [d] = await once(c, 'data') as [Buffer]
  if (d.toString() !== 'x') throw new Error('echo mismatch')
  return c
}

interface MemRow { name: string, perConnKB: number[], baseMB: number[] }

async function memoryRows (kinds: PairKind[]): Promise<MemRow[]> {
  const rows: MemRow[] = []
  for (const kind of kinds) {
    const row: MemRow = { name: kind.name, perConnKB: [], baseMB: [] }
    for (let i = 0; i < RUNS; i++) {
      const echo = await startEcho()
      const pair = await kind.start(echo.port)
      // Warm up (handshake code paths, JIT) with a few connections, then measure from there.
      for (const c of await Promise.all(Array.from({ length: 20 }, async () => await openEchoed(pair.port)))) c.destroy()
      await new Promise(resolve => setTimeout(resolve, 500)) // let the proxies finish closing those (no event to await across processes)
      const before = pair.pids.reduce((a, p) => a + rssBytes(p), 0)
      const held: Socket[] = []
      for (let k = 0; k < HOLD; k += 100) held.push(...await Promise.all(Array.from({ length: Math.min(100, HOLD - k) }, async () => await openEchoed(pair.port))))
      const after = pair.pids.reduce((a, p) => a + rssBytes(p), 0)
      row.perConnKB.push((after - before) / HOLD / 1024)
      row.baseMB.push(before / 1024 / 1024)
      for (const c of held) c.destroy()
      await pair.stop()
      echo.close()
    }
    process.stderr.write(`memory ${kind.name}: ${median(row.perConnKB).toFixed(1)} KB/conn\n`)
    rows.push(row)
  }
  return rows
}

function memoryTable (rows: MemRow[]): string {
  const nginx = rows.find(r => r.name.startsWith('nginx'))
  const lines = [
    `memory: RSS growth of both proxies with ${HOLD} echo connections held open, median of ${RUNS} runs; ${machine()}`, '',
    `| path | KB per connection (median) | min-max | both proxies' RSS before, MB |${nginx === undefined ? '' : ' × nginx |'}`,
    `|---|---:|---:|---:|${nginx === undefined ? '' : '---:|'}`
  ]
  for (const r of rows) lines.push(`| ${r.name} | ${median(r.perConnKB).toFixed(1)} | ${range(r.perConnKB, 1)} | ${median(r.baseMB).toFixed(0)} |${nginx === undefined ? '' : ` ${(median(r.perConnKB) / median(nginx.perConnKB)).toFixed(2)}× |`}`)
  return lines.join('\n') + '\n'
}

async function startupTable (kinds: PairKind[]): Promise<string> {
  const runs = Math.max(RUNS, 5)
  const echo = await startEcho()
  const lines = [
    `startup: process start until the inbound proxy serves (mesh-proxy and Envoy: /ready is 200; others: the port accepts), median of ${runs}; ${machine()}`, '',
    '| proxy (inbound side) | ms (median) | min-max |', '|---|---:|---:|'
  ]
  for (const kind of kinds) {
    const ms: number[] = []
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now()
      const one = await kind.startOne(echo.port)
      await one.ready
      ms.push(performance.now() - t0)
      await one.stop()
    }
    lines.push(`| ${kind.name.replace(/ pair(?=$|,)/, '')} | ${median(ms).toFixed(0)} | ${range(ms)} |`)
  }
  echo.close()
  return lines.join('\n') + '\n'
}

async function main (): Promise<void> {
  const layout = await seedMeshDir(mkdtempSync(join(tmpdir(), 'mesh-bench-')))
  const kinds = pairKinds(layout).filter(k => PAIRS.length === 0 || PAIRS.some(p => k.name.includes(p)))
  const out: string[] = []
  if (ONLY.includes('rr') || ONLY.includes('churn')) {
    const wrk = ensure('wrk', 'wrk')
    const nginx = ensure('nginx', 'nginx libnginx-mod-stream')
    if (wrk === null || nginx === null) {
      process.stderr.write('skipping rr and churn: they need wrk and nginx (Debian packages wrk, nginx)\n')
    } else {
      const backend = await startBackend(nginx)
      try {
        if (ONLY.includes('rr')) out.push(wrkTable(`rr: wrk -t2 -c${CONNS} -d${DURATION}s, keep-alive, tiny response from nginx, median of ${RUNS} runs; ${machine()}`, 'req/s', await wrkRows(wrk, forFigure(kinds, 'rr'), backend.keepAlive, 'rr'), ['haproxy', 'nginx']))
        if (ONLY.includes('churn')) out.push(wrkTable(`churn: wrk -t2 -c${CONNS} -d${DURATION}s, the backend closes every connection (one new mTLS connection per request), median of ${RUNS} runs; ${machine()}`, 'conn/s', await wrkRows(wrk, forFigure(kinds, 'churn'), backend.closing, 'churn'), ['haproxy', 'nginx']))
      } finally {
        await backend.stop()
      }
    }
  }
  if (ONLY.includes('memory')) out.push(memoryTable(await memoryRows(forFigure(kinds, 'memory'))))
  if (ONLY.includes('startup')) out.push(await startupTable(forFigure(kinds, 'startup')))
  process.stdout.write(out.join('\n'))
}

await main()
