/**
 * Is memory given back? Rounds of many connections held through a mesh-proxy
 * pair (each proxy its own process, as in pairs.ts) and released to zero:
 * both sidecars' RSS when idle, with every connection held, and after release,
 * per round. Where it is held is read from each sidecar on SIGUSR2, when
 * MESH_PROXY_MEMORY_REPORT names a file (process.memoryUsage(): V8 heap,
 * external, ArrayBuffers; the rest of RSS is native: OpenSSL and malloc).
 *
 *   npm run build && node dist/bench/memory-rounds.js [--hold 9000] [--rounds 3]
 *
 * Extra environment for the sidecars (e.g. MALLOC_ARENA_MAX=2) is passed through,
 * so one variant is compared with another in the same way.
 */
import { connect, createServer, type Socket, type AddressInfo } from 'node:net'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { arg, freePort, machine, rssBytes, sidecarArgs, startNode, stopAll, BIN } from './pairs.js'
import { seedMeshDir } from '../src/meshdir/seed.js'
import { fileURLToPath } from 'node:url'

const HOLD = Number(arg('hold', '9000'))
const ROUNDS = Number(arg('rounds', '3'))
const BATCH = 200
/** Quiet seconds after release before the released figure is read. */
const SETTLE_S = Number(arg('settle', '15'))

async function echoServer (): Promise<{ port: number, close: () => void }> {
  const s = createServer(c => { c.on('error', () => {}); c.pipe(c) })
  s.listen(0, '127.0.0.1')
  await once(s, 'listening')
  return { port: (s.address() as AddressInfo).port, close: () => s.close() }
}

async function openEchoed (port: number): Promise<Socket> {
  const c = connect(port, '127.0.0.1')
  c.on('error', () => {})
  await once(c, 'connect')
  c.write('x')
  await once(c, 'data')
  return c
}

/** The sum of both sidecars' active connections, from their admin /metrics. */
async function active (admins: number[]): Promise<number> {
  let n = 0
  for (const a of admins) {
    const text = await (await fetch(`http://127.0.0.1:${a}/metrics`)).text()
    for (const m of text.matchAll(/^mesh_proxy_connections_active\{[^}]*\} (\d+)/gm)) n += Number(m[1])
  }
  return n
}

async function until (what: string, ok: () => Promise<boolean>): Promise<void> {
  for (let k = 0; k < 600; k++) { if (await ok()) return; await new Promise(resolve => setTimeout(resolve, 100)) }
  throw new Error(`timed out waiting for ${what}`)
}

/** process.memoryUsage() of a sidecar, through its SIGUSR2 report. */
async function usage (pid: number, file: string): Promise<Record<string, number>> {
  rmSync(file, { force: true })
  process.kill(pid, 'SIGUSR2')
  await until('a memory report', async () => existsSync(file) && readFileSync(file, 'utf8').endsWith('\n'))
  return JSON.parse(readFileSync(file, 'utf8')) as Record<string, number>
}

/** RSS after SETTLE_S seconds of quiet (an allocator may hand memory back some seconds after it is freed: jemalloc's decay). */
async function settledRss (pid: number): Promise<number> {
  return rssBytes(pid)
}

const mb = (b: number): string => (b / 1024 / 1024).toFixed(0)

