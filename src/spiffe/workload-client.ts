/**
 * A SPIFFE Workload API client for the X.509 profile: one streaming
 * `FetchX509SVID` call over gRPC (HTTP/2 over a UNIX socket, or TCP to an IP
 * as the standard allows), with the `workload.spiffe.io: true` metadata every
 * call must carry. Each X509SVIDResponse is handed on decoded; when the stream
 * or the connection ends, for any reason, it is opened again after a backoff
 * that doubles up to a ceiling and starts over after a good response.
 * node:http2 and node:net only (no gRPC library: the dependency card).
 * Followed: the SPIFFE Workload API and Workload Endpoint standards
 * (spiffe/spiffe standards/), gRPC PROTOCOL-HTTP2.md.
 */
import http2 from 'node:http2'
import net from 'node:net'
import type { WorkloadEndpoint } from '../core/config/types.js'
import { WorkloadApiError } from '../core/errors.js'
import { decodeGrpcMessage, describeGrpcStatus, grpcFrame, GrpcDeframer } from '../core/grpc.js'
import { decodeX509SvidResponse, type X509SvidResponse } from '../core/identity/workload-api.js'
import { notASocket } from '../net/unix.js'


/** What the client needs. */
export interface WorkloadClientOptions {
  readonly endpoint: WorkloadEndpoint
  /** A new response: the SVIDs and bundles in force from now. */
  readonly onUpdate: (r: X509SvidResponse) => void
  /** The stream failed (`attempt` counts failures since the last good response); it is reopened after a backoff. */
  readonly onError: (err: WorkloadApiError, attempt: number) => void
  /** First retry delay (default 250 ms), doubled per failure up to maxBackoffMs (default 10 s). */
  readonly minBackoffMs?: number
  readonly maxBackoffMs?: number
}

const FETCH_X509_SVID = '/SpiffeWorkloadAPI/FetchX509SVID'

/** Follows FetchX509SVID until close(). */
export class WorkloadApiClient {
  readonly #o: WorkloadClientOptions
  #session: http2.ClientHttp2Session | undefined
  #timer: NodeJS.Timeout | undefined
  #failures = 0
  #closed = false

  constructor (o: WorkloadClientOptions) {
    this.#o = o
  }

  /** Open the stream (and keep it open). */
  start (): void {
    if (this.#closed || this.#session !== undefined) return
    const { endpoint } = this.#o
    const session = http2.connect(endpoint.kind === 'unix' ? 'http://localhost' : `http://${endpoint.host}:${endpoint.port}`, {
      createConnection: () => endpoint.kind === 'unix' ? net.connect(endpoint.path) : net.connect(endpoint.port, endpoint.host)
    })
    this.#session = session
    let failed = false
    const fail = (err: WorkloadApiError): void => {
      if (failed) return
      failed = true
      session.destroy()
      this.#retry(err)
    }
    session.on('error', err => fail(unreachable(endpoint, err)))
    session.on('close', () => fail(new WorkloadApiError(`the Workload API at ${describe(endpoint)} closed the connection`, { unreachable: true })))
    this.#fetch(session, fail)
  }

  #fetch (session: http2.ClientHttp2Session, fail: (err: WorkloadApiError) => void): void {
    const where = describe(this.#o.endpoint)
    const stream = session.request({
      ':method': 'POST',
      ':path': FETCH_X509_SVID,
      'content-type': 'application/grpc',
      te: 'trailers',
      'workload.spiffe.io': 'true'
    })
    const deframer = new GrpcDeframer()
    const status = (h: http2.IncomingHttpHeaders): void => {
      const code = Number(h['grpc-status'])
      const message = decodeGrpcMessage(h['grpc-message'] as string | undefined)
      fail(new WorkloadApiError(code === 0 ? `the Workload API at ${where} ended the stream` : `the Workload API at ${where} answered ${describeGrpcStatus(code, message)}`))
    }
    stream.on('response', h => {
      if (h[':status'] !== 200) fail(new WorkloadApiError(`the Workload API at ${where} answered HTTP ${String(h[':status'])}; is this a SPIFFE Workload API socket?`))
      else if (h['grpc-status'] !== undefined) status(h) // Trailers-Only: an error before any message
    })
    stream.on('data', (chunk: Buffer) => {
      try {
        for (const msg of deframer.push(chunk)) this.#deliver(decodeX509SvidResponse(msg))
      } catch (err) {
        fail(new WorkloadApiError(`the Workload API at ${where} sent a bad X509SVIDResponse: ${(err as Error).message}`, { cause: err }))
      }
    })
    stream.on('trailers', status)
    // Before the connection is up, the stream fails first, with the connect error as its cause.
    stream.on('error', err => fail(session.connecting ? unreachable(this.#o.endpoint, err.cause ?? err) : new WorkloadApiError(`FetchX509SVID at ${where} failed: ${err.message}`, { cause: err, unreachable: true })))
    stream.on('close', () => fail(new WorkloadApiError(`the Workload API at ${where} ended the stream`, { unreachable: true })))
    stream.end(grpcFrame(new Uint8Array(0)))
  }

  #deliver (r: X509SvidResponse): void {
    this.#failures = 0
    this.#o.onUpdate(r)
  }

  #retry (err: WorkloadApiError): void {
    this.#session = undefined
    if (this.#closed) return
    this.#failures++
    this.#o.onError(err, this.#failures)
    const min = this.#o.minBackoffMs ?? 250
    const delay = Math.min(this.#o.maxBackoffMs ?? 10_000, min * 2 ** Math.min(this.#failures - 1, 16))
    this.#timer = setTimeout(() => { this.#timer = undefined; this.start() }, delay)
    this.#timer.unref()
  }

  /** Stop following. Idempotent. */
  close (): void {
    this.#closed = true
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#session?.destroy()
    this.#session = undefined
  }
}

const CONNECT_WHY: Readonly<Record<string, string>> = {
  ENOENT: 'no socket there (is the agent running, and is that its socket path?)',
  ECONNREFUSED: 'connection refused (nothing listens there)',
  EACCES: 'permission denied (this user may not open the socket)',
  ENOTSOCK: 'not a socket'
}

function unreachable (e: WorkloadEndpoint, cause: unknown): WorkloadApiError {
  const err = cause as NodeJS.ErrnoException
  const path = e.kind === 'unix' ? e.path : undefined
  const what = path !== undefined ? notASocket(path) : undefined
  const why = what !== undefined
    ? `${path!} is ${what}, not a socket: give the agent's socket file (SPIRE's default is unix:///tmp/spire-agent/public/api.sock)`
    : (err.code !== undefined ? CONNECT_WHY[err.code] : undefined) ?? err.message
  return new WorkloadApiError(`cannot reach the Workload API at ${describe(e)}: ${why}`, { cause, unreachable: true })
}

/** `unix:///run/spire/agent.sock`, `tcp://127.0.0.1:8081`: the endpoint as the user wrote it. */
export function describe (e: WorkloadEndpoint): string {
  return e.kind === 'unix' ? `unix://${e.path}` : `tcp://${e.host}:${e.port}`
}
