// What the failure-semantics tests share: a byte pattern streamed with
// backpressure and its sha256, how a plaintext connection ended as the app saw
// it (bytes, sha256, reset or clean end), apps that download, and a sidecar as
// a real process that can be killed -9.
import type { Test } from 'tap'
import { createHash } from 'node:crypto'
import type { Socket } from 'node:net'
import { makeMesh, startApp, type TestMesh } from './mesh.js'
import type { ChildProcess } from 'node:child_process'
import { spawnCli } from './cli.js'
import type { LogSink } from './mesh.js'

export const MB = 1 << 20
const CHUNK = Buffer.alloc(64 * 1024)
for (let k = 0; k < CHUNK.length; k++) CHUNK[k] = (k * 7 + 3) & 0xff

/** Write `total` bytes of CHUNK's pattern to `s` with backpressure; end after it when `end`. */
export function stream (s: Socket, total: number, end: boolean): void {
  let sent = 0
  const more = (): void => {
    while (sent < total) {
      const n = Math.min(CHUNK.length, total - sent)
      sent += n
      if (!s.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) { s.once('drain', more); return }
    }
    if (end) s.end()
  }
  s.on('error', () => {})
  more()
}

/** The sha256 of `total` bytes of the pattern. */
export function patternSha (total: number): string {
  const h = createHash('sha256')
  for (let sent = 0; sent < total; sent += CHUNK.length) h.update(CHUNK.subarray(0, Math.min(CHUNK.length, total - sent)))
  return h.digest('hex')
}

/** How a plaintext connection ended, from the app's side. */
export interface Ending { bytes: number, sha: string, reset: boolean, cleanEnd: boolean }

/**
 * Read everything from `s` (calling `onBytes` as it grows) until it closes, and
 * tell a reset from an orderly end.
 *
 * An 'end' alone does not say which: libuv reports a reset that arrives
 * together with the last bytes as an end of stream (uv__stream_io: POLLHUP
 * after a partial read is taken for EOF, the ECONNRESET is never read). So
 * when 'end' comes and `s` can still write, drain asks the kernel: it writes
 * one byte. A connection its peer ended in order takes it (half-closed, the
 * peer still reads); a reset one refuses it (EPIPE or ECONNRESET). Tests that
 * end `s` themselves before its 'end' are not probed.
 */
export function drain (s: Socket, onBytes: (n: number) => void = () => {}): Promise<Ending> {
  const h = createHash('sha256')
  let bytes = 0
  let reset = false
  let cleanEnd = false
  let probed = false
  // Our own 'end' handling: without it, net would refuse the probe itself (writeAfterFIN).
  s.allowHalfOpen = true
  s.on('data', (d: Buffer) => { h.update(d); bytes += d.length; onBytes(bytes) })
  s.on('end', () => {
    if (s.writableEnded || s.destroyed) { cleanEnd = true; s.end(); return }
    probed = true
    s.write(PROBE, err => { if (err == null) { cleanEnd = true; s.end() } else reset = true })
  })
  s.on('error', (e: Error & { code?: string }) => { if (!probed && e.code === 'ECONNRESET') reset = true })
  return new Promise(resolve => s.once('close', () => resolve({ bytes, sha: h.digest('hex'), reset, cleanEnd })))
}

/** The byte drain() writes after an 'end' to learn whether the connection was reset. */
const PROBE = Buffer.from('?')

/** A db app that sends `total` bytes to each connection (then ends, when `end`). */
export async function downloadApp (t: Test, total: number, end = true): Promise<number> {
  return (await startApp(t, s => { s.resume(); stream(s, total, end) })).port
}

export async function meshAllowing (t: Test): Promise<TestMesh> {
  const mesh = await makeMesh(t)
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }])
  return mesh
}

/** `mesh-proxy run` as a real process; resolves with its first port ('sidecar started'). */
export async function spawnSidecar (t: Test, args: string[]): Promise<{ kill: () => Promise<void>, inbound: number | undefined, upstream: number | undefined, child: ChildProcess, sink: LogSink }> {
  const p = spawnCli(t, ['run', '--admin', '127.0.0.1:0', ...args])
  const started = await p.sink.waitFor(l => l.msg === 'sidecar started')
  const port = (s: unknown): number | undefined => typeof s === 'string' ? Number(s.split(' => ')[0]!.split(':').at(-1)) : undefined
  return {
    child: p.child,
    sink: p.sink,
    inbound: port(started.inbound),
    upstream: port((started.upstreams as string[])[0]),
    kill: async () => { const exited = new Promise(resolve => p.child.once('exit', resolve)); p.child.kill('SIGKILL'); await exited }
  }
}

