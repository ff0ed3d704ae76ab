/**
 * Where a mesh-proxy pair's CPU goes under one load, from V8's own sampling
 * profiler: both sidecars run with `node --cpu-prof`, the load runs, both stop
 * gracefully (SIGTERM) and write their .cpuprofile, and this prints a flame
 * summary per sidecar:
 *
 * - the share of sampled time by kind of frame: idle (waiting in epoll),
 *   garbage collection, native code outside any JavaScript call (OpenSSL
 *   handshakes and record work started by libuv callbacks, "(program)"),
 *   Node's C++ bindings called from JavaScript (TLS writes, socket writes),
 *   Node's own JavaScript (node:…), dependencies (node_modules) and ours
 *   (dist/src);
 * - "under our code": the time in every stack that has one of our frames in
 *   it, wherever the leaf is (what a rewrite of our code could reach at most);
 * - the functions with the most self time.
 *
 *   npm run build && node dist/bench/profile.js [--load rr|churn|bulk] [--duration 10] [--keep <dir>]
 *
 * rr and churn use wrk against an nginx backend (keep-alive, or closing every
 * connection), bulk one iperf3 stream of 2 GiB; all from Debian, installed when
 * root, otherwise skipped with the reason printed.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { seedMeshDir } from '../src/meshdir/seed.js'
import { summarize, summaryTable, type CpuProfile } from './flame.js'
import { BIN, arg, ensure, freePort, iperf, listening, machine, runTool, sidecarArgs, spawnUntilLine, startBackend, stopAll } from './pairs.js'

const LOAD = arg('load', 'rr')
const DURATION = Number(arg('duration', '10'))

async function main (): Promise<void> {
  const wrk = LOAD === 'bulk' ? null : ensure('wrk', 'wrk')
  const nginx = LOAD === 'bulk' ? null : ensure('nginx', 'nginx libnginx-mod-stream')
  const iperf3 = LOAD === 'bulk' ? ensure('iperf3', 'iperf3') : null
  if (LOAD === 'bulk' ? iperf3 === null : wrk === null || nginx === null) {
    process.stderr.write(`skipping the ${LOAD} profile: it needs ${LOAD === 'bulk' ? 'iperf3' : 'wrk and nginx'} (Debian packages)\n`)
    return
  }
  const layout = await seedMeshDir(mkdtempSync(join(tmpdir(), 'mesh-prof-')))
  const dir = arg('keep', '') === '' ? mkdtempSync(join(tmpdir(), 'mesh-prof-out-')) : arg('keep', '')
  const backend = nginx === null ? null : await startBackend(nginx)
  const target = backend === null ? await freePort() : LOAD === 'churn' ? backend.closing : backend.keepAlive
  const [inPort, outPort] = [await freePort(), await freePort()]
  // Ready when both ports accept (stdout is not read: the profiled processes must not block on a pipe).
  const profiled = (side: string, args: string[]): ChildProcess => spawn(process.execPath, ['--cpu-prof', '--cpu-prof-dir', join(dir, side), BIN, ...args, '--admin', 'off'], { stdio: ['ignore', 'ignore', 'inherit'] })
  const inbound = profiled('inbound', sidecarArgs.inbound(layout.root, inPort, target))
  const outbound = profiled('outbound', await sidecarArgs.outbound(layout.root, outPort))
  let what: string
  try {
    await Promise.all([listening(inPort, inbound), listening(outPort, outbound)])
    if (LOAD === 'bulk') {
      const srv = spawnUntilLine(iperf3!, ['-s', '-p', String(target), '-B', '127.0.0.1', '--forceflush'], l => l.includes('Server listening'))
      await srv.ready
      try {
        await iperf(iperf3!, outPort, 2 * 1024 ** 3)
      } finally {
        await stopAll([srv.child], true)
      }
      what = 'bulk: one iperf3 stream of 2 GiB'
    } else {
      await runTool(wrk!, ['-t2', '-c32', `-d${DURATION}s`, `http://127.0.0.1:${outPort}/`])
      what = `${LOAD}: wrk -t2 -c32 -d${DURATION}s${LOAD === 'churn' ? ', a new connection per request' : ', keep-alive'}`
    }
  } finally {
    await stopAll([inbound, outbound], true) // SIGTERM: a graceful exit writes the profiles
    await backend?.stop()
  }
  const out = [`### --cpu-prof flame summary, ${what}; ${machine()}`, '']
  for (const side of ['outbound', 'inbound']) {
    const files = readdirSync(join(dir, side)).filter(f => f.endsWith('.cpuprofile'))
    if (files.length !== 1) throw new Error(`expected one profile in ${join(dir, side)}, found ${files.length}`)
    const p = JSON.parse(readFileSync(join(dir, side, files[0]!), 'utf8')) as CpuProfile
    out.push(summaryTable(`**${side} sidecar**`, summarize(p)))
  }
  process.stdout.write(out.join('\n'))
}

await main()
