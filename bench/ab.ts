/**
 * Interleaved A/B runs under connection churn or rr: mesh-proxy builds (another
 * commit's checkout), node flags, environment or mesh-proxy flags, next to any
 * pair of pairs.ts for reference, each with both proxies' CPU per request taken
 * apart by side. How the levers in bench/RESULTS.md are measured.
 *
 *   npm run build && node dist/bench/ab.js [--load churn|rr] [--rounds 4] [--duration 6] [--pin] <variant> ...
 *
 * A variant is `label=target[|node flags[|ENV=value,...[|mesh-proxy flags]]]`.
 * The target is a built checkout holding bin/mesh-proxy.js (`.` for this one,
 * or a `git worktree add` of another commit, npm-installed and built), or part
 * of the name of a pair in pairs.ts (`haproxy`, `nginx`, `resumption`, ...).
 * Examples: `base=/tmp/before` `now=.` `warn=.|||--log-level warn`
 * `young16=.|--min-semi-space-size=16 --max-semi-space-size=16`.
 *
 * --pin puts the outbound proxy (all its threads) on CPU 0 and the inbound on
 * CPU 1 (taskset); wrk and the backend stay free. On the 2-core project machine
 * the spread of one configuration fell from ~40 % to ~5 % (bench/history/session-5.md). Each
 * side is one process here (no --workers).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { seedMeshDir } from '../src/meshdir/seed.js'
import type { MeshLayout } from '../src/meshdir/layout.js'
import { arg, cpuSeconds, ensure, freePort, listening, machine, median, pairKinds, parseWrk, runTool, sidecarArgs, startBackend, stopAll, type Pair } from './pairs.js'

/** One side of the comparison. */
export interface Variant {
  readonly label: string
  /** A checkout with bin/mesh-proxy.js, or part of a pair's name. */
  readonly target: string
  readonly nodeFlags: string[]
  readonly env: Record<string, string>
  readonly flags: string[]
}

const words = (s: string | undefined): string[] => (s ?? '').split(' ').filter(w => w !== '')

/** Parse `label=target[|node flags[|ENV=value,...[|mesh-proxy flags]]]`; throws naming the part that is wrong. */
export function parseVariant (spec: string): Variant {
  const eq = spec.indexOf('=')
  if (eq <= 0) throw new Error(`${JSON.stringify(spec)}: a variant is label=target[|node flags[|ENV=value,...[|mesh-proxy flags]]]`)
  const [target, nodeFlags, env, flags, ...extra] = spec.slice(eq + 1).split('|')
  if (target === undefined || target === '' || extra.length > 0) throw new Error(`${JSON.stringify(spec)}: give a target, and at most node flags, environment and mesh-proxy flags after it, separated by |`)
  const pairs = (env ?? '').split(',').filter(kv => kv !== '').map(kv => {
    const i = kv.indexOf('=')
    if (i <= 0) throw new Error(`${JSON.stringify(spec)}: ${JSON.stringify(kv)} is not ENV=value`)
    return [kv.slice(0, i), kv.slice(i + 1)] as const
  })
  return { label: spec.slice(0, eq), target, nodeFlags: words(nodeFlags), env: Object.fromEntries(pairs), flags: words(flags) }
}

/** Inbound and outbound process of a started variant. */
interface Started { port: number, inPid: number, outPid: number, stop: () => Promise<void> }

async function start (v: Variant, layout: MeshLayout, target: number): Promise<Started> {
  const bin = join(resolve(v.target), 'bin', 'mesh-proxy.js')
  if (!existsSync(bin)) {
    const kind = pairKinds(layout).find(k => k.name.includes(v.target))
    if (kind === undefined) throw new Error(`${v.label}: ${v.target} is neither a checkout with bin/mesh-proxy.js nor part of a pair's name`)
    const p: Pair = await kind.start(target)
    return { port: p.port, inPid: p.pids[0]!, outPid: p.pids[p.pids.length - 1]!, stop: p.stop }
  }
  // Ready = the port accepts (a variant may log nothing at info, e.g. --log-level warn);
  // the output goes through a pipe, as in the other benchmarks, and is drained unread.
  const side = (args: string[]): ChildProcess => {
    const c = spawn(process.execPath, [...v.nodeFlags, bin, ...args, '--admin', 'off', ...v.flags], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...v.env } })
    c.stdout!.resume()
    return c
  }
  const [inPort, outPort] = [await freePort(), await freePort()]
  const a = side(sidecarArgs.inbound(layout.root, inPort, target))
  const b = side(await sidecarArgs.outbound(layout.root, outPort))
  try {
    await Promise.all([listening(inPort, a), listening(outPort, b)])
  } catch (err) {
    await stopAll([a, b])
    throw err
  }
  return { port: outPort, inPid: a.pid!, outPid: b.pid!, stop: () => stopAll([a, b]) }
}

