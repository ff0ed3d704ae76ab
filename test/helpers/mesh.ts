// Test fixtures built per run: a CA, leaves and a mesh dir in a tap temp dir,
// sidecars with captured logs, and plain TCP apps. Nothing is committed.
import type { Test } from 'tap'
import { Writable } from 'node:stream'
import { createHash, randomBytes } from 'node:crypto'
import { connect, createServer, type Server, type Socket, type AddressInfo } from 'node:net'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pino, type Logger } from 'pino'
import { createRootCa, issueCert, type IssuedCert } from '../../src/ca/issue.js'
import { consulServiceId } from '../../src/core/identity/spiffe-id.js'
import { meshLayout, writeMeshSettings, type MeshLayout } from '../../src/meshdir/layout.js'
import type { Intention, Action } from '../../src/core/intentions/table.js'
import { resolveConfig } from '../../src/core/config/resolve.js'
import { Sidecar, type SidecarAddresses } from '../../src/sidecar/sidecar.js'
import { MetricsRegistry } from '../../src/metrics/metrics.js'

export const TD = '11111111-2222-3333-4444-555555555555.consul'

type T = Test

/** A CA and a mesh dir seeded with leaves for `services`. */
export interface TestMesh {
  readonly dir: string
  readonly layout: MeshLayout
  readonly ca: IssuedCert
  leaf (service: string, opts?: { td?: string, dc?: string, ca?: IssuedCert, notBefore?: Date, notAfter?: Date }): Promise<IssuedCert>
  writeIntentions (intentions: Partial<Intention>[], defaultPolicy?: Action, index?: number): Promise<void>
}

export async function makeMesh (t: T, services: string[] = ['web', 'db', 'billing']): Promise<TestMesh> {
  const dir = t.testdir({})
  const layout = meshLayout(dir)
  const ca = await createRootCa({ trustDomain: TD })
  await writeMeshSettings(layout, { trustDomain: TD, datacenter: 'dc1' })
  await mkdir(join(dir, 'ca'), { recursive: true })
  await writeFile(layout.caCert, ca.certPem)
  await writeFile(layout.caKey, ca.keyPem, { mode: 0o600 })
  await writeFile(layout.bundle, ca.certPem)
  const leaf = async (service: string, o: { td?: string, dc?: string, ca?: IssuedCert, notBefore?: Date, notAfter?: Date } = {}): Promise<IssuedCert> => {
    const id = consulServiceId({ trustDomain: o.td ?? TD, datacenter: o.dc ?? 'dc1', service })
    return await issueCert({ ca: o.ca ?? ca, uris: [id.uri], dnsNames: [service], commonName: service, ...(o.notBefore ? { notBefore: o.notBefore } : {}), ...(o.notAfter ? { notAfter: o.notAfter } : {}) })
  }
  await mkdir(join(dir, 'certs'), { recursive: true })
  for (const s of services) {
    const l = await leaf(s)
    await writeFile(layout.certFor(s), l.certPem)
    await writeFile(layout.keyFor(s), l.keyPem, { mode: 0o600 })
  }
  const writeIntentions = async (intentions: Partial<Intention>[], defaultPolicy: Action = 'deny', index = 1): Promise<void> => {
    const tmp = layout.intentions + '.tmp'
    await writeFile(tmp, JSON.stringify({ index, defaultPolicy, intentions }))
    const { rename } = await import('node:fs/promises')
    await rename(tmp, layout.intentions)
  }
  return { dir, layout, ca, leaf, writeIntentions }
}

