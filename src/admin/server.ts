/**
 * The admin HTTP server (loopback by default): /ready, /healthz, /metrics,
 * /config, /certs, /intentions. Read-only; it never changes the sidecar.
 */
import { createServer, type Server, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import type { Logger } from 'pino'
import type { HostPort } from '../core/config/types.js'
import { publicConfig } from '../core/config/public.js'
import type { MetricsRegistry } from '../metrics/metrics.js'
import type { Sidecar } from '../sidecar/sidecar.js'
import { listen } from '../net/listen.js'
import { toError } from '../core/errors.js'

/** Prometheus text exposition content type. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

/**
 * What the admin endpoints show. One sidecar process: {@link sidecarView};
 * `--workers N`: the primary's view, which asks every worker (runtime/supervisor.ts).
 */
export interface AdminView {
  /** /ready: 200 when `ready`, else 503; `body` says why. */
  ready (): Promise<{ ready: boolean, body: unknown }>
  /** /metrics, Prometheus text. */
  metrics (): Promise<string>
  config (): Promise<unknown>
  /** undefined until the certificates are loaded. */
  certs (): Promise<unknown>
  /** undefined when there is no inbound listener (no intentions loaded). */
  intentions (): Promise<unknown>
}

/** The view of one sidecar in this process. */
export function sidecarView (sidecar: Sidecar, metrics: MetricsRegistry): AdminView {
  return {
    ready: async () => { const s = sidecar.status(); return { ready: s.ready, body: s } },
    metrics: async () => metrics.render(),
    config: async () => publicConfig(sidecar.config),
    certs: async () => {
      if (sidecar.status().state === 'starting') return undefined
      const { svid, bundle } = sidecar.tls
      const leaf = svid.chain[0]!
      return {
        spiffeId: svid.id.uri,
        serial: leaf.serial,
        notBefore: leaf.notBefore.toISOString(),
        notAfter: leaf.notAfter.toISOString(),
        issuer: leaf.issuer,
        roots: bundle.roots.map(r => ({ trustDomain: r.trustDomain, subject: r.cert.subject, serial: r.cert.serial, notAfter: r.cert.notAfter.toISOString(), fingerprint256: r.cert.fingerprint256 }))
      }
    },
    intentions: async () => sidecar.intentionsDoc
  }
}

/** Serves a view; start before the sidecar so /ready says "starting". */
export class AdminServer {
  readonly #view: AdminView
  readonly #log: Logger
  readonly #sockets = new Set<Socket>()
  #server: Server | undefined
  #closing: Promise<void> | undefined

  constructor (opts: { view: AdminView, logger: Logger }) {
    this.#view = opts.view
    this.#log = opts.logger
  }

  /** Bind; resolves with the address. */
  async start (at: HostPort): Promise<HostPort> {
    const server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => json(res, 500, { error: toError(err).message }))
    })
    server.on('connection', s => { this.#sockets.add(s); s.once('close', () => this.#sockets.delete(s)) })
    this.#server = server
    await listen(server, at, '--admin')
    const a = server.address() as AddressInfo
    this.#log.info({ admin: `${a.address}:${a.port}` }, 'admin listening')
    return { host: a.address, port: a.port }
  }

  async #handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: 'only GET' })
    const v = this.#view
    switch (path) {
      case '/ready': {
        const r = await v.ready()
        return json(res, r.ready ? 200 : 503, r.body)
      }
      case '/healthz':
        return json(res, 200, { status: 'ok' })
      case '/metrics': {
        const text = await v.metrics()
        res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE })
        res.end(text)
        return
      }
      case '/config':
        return json(res, 200, await v.config())
      case '/certs':
        return json(res, 200, await v.certs() ?? { error: 'not loaded yet' })
      case '/intentions': {
        const doc = await v.intentions()
        return doc === undefined ? json(res, 404, { error: 'no inbound listener, so no intentions are loaded' }) : json(res, 200, doc)
      }
      default:
        return json(res, 404, { error: `unknown path ${path}`, paths: ['/ready', '/healthz', '/metrics', '/config', '/certs', '/intentions'] })
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
