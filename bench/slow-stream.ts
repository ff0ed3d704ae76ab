/**
 * Slow-stream isolation (issue 23: one slow stream must not stall the others):
 * through a mesh-proxy pair with --upstream-tunnel, one stream of --size-mb MiB
 * (default 512) is pushed to a sink, alone and then beside a stalled stream of
 * the same tunnel (its app reads nothing; its client has pushed 64 MiB into it,
 * far more than its window). Reports the sibling's MB/s both ways, median of
 * --runs (default 3). The test of the same property, without timing, is
 * test/integration/tunnels.test.ts.
 *
 *   npm run build && node dist/bench/slow-stream.js [--size-mb 512] [--runs 3]
 */
import { createServer, connect, type Socket } from 'node:net'
import { mkdtempSync } from 'node:fs'
import { once } from 'node:events'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { seedMeshDir } from '../src/meshdir/seed.js'
import { arg, freePort, machine, median, pairKinds } from './pairs.js'

const SIZE = Number(arg('size-mb', '512')) * 1024 * 1024
const RUNS = Number(arg('runs', '3'))
const STALLED_BYTES = 64 * 1024 * 1024
const CHUNK = Buffer.alloc(64 * 1024, 7)

/** A sink that answers with the byte count once the client ends; a connection whose first byte is 'S' is never read (the stalled one). */
async function startSink (port: number): Promise<{ close: () => void }> {
  const s = createServer(c => {
    c.on('error', () => {})
    let n = 0
    c.once('data', (d: Buffer) => {
      if (d[0] === 0x53) { c.pause(); return }
      n += d.length
      c.on('data', (more: Buffer) => { n += more.length })
    })
    c.on('end', () => c.end(String(n)))
  })
  s.listen(port, '127.0.0.1')
  await once(s, 'listening')
  return { close: () => { s.close() } }
}

/** Push `bytes` through `port`; MB/s until the sink's count comes back. */
async function push (port: number, bytes: number): Promise<number> {
  const c = connect({ port, host: '127.0.0.1', allowHalfOpen: true })
  await once(c, 'connect')
  const t0 = performance.now()
  let reply = ''
  c.on('data', (d: Buffer) => { reply += d.toString() })
  const closed = once(c, 'end')
  for (let sent = 0; sent < bytes; sent += CHUNK.length) if (!c.write(CHUNK)) await once(c, 'drain')
  c.end()
  await closed
  if (reply !== String(bytes)) throw new Error(`the sink counted ${reply}, not ${bytes}`)
  c.destroy()
  return bytes / 1e6 / ((performance.now() - t0) / 1000)
}

/** A stream that pushes until its window and every buffer on the way are full: resolves once its writes have waited 500 ms for 'drain'. */
async function stall (port: number): Promise<Socket> {
  const c = connect({ port, host: '127.0.0.1' })
  c.on('error', () => {})
  await once(c, 'connect')
  c.write('S')
  let sent = 0
  await new Promise<void>(resolve => {
    let quiet: NodeJS.Timeout | undefined
    const more = (): void => {
      clearTimeout(quiet)
      while (sent < STALLED_BYTES) {
        sent += CHUNK.length
        if (!c.write(CHUNK)) { c.once('drain', more); quiet = setTimeout(resolve, 500); return }
      }
      resolve()
    }
    more()
  })
  return c
}

async function main (): Promise<void> {
  const layout = await seedMeshDir(mkdtempSync(join(tmpdir(), 'mesh-bench-')))
  const kind = pairKinds(layout).find(k => k.name === 'mesh-proxy pair, --upstream-tunnel')!
  const target = await freePort()
  const sink = await startSink(target)
  const alone: number[] = []
  const beside: number[] = []
  for (let r = 0; r < RUNS; r++) {
    const pair = await kind.start(target)
    try {
      await push(pair.port, 1024 * 1024) // the tunnel exists before either measurement
      alone.push(await push(pair.port, SIZE))
      const stalled = await stall(pair.port)
      beside.push(await push(pair.port, SIZE))
      stalled.destroy()
    } finally {
      await pair.stop()
    }
  }
  sink.close()
  const mb = (a: number[]): string => `${median(a).toFixed(0)} (${Math.min(...a).toFixed(0)}-${Math.max(...a).toFixed(0)})`
  process.stdout.write([
    `slow-stream isolation, mesh-proxy pair with --upstream-tunnel, ${SIZE / 1024 / 1024} MiB per push, median of ${RUNS}; ${machine()}`,
    '',
    '| sibling stream | MB/s (min-max) |',
    '|---|---:|',
    `| alone on its tunnel | ${mb(alone)} |`,
    `| beside a stalled stream (64 MiB pushed, its app reads nothing) | ${mb(beside)} |`,
    `| ratio | ${(median(beside) / median(alone)).toFixed(2)}× |`,
    ''
  ].join('\n'))
}

await main()