/** A log sink that keeps parsed pino lines. */
export class LogSink extends Writable {
  readonly lines: Array<Record<string, unknown>> = []
  readonly #waiters: Array<{ pred: (l: Record<string, unknown>) => boolean, resolve: (l: Record<string, unknown>) => void }> = []
  #partial = ''
  override _write (chunk: Buffer, _enc: string, cb: () => void): void {
    // A chunk may end mid-line (a child process's stdout): keep the rest for the next one.
    const texts = (this.#partial + chunk.toString()).split('\n')
    this.#partial = texts.pop()!
    for (const text of texts) {
      if (text === '') continue
      const line = JSON.parse(text) as Record<string, unknown>
      this.lines.push(line)
      for (const w of [...this.#waiters]) {
        if (w.pred(line)) { this.#waiters.splice(this.#waiters.indexOf(w), 1); w.resolve(line) }
      }
    }
    cb()
  }

  /** Resolve with the first line (past or future) matching `pred`. */
  waitFor (pred: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
    const hit = this.lines.find(pred)
    if (hit !== undefined) return Promise.resolve(hit)
    return new Promise(resolve => this.#waiters.push({ pred, resolve }))
  }

  /** Resolve with the first line written from now on that matches `pred`. */
  waitForNext (pred: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
    return new Promise(resolve => this.#waiters.push({ pred, resolve }))
  }

  /** Lines whose msg is `msg`. */
  msgs (msg: string): Array<Record<string, unknown>> { return this.lines.filter(l => l.msg === msg) }
}

export function captureLogger (level = 'debug'): { logger: Logger, sink: LogSink } {
  const sink = new LogSink()
  return { logger: pino({ level }, sink), sink }
}

/** A running sidecar with its log sink and metrics. */
export interface TestSidecar {
  readonly sidecar: Sidecar
  readonly addrs: SidecarAddresses
  readonly sink: LogSink
  readonly metrics: MetricsRegistry
  /** Close gracefully and assert nothing leaked (registry and gauges at 0). */
  stop (): Promise<void>
}

/** Start a sidecar from CLI-shaped flags; closes at teardown and asserts no leaked connections. */
export async function startSidecar (t: T, flags: Record<string, unknown>, extra: { rootChangeJitterMs?: number } = {}): Promise<TestSidecar> {
  const config = resolveConfig({ flags, env: {}, file: null })
  const { logger, sink } = captureLogger()
  const metrics = new MetricsRegistry()
  const sidecar = new Sidecar({ config, logger, metrics, ...extra })
  const addrs = await sidecar.start()
  t.teardown(() => sidecar.destroy())
  const stop = async (): Promise<void> => {
    await sidecar.close()
    t.equal(sidecar.connections, 0, `${String(flags.service)}: no live connections after close`)
    t.equal(metrics.get('mesh_proxy_connections_active', { direction: 'inbound' }), 0, `${String(flags.service)}: inbound active gauge back to 0`)
    t.equal(metrics.get('mesh_proxy_connections_active', { direction: 'outbound' }), 0, `${String(flags.service)}: outbound active gauge back to 0`)
  }
  return { sidecar, addrs, sink, metrics, stop }
}

/** A TCP app that hands each accepted socket to `onConn`; closed at teardown. */
export async function startApp (t: T, onConn: (s: Socket) => void): Promise<{ server: Server, port: number, accepted: () => number }> {
  let accepted = 0
  const sockets = new Set<Socket>()
  const server = createServer({ allowHalfOpen: true }, s => {
    accepted++
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    s.on('error', () => {})
    onConn(s)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => { for (const s of sockets) s.destroy(); server.close(() => resolve()) }))
  return { server, port: (server.address() as AddressInfo).port, accepted: () => accepted }
}

/** An app that echoes bytes back and ends when the client ends. */
export function echo (s: Socket): void { s.pipe(s) }

/** One plaintext connection to `port` (an upstream port, before an echo app): send, read the echo, close. Resolves with what came back. */
export async function echoRoundTrip (port: number, msg: string): Promise<string> {
  return (await appTry(port, msg)).got
}

/**
 * As an app would: connect to `port`, send `msg`, end once it has come back.
 * `reset` says whether the connection ended in a reset (ECONNRESET), which is
 * how a sidecar tells an app that its peer failed, rather than a clean end.
 */
export async function appTry (port: number, msg: string): Promise<{ got: string, reset: boolean }> {
  const s = connect(port, '127.0.0.1')
  let reset = false
  s.on('error', (e: Error & { code?: string }) => { if (e.code === 'ECONNRESET') reset = true })
  let got = ''
  s.on('data', (d: Buffer) => { got += d.toString(); if (got === msg) s.end() })
  s.write(msg)
  await new Promise(resolve => s.once('close', resolve))
  return { got, reset }
}

/** Connect with mTLS as a raw client (verifying the server against `caPem`); resolves when the socket closes. */
export async function mtlsTry (port: number, client: { certPem: string, keyPem: string } | null, caPem: string, send = 'hello'): Promise<{ secure: boolean, received: string, error?: string }> {
  const { connect } = await import('node:tls')
  return await new Promise(resolve => {
    let received = ''
    let secure = false
    let error: string | undefined
    const s = connect({ host: '127.0.0.1', port, servername: 'db', ca: caPem, ...(client === null ? {} : { cert: client.certPem, key: client.keyPem }) }, () => { secure = true; s.end(send) })
    s.on('data', (d: Buffer) => { received += d.toString() })
    s.on('error', (e: Error & { code?: string }) => { error = e.code ?? e.message })
    s.on('close', () => resolve({ secure, received, ...(error === undefined ? {} : { error }) }))
  })
}

/**
 * Send `size` random bytes to a plaintext port (an upstream of a sidecar, before
 * an echo) with backpressure, half-close, read to the end: sha256 of both ways.
 */
export async function echoSha (port: number, size: number): Promise<{ sent: string, received: string, receivedBytes: number }> {
  const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true })
  s.on('error', () => {})
  await new Promise(resolve => s.once('connect', resolve))
  const sent = createHash('sha256')
  const received = createHash('sha256')
  let receivedBytes = 0
  s.on('data', (d: Buffer) => { received.update(d); receivedBytes += d.length })
  const ended = new Promise(resolve => s.once('close', resolve))
  for (let left = size; left > 0; left -= 64 * 1024) {
    const chunk = randomBytes(Math.min(left, 64 * 1024))
    sent.update(chunk)
    if (!s.write(chunk)) await new Promise(resolve => s.once('drain', resolve))
  }
  s.end()
  await ended
  return { sent: sent.digest('hex'), received: received.digest('hex'), receivedBytes }
}
