// A double of the SPIRE agent's Workload API for the faults a real agent cannot be
// made to show on cue: a UNIX-socket gRPC server (node:http2) serving
// FetchX509SVID from workload.proto (test/fixtures/spiffe/workload.proto), written
// from the public proto and the SPIFFE Workload API standard, not from our client.
// It answers as SPIRE does: no `workload.spiffe.io: true` header is
// INVALID_ARGUMENT "security header missing from request"; no identity is
// PERMISSION_DENIED "no identity issued"; otherwise an X509SVIDResponse now and
// one more on every push(), on every open stream.
import type { Test } from 'tap'
import http2 from 'node:http2'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { grpcFrame } from '../../src/core/grpc.js'
import { pemBlocks } from '../../src/core/identity/x509.js'
import { encodeX509SvidResponse, type WorkloadSvid, type X509SvidResponse } from '../../src/core/identity/workload-api.js'

/** What the double's FetchX509SVID answers. */
export type DoubleAnswer = X509SvidResponse | { readonly status: number, readonly message: string }

/** A served Workload API; `restart()` drops every stream and listens again on the same path. */
export class WorkloadApiDouble {
  readonly path: string
  readonly requests: http2.IncomingHttpHeaders[] = []
  #answer: DoubleAnswer
  #server: http2.Http2Server | undefined
  readonly #streams = new Set<http2.ServerHttp2Stream>()
  readonly #waiters: Array<{ n: number, resolve: () => void }> = []

  constructor (path: string, answer: DoubleAnswer) {
    this.path = path
    this.#answer = answer
  }

  /** `unix:///…`, as SPIFFE_ENDPOINT_SOCKET takes it. */
  get address (): string { return `unix://${this.path}` }
  get openStreams (): number { return this.#streams.size }

  async listen (): Promise<void> {
    await rm(this.path, { force: true })
    const server = http2.createServer()
    server.on('stream', (stream, headers) => this.#serve(stream, headers))
    await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(this.path, resolve) })
    this.#server = server
  }

  #serve (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    this.requests.push(headers)
    for (const w of this.#waiters.filter(w => this.requests.length >= w.n)) { this.#waiters.splice(this.#waiters.indexOf(w), 1); w.resolve() }
    stream.on('error', () => {})
    if (headers[':path'] !== '/SpiffeWorkloadAPI/FetchX509SVID') return this.#status(stream, 12, 'unknown method')
    if (headers['workload.spiffe.io'] !== 'true') return this.#status(stream, 3, 'security header missing from request')
    const a = this.#answer
    if ('status' in a) return this.#status(stream, a.status, a.message)
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true })
    this.#streams.add(stream)
    stream.on('close', () => this.#streams.delete(stream))
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }))
    stream.write(grpcFrame(encodeX509SvidResponse(a)))
  }

  /** A Trailers-Only response, as grpc-go sends an error before any message. */
  #status (stream: http2.ServerHttp2Stream, status: number, message: string): void {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(status), 'grpc-message': encodeURIComponent(message) }, { endStream: true })
  }

  /** Resolves once `n` FetchX509SVID calls have arrived in all. */
  async requested (n: number): Promise<void> {
    if (this.requests.length >= n) return
    await new Promise<void>(resolve => this.#waiters.push({ n, resolve }))
  }

  /** Answer new calls with `answer`, and send it on every open stream when it is a response. */
  push (answer: DoubleAnswer): void {
    this.#answer = answer
    if ('status' in answer) return
    for (const s of this.#streams) s.write(grpcFrame(encodeX509SvidResponse(answer)))
  }

  /** Bytes that are not a valid X509SVIDResponse, on every open stream. */
  pushGarbage (): void {
    for (const s of this.#streams) s.write(grpcFrame(Buffer.from([0x0a, 0x7f, 0x01])))
  }

  /** Stop listening and drop every connection (the agent dies); `listen()` again to restart it. */
  async stop (): Promise<void> {
    const server = this.#server
    this.#server = undefined
    if (server === undefined) return
    for (const s of this.#streams) s.session?.destroy()
    this.#streams.clear()
    await new Promise<void>(resolve => server.close(() => resolve()))
    await rm(this.path, { force: true })
  }
}

/** Start a double on a socket in a short temporary dir (a UNIX socket path has at most 107 bytes); stopped and removed at teardown. */
export async function workloadDouble (t: Test, answer: DoubleAnswer): Promise<WorkloadApiDouble> {
  const dir = await mkdtemp(join(tmpdir(), 'mp-wl-'))
  const d = new WorkloadApiDouble(join(dir, 'agent.sock'), answer)
  t.teardown(async () => { await d.stop(); await rm(dir, { recursive: true, force: true }) })
  await d.listen()
  return d
}

async function der (file: string, type: string): Promise<Uint8Array[]> {
  return pemBlocks(await readFile(file, 'utf8')).filter(b => b.type === type).map(b => b.der)
}

/** The certificates of a PEM file, as DER (a bundle field's content). */
export async function certsDer (file: string): Promise<Uint8Array[]> { return await der(file, 'CERTIFICATE') }

/** An X509SVID entry from PEM files (openssl's): the cert file's chain, the key, the bundle's roots, all as DER. */
export async function svidFromFiles (spiffeId: string, files: { cert: string, key: string, bundle: string }, hint = ''): Promise<WorkloadSvid> {
  const [key] = await der(files.key, 'PRIVATE KEY')
  if (key === undefined) throw new Error(`${files.key}: no PKCS#8 PRIVATE KEY block`)
  return { spiffeId, chain: await certsDer(files.cert), keyDer: key, bundle: await certsDer(files.bundle), hint }
}
