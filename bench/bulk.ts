/**
 * Bulk: one TCP stream of --size-gb GiB (default 3) pushed through each proxy
 * pair (bench/pairs.ts) with iperf3 (Debian package iperf3; installed when
 * root, else the built-in Node pusher is used and the table says so). Reports
 * Gbit/s (median of --runs, with min-max) and the proxies' CPU seconds per GB
 * (user+sys of both proxy processes, from /proc), as a ratio to the best C peer.
 *
 *   npm run build && node dist/bench/bulk.js [--size-gb 3] [--runs 3] [--only <name part>,…] [--save out.json]
 */
import { createServer, connect } from 'node:net'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { once } from 'node:events'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { seedMeshDir } from '../src/meshdir/seed.js'
import { arg, cpuSeconds, ensure, forFigure, freePort, iperf, isCPeer, machine, median, pairKinds, spawnUntilLine } from './pairs.js'

const SIZE = Math.round(Number(arg('size-gb', '3')) * 1024 * 1024 * 1024)
const RUNS = Number(arg('runs', '3'))

/**
 * The built-in target: the pusher announces its byte count in a 16-byte
 * header; the sink answers with the count it received once all arrived (so no
 * proxy's half-close behaviour is involved).
 */
async function startSink (port: number): Promise<{ close: () => Promise<void> }> {
  const s = createServer(c => {
    let n = 0
    let head = ''
    c.on('data', (d: Buffer) => {
      if (head.length < 16) head += d.subarray(0, 16 - head.length).toString()
      n += d.length
      if (head.length === 16 && n === Number(head) + 16) c.write(String(n - 16))
    })
    c.on('error', () => {})
  })
  s.listen(port, '127.0.0.1')
  await once(s, 'listening')
  return { close: async () => { s.close() } }
}

/** The built-in pusher: `bytes` through `port`, MB/s until the sink's answer. */
async function push (port: number, bytes: number): Promise<number> {
  const chunk = Buffer.alloc(64 * 1024, 7)
  const c = connect({ port, host: '127.0.0.1' })
  await once(c, 'connect')
  const t0 = performance.now()
  let reply = ''
  const answered = new Promise<void>((resolve, reject) => {
    c.on('data', (d: Buffer) => { reply += d.toString(); if (reply === String(bytes)) resolve() })
    c.once('close', () => reject(new Error(`closed after ${reply === '' ? 'no answer' : reply}`)))
  })
  c.write(String(bytes).padStart(16, '0'))
  for (let sent = 0; sent < bytes; sent += chunk.length) {
    if (!c.write(sent + chunk.length <= bytes ? chunk : chunk.subarray(0, bytes - sent))) await once(c, 'drain')
  }
  await answered
  const secs = (performance.now() - t0) / 1000
  c.destroy()
  return bytes / 1e6 / secs
}

/**
 * A target on `port`: an iperf3 server (ready when it says so), or the
 * built-in counting sink. Started after the pair, so that the C proxies'
 * readiness probes never reach it (iperf3 serves one client at a time).
 */
async function startTarget (iperf3: string | null, port: number): Promise<{ close: () => Promise<void> }> {
  if (iperf3 === null) return await startSink(port)
  const { child, ready } = spawnUntilLine(iperf3, ['-s', '-p', String(port), '-B', '127.0.0.1', '--forceflush'], l => l.includes('Server listening'))
  await ready
  return { close: async () => { const gone = once(child, 'exit'); child.kill(); await gone } }
}

interface Row { name: string, mbps: number[], cpuPerGB: number[], proxied: boolean }

async function measure (name: string, iperf3: string | null, start: (target: number) => Promise<{ port: number, pids: number[], stop: () => Promise<void> }>): Promise<Row> {
  const row: Row = { name, mbps: [], cpuPerGB: [], proxied: false }
  const transfer = (port: number, bytes: number): Promise<number> => iperf3 === null ? push(port, bytes) : iperf(iperf3, port, bytes)
  for (let i = 0; i < RUNS; i++) {
    const targetPort = await freePort()
    const { port, pids, stop } = await start(targetPort)
    const target = await startTarget(iperf3, targetPort)
    row.proxied = pids.length > 0
    await transfer(port, 256 * 1024 * 1024) // warm-up: handshakes, JIT
    const cpu0 = pids.reduce((a, p) => a + cpuSeconds(p), 0)
    row.mbps.push(await transfer(port, SIZE))
    const cpu1 = pids.reduce((a, p) => a + cpuSeconds(p), 0)
    row.cpuPerGB.push((cpu1 - cpu0) / (SIZE / 1e9))
    await stop()
    await target.close()
  }
  return row
}

/** The bulk table, markdown. */
export function bulkTable (rows: Row[], tool: string): string {
  const bestC = Math.max(...rows.filter(r => isCPeer(r.name)).map(r => median(r.mbps)))
  const gbit = (mbps: number): string => (mbps * 8 / 1000).toFixed(2)
  const lines = [
    `bulk, one stream of ${(SIZE / 1024 ** 3).toFixed(1)} GiB with ${tool}, median of ${RUNS} runs; ${machine()}`,
    '',
    '| path | Gbit/s (median) | min-max | proxy CPU s/GB | × best C peer |',
    '|---|---:|---:|---:|---:|'
  ]
  for (const r of rows) {
    const ratio = !Number.isFinite(bestC) || !r.proxied ? '—' : `${(median(r.mbps) / bestC).toFixed(2)}×`
    lines.push(`| ${r.name} | ${gbit(median(r.mbps))} | ${gbit(Math.min(...r.mbps))}-${gbit(Math.max(...r.mbps))} | ${median(r.cpuPerGB).toFixed(2)} | ${ratio} |`)
  }
  return lines.join('\n') + '\n'
}

async function main (): Promise<void> {
  const layout = await seedMeshDir(mkdtempSync(join(tmpdir(), 'mesh-bench-')))
  const iperf3 = ensure('iperf3', 'iperf3')
  if (iperf3 === null) process.stderr.write('bulk: using the built-in Node pusher instead of iperf3 (it shares the cores with the proxies)\n')
  const rows: Row[] = [await measure('no proxy (loopback ceiling)', iperf3, async target => ({ port: target, pids: [], stop: async () => {} }))]
  const only = arg('only', '').split(',').filter(x => x !== '') // the pairs whose name contains one of these; all when none
  for (const kind of forFigure(pairKinds(layout), 'bulk').filter(k => only.length === 0 || only.some(o => k.name.includes(o)))) rows.push(await measure(kind.name, iperf3, t => kind.start(t)))
  process.stdout.write(bulkTable(rows, iperf3 === null ? 'the built-in Node pusher' : 'iperf3'))
  const save = arg('save', '')
  if (save !== '') writeFileSync(save, JSON.stringify(rows, null, 2))
}

await main()