async function main (): Promise<void> {
  const load = arg('load', 'churn')
  const rounds = Number(arg('rounds', '4'))
  const duration = Number(arg('duration', '6'))
  const pin = process.argv.includes('--pin')
  const valued = new Set(['--load', '--rounds', '--duration'])
  const specs = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--') && !valued.has(all[i - 1] ?? ''))
  const variants = specs.map(parseVariant)
  if (variants.length === 0) throw new Error('give at least one variant, e.g. now=. (see the head of bench/ab.ts)')
  const wrk = ensure('wrk', 'wrk')
  const nginx = ensure('nginx', 'nginx libnginx-mod-stream')
  if (wrk === null || nginx === null) { process.stderr.write('skipping the A/B: it needs wrk and nginx (Debian packages)\n'); return }
  const taskset = pin ? ensure('taskset', 'util-linux') : null
  const layout = await seedMeshDir(mkdtempSync(join(tmpdir(), 'mesh-ab-')))
  const backend = await startBackend(nginx)
  const rows = variants.map(v => ({ v, rps: [] as number[], inUs: [] as number[], outUs: [] as number[] }))
  try {
    for (let r = 0; r < rounds; r++) {
      for (const row of rows) {
        const s = await start(row.v, layout, load === 'rr' ? backend.keepAlive : backend.closing)
        try {
          if (taskset !== null) {
            execFileSync(taskset, ['-a', '-pc', '1', String(s.inPid)], { stdio: 'ignore' })
            execFileSync(taskset, ['-a', '-pc', '0', String(s.outPid)], { stdio: 'ignore' })
          }
          const url = `http://127.0.0.1:${s.port}/`
          await runTool(wrk, ['-t2', '-c32', '-d2s', url]) // warm-up
          const before = [cpuSeconds(s.inPid), cpuSeconds(s.outPid)]
          const n = parseWrk(await runTool(wrk, ['-t2', '-c32', `-d${duration}s`, url])).requests
          row.rps.push(n / duration)
          row.inUs.push((cpuSeconds(s.inPid) - before[0]!) / n * 1e6)
          row.outUs.push((cpuSeconds(s.outPid) - before[1]!) / n * 1e6)
          process.stderr.write(`round ${r + 1} ${row.v.label}: ${(n / duration).toFixed(0)}/s\n`)
        } finally {
          await s.stop()
        }
      }
    }
  } finally {
    await backend.stop()
  }
  const unit = load === 'rr' ? 'req' : 'conn'
  const list = (xs: number[]): string => xs.map(x => x.toFixed(0)).join(' ')
  process.stdout.write(`A/B, ${load}: wrk -t2 -c32 -d${duration}s, ${rounds} interleaved rounds${pin ? ', proxies pinned (outbound CPU 0, inbound CPU 1)' : ''}; ${machine()}\n\n`)
  process.stdout.write(`| variant | ${unit}/s (median) | runs | inbound CPU µs per ${unit} | outbound CPU µs per ${unit} | runs (in+out) |\n|---|---:|---|---:|---:|---|\n`)
  for (const { v, rps, inUs, outUs } of rows) {
    process.stdout.write(`| ${v.label} | ${median(rps).toFixed(0)} | ${list(rps)} | ${median(inUs).toFixed(0)} | ${median(outUs).toFixed(0)} | ${list(inUs.map((x, i) => x + outUs[i]!))} |\n`)
  }
}

if (process.argv[1]?.endsWith('ab.js') === true) {
  main().catch((err: unknown) => { process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`); process.exitCode = 1 })
}
