/**
 * The admin HTTP server (loopback by default): /ready, /healthz, /metrics,
 * /config, /certs, /intentions. Read-only; it never changes the sidecar.
 */
import { createServer, type Server, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import type { Logger } from 'pino'
import type { HostPort } from '../config/types.js'
import type { MetricsRegistry } from '../metrics/metrics.js'
import type { Sidecar } from '../proxy/sidecar.js'
import { listen } from '../proxy/listen.js'

/** Prometheus text exposition content type. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

/** Serves the sidecar's state; start before the sidecar so /ready says "starting". */
export class AdminServer {
  readonly #sidecar: Sidecar
  readonly #metrics: MetricsRegistry
  readonly #log: Logger
  readonly #sockets = new Set<Socket>()
  #server: Server | undefined
  #closing: Promise<void> | undefined

  constructor (opts: { sidecar: Sidecar, metrics: MetricsRegistry, logger: Logger }) {
    this.#sidecar = opts.sidecar
    this.#metrics = opts.metrics
    this.#log = opts.logger
  }

  /** Bind; resolves with the address. */
  async start (at: HostPort): Promise<HostPort> {
    const server = createServer((req, res) => this.#handle(req, res))
    server.on('connection', s => { this.#sockets.add(s); s.once('close', () => this.#sockets.delete(s)) })
    this.#server = server
    await listen(server, at, '--admin')
    const a = server.address() as AddressInfo
    this.#log.info({ admin: `${a.address}:${a.port}` }, 'admin listening')
    return { host: a.address, port: a.port }
  }

  #handle (req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0]
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: 'only GET' })
    switch (path) {
      case '/ready': {
        const s = this.#sidecar.status()
        return json(res, s.ready ? 200 : 503, s)
      }
      case '/healthz':
        return json(res, 200, { status: 'ok' })
      case '/metrics':
        res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE })
        res.end(this.#metrics.render())
        return
      case '/config':
        return json(res, 200, this.#sidecar.config)
      case '/certs':
        return json(res, 200, this.#certs())
      case '/intentions': {
        const doc = this.#sidecar.intentionsDoc
        return doc === undefined ? json(res, 404, { error: 'no inbound listener, so no intentions are loaded' }) : json(res, 200, doc)
      }
      default:
        return json(res, 404, { error: `unknown path ${path}`, paths: ['/ready', '/healthz', '/metrics', '/config', '/certs', '/intentions'] })
    }
  }

  #certs (): unknown {
    if (this.#sidecar.status().state === 'starting') return { error: 'not loaded yet' }
    const { svid, bundle } = this.#sidecar.tls
    const leaf = svid.chain[0]!
    return {
      spiffeId: svid.id.uri,
      serial: leaf.serial,
      notBefore: leaf.notBefore.toISOString(),
      notAfter: leaf.notAfter.toISOString(),
      issuer: leaf.issuer,
      roots: bundle.roots.map(r => ({ trustDomain: r.trustDomain, subject: r.cert.subject, serial: r.cert.serial, notAfter: r.cert.notAfter.toISOString(), fingerprint256: r.cert.fingerprint256 }))
    }
  }

  /** Stop serving. Idempotent. */
  close (): Promise<void> {
    this.#closing ??= new Promise<void>(resolve => {
      if (this.#server === undefined) return resolve()
      this.#server.close(() => resolve())
      for (const s of this.#sockets) s.destroy()
    })
    return this.#closing
  }
}

function json (res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify(body, null, 2) + '\n')
}