async function main (): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mesh-proxy-mem-'))
  await seedMeshDir(dir) // certs-dev: its intentions allow web -> db
  process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --import=${fileURLToPath(new URL('./memory-report.js', import.meta.url))}`.trim()
  const echo = await echoServer()
  const [inPort, outPort, adminIn, adminOut] = [await freePort(), await freePort(), await freePort(), await freePort()]
  const started = (l: string): boolean => l.includes('"sidecar started"')
  const report = (who: string): string => join(dir, `${who}.memory.json`)
  process.env.MESH_PROXY_MEMORY_REPORT = report('db')
  const db = await startNode([BIN, ...sidecarArgs.inbound(dir, inPort, echo.port), '--admin', `127.0.0.1:${adminIn}`], started)
  process.env.MESH_PROXY_MEMORY_REPORT = report('web')
  const web = await startNode([BIN, ...await sidecarArgs.outbound(dir, outPort), '--admin', `127.0.0.1:${adminOut}`], started)
  const pids = { db: db.pid!, web: web.pid! }
  const admins = [adminIn, adminOut]
  for (const c of await Promise.all(Array.from({ length: 50 }, async () => await openEchoed(outPort)))) c.destroy()
  await until('the warm-up to close', async () => await active(admins) === 0)
  const idle = { db: rssBytes(pids.db), web: rssBytes(pids.web) }
  const rows: string[] = []
  rows.push(`| round | db held | db released | web held | web released | db heap / external after release | web heap / external after release |`)
  rows.push('|---|---|---|---|---|---|---|')
  for (let r = 1; r <= ROUNDS; r++) {
    const held: Socket[] = []
    for (let k = 0; k < HOLD; k += BATCH) held.push(...await Promise.all(Array.from({ length: Math.min(BATCH, HOLD - k) }, async () => await openEchoed(outPort))))
    const atPeak = { db: rssBytes(pids.db), web: rssBytes(pids.web) }
    for (const c of held) c.destroy()
    await until('every connection to close', async () => await active(admins) === 0)
    // An allocator may hand memory back some seconds after it is freed (jemalloc's decay): the figure is the RSS once it settles.
    await new Promise(resolve => setTimeout(resolve, SETTLE_S * 1000))
    const after = { db: await settledRss(pids.db), web: await settledRss(pids.web) }
    const [udb, uweb] = [await usage(pids.db, report('db')), await usage(pids.web, report('web'))]
    const hx = (u: Record<string, number>): string => {
      const g = (u as unknown as { afterGc?: Record<string, number> }).afterGc
      return `${mb(u.heapUsed!)} / ${mb(u.external!)}${g === undefined ? '' : ` (after a full GC: rss ${mb(g.rss!)}, heap ${mb(g.heapUsed!)})`}`
    }
    rows.push(`| ${r} | ${mb(atPeak.db)} | ${mb(after.db)} | ${mb(atPeak.web)} | ${mb(after.web)} | ${hx(udb)} | ${hx(uweb)} |`)
    if (process.env.BENCH_MALLOC_TRIM === '1') {
      // Investigation only: what glibc would give back if asked (gdb calls malloc_trim(0) in each sidecar).
      const { execFileSync } = await import('node:child_process')
      for (const [who, pid] of Object.entries(pids)) {
        execFileSync('gdb', ['-p', String(pid), '-batch', '-ex', 'call (int)malloc_trim(0)'], { stdio: 'ignore' })
        process.stderr.write(`round ${r}: ${who} after malloc_trim(0): ${mb(rssBytes(pid))} MB\n`)
      }
    }
    process.stderr.write(`round ${r}: db usage ${JSON.stringify(udb)}\nround ${r}: web usage ${JSON.stringify(uweb)}\n`)
    process.stderr.write(`round ${r}: db ${mb(atPeak.db)} -> ${mb(after.db)} MB, web ${mb(atPeak.web)} -> ${mb(after.web)} MB\n`)
  }
  await stopAll([db, web])
  echo.close()
  const env = Object.entries(process.env).filter(([k]) => /^(MALLOC_|GLIBC_TUNABLES|LD_PRELOAD)/.test(k)).map(([k, v]) => `${k}=${v}`).join(' ')
  console.log([`memory rounds: ${HOLD} echo connections held through a mesh-proxy pair, then released (figure read ${SETTLE_S} s later), ${ROUNDS} rounds; RSS in MB; ${machine()}${env === '' ? '' : `; ${env}`}`, '',
    `idle (after warm-up): db ${mb(idle.db)} MB, web ${mb(idle.web)} MB`, '', ...rows].join('\n'))
}

await main()
