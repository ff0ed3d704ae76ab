/**
 * Idle sidecar and start-up (issue 23's targets: idle RSS at most bare Node +
 * 8 MB, start-up to `/ready` at most 120 ms). One inbound sidecar, started
 * --runs times (default 6) per way of getting its certificates:
 * - files: --cert/--key/--ca and --intentions (as under Consul or SPIRE's helper);
 * - mesh dir: the built-in CA's mesh dir, the leaf already on disk (a restart).
 * Start-up is spawn until the admin's `/ready` answers 200 (polled every 2 ms); RSS is read from
 * /proc 1.5 s after that. The baseline is bare Node with `net` and `tls` loaded.
 * Medians, on the Node that runs this script.
 *
 *   npm run build && node dist/bench/idle.js [--runs 6]
 */
import { spawn } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { once } from 'node:events'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'node:http'
import { CERTS_DEV_DIR, seedMeshDir } from '../src/meshdir/seed.js'
import { BIN, arg, freePort, machine, median, rssBytes } from './pairs.js'

const RUNS = Number(arg('runs', '6'))
const SETTLE_MS = 1500
const dev = (f: string): string => join(CERTS_DEV_DIR, f)

async function readyStatus (admin: string): Promise<number> {
  return await new Promise(resolve => {
    const req = request(`http://${admin}/ready`, res => { res.resume(); resolve(res.statusCode ?? 0) })
    req.on('error', () => resolve(0))
    req.end()
  })
}

/** Spawn, poll /ready every 2 ms until 200 (at most 30 s), settle, read RSS, stop. */
async function once1 (args: string[]): Promise<{ ms: number, rssMB: number }> {
  // A port of the kernel's choice, known before the spawn: polling starts at once,
  // not when the 'admin listening' line arrives (pino writes it late while start-up keeps the loop busy).
  const admin = `127.0.0.1:${await freePort()}`
  const t0 = performance.now()
  const child = spawn(process.execPath, [BIN, ...args, '--admin', admin], { stdio: ['ignore', 'ignore', 'inherit'] })
  try {
    let up = false
    for (let i = 0; i < 15000 && !up; i++) {
      if (child.exitCode !== null) throw new Error(`sidecar exited ${child.exitCode}`)
      up = await readyStatus(admin) === 200
      if (!up) await new Promise(resolve => setTimeout(resolve, 2))
    }
    if (!up) throw new Error('sidecar not ready after 30 s')
    const ms = performance.now() - t0
    await new Promise(resolve => setTimeout(resolve, SETTLE_MS))
    return { ms, rssMB: rssBytes(child.pid!) / 1e6 }
  } finally {
    child.kill('SIGTERM')
    if (child.exitCode === null) await once(child, 'exit')
  }
}

async function bare (): Promise<number> {
  const child = spawn(process.execPath, ['-e', "require('net'); require('tls'); console.log('up'); setInterval(() => {}, 1e6)"], { stdio: ['ignore', 'pipe', 'inherit'] })
  await once(child.stdout!, 'data')
  await new Promise(resolve => setTimeout(resolve, SETTLE_MS))
  const mb = rssBytes(child.pid!) / 1e6
  child.kill()
  await once(child, 'exit')
  return mb
}

async function main (): Promise<void> {
  const mesh = await seedMeshDir(mkdtempSync(join(tmpdir(), 'mesh-idle-')))
  const app = `127.0.0.1:${await freePort()}`
  const ways: Array<[string, string[]]> = [
    ['files (--cert/--key/--ca)', ['run', '--service', 'db', '--listen', '127.0.0.1:0', '--to', app, '--cert', dev('db.pem'), '--key', dev('db.key'), '--ca', dev('ca.pem'), '--intentions', dev('intentions.json'), '--log-level', 'info']],
    ['mesh dir, leaf on disk', ['run', '--service', 'db', '--listen', '127.0.0.1:0', '--to', app, '--mesh-dir', mesh.root, '--log-level', 'info']]
  ]
  await once1(ways[1]![1]) // the mesh dir's first start issues db's leaf; what is measured is a restart
  const bareMB: number[] = []
  for (let i = 0; i < RUNS; i++) bareMB.push(await bare())
  const lines = [
    `idle sidecar: ${RUNS} starts each, median; RSS ${SETTLE_MS} ms after /ready; Node ${process.version}; ${machine()}`, '',
    '| certificates from | start-up to /ready | idle RSS | over bare Node |', '|---|---:|---:|---:|'
  ]
  for (const [name, args] of ways) {
    const ms: number[] = []
    const rss: number[] = []
    for (let i = 0; i < RUNS; i++) {
      const r = await once1(args)
      ms.push(r.ms)
      rss.push(r.rssMB)
    }
    lines.push(`| ${name} | ${median(ms).toFixed(0)} ms | ${median(rss).toFixed(1)} MB | +${(median(rss) - median(bareMB)).toFixed(1)} MB |`)
  }
  lines.push(`| bare Node, \`net\` and \`tls\` loaded | | ${median(bareMB).toFixed(1)} MB | |`)
  process.stdout.write(lines.join('\n') + '\n')
}

await main()
