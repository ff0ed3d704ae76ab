/**
 * An upstream listener (consul NewUpstreamListener): the app connects here in
 * plaintext; we pick an instance of the upstream (round-robin, next one on a
 * connect failure), originate mTLS with SNI, require the server to be exactly
 * the upstream's SPIFFE ID in our trust domain, and relay.
 */
import { createServer, type Socket } from 'node:net'
import type { Logger } from 'pino'
import type { Endpoint, Timeouts } from '../core/config/types.js'
import type { Instance, Resolver, UpstreamTarget } from '../core/resolver.js'
import type { Watched } from '../core/watched.js'
import { PeerIdentityError, errorCode, ignoreError, toError } from '../core/errors.js'
import { upstreamIdOf, upstreamSni, type IdentityForm } from '../core/identity/forms.js'
import { noopMetrics, type Metrics } from '../metrics/metrics.js'
import { dial } from '../net/dial.js'
import { DEFAULT_UNIX_SOCKET_MODE } from '../core/config/endpoint.js'
import type { TlsState } from '../tls/context.js'
import { cut, relay, type RelayResult } from './relay.js'
import type { ClientHttp2Stream } from 'node:http2'
import { TUNNEL_ALPN } from '../tls/alpn.js'
import { StreamRefused, TunnelPool } from './tunnel-pool.js'
import { connBug, logClosed } from './finish.js'
import { Listener } from './listener.js'
import { Resumption } from './resumption.js'
import { UpstreamAttempt, type Upstream } from './upstream-attempt.js'

/** What an upstream listener needs. */
export interface OutboundOptions {
  readonly upstream: string
  readonly namespace: string
  /** How the upstream's SPIFFE ID names it (core/identity/forms.ts). */
  readonly identityForm: IdentityForm
  readonly datacenter: string
  /** A TCP address or a UNIX socket path (created with `unixSocketMode`). */
  readonly bind: Endpoint
  /** Mode of the UNIX socket file (default 0o660). */
  readonly unixSocketMode?: number
  /** Where the upstream lives when not in our namespace and datacenter (a Consul registration's upstream); also what the resolver is asked. */
  readonly target?: UpstreamTarget
  readonly resolver: Resolver
  readonly timeouts: Timeouts
  /** 0 = unlimited. */
  readonly maxConnections?: number
  /** Our TLS generations; the current one is read per connection. */
  readonly tls: Watched<TlsState>
  readonly logger: Logger
  readonly metrics?: Metrics
  /** Carry app connections as streams of pooled tunnels to instances that take them (tunnel-pool.ts). */
  readonly tunnel?: boolean
}

/** A verified way to the upstream: a plain mTLS connection, or a stream on a tunnel (`up` is the tunnel's connection). */
type Connected = { readonly up: Upstream, readonly instance: Instance, readonly stream?: ClientHttp2Stream }

let nextConnId = 0

/** `alert_<name>` when `err` is a TLS alert the peer sent (Node's ERR_SSL_*_ALERT_* codes), else undefined. */
export function tlsAlertOf (err: Error | undefined): string | undefined {
  const m = /^ERR_SSL_(?:SSLV3|TLSV1|TLSV13)_ALERT_([A-Z0-9_]+)$/.exec(errorCode(err) ?? '')
  return m === null ? undefined : `alert_${m[1]!.toLowerCase()}`
}

/** Accepts plaintext from the app and relays it over mTLS to the upstream. */
export class UpstreamListener extends Listener {
  readonly #opts: OutboundOptions
  readonly #metrics: Metrics
  /** What each instance is offered on the next handshake (tickets, PSKs). */
  readonly #resumption = new Resumption()
  #rr = 0
  /**
   * Cancels every upstream dial and TLS handshake in progress, and every later
   * one. Aborted with the listener's last connections: a peer that never
   * answers (stopped, a black hole) would otherwise hold shutdown for
   * connectTimeoutMs or handshakeTimeoutMs, past --drain-timeout and a second signal.
   */
  readonly #dials = new AbortController()
  /** SNI and the server's SPIFFE ID for the current trust domain (built once per trust domain, not per connection). */
  #names: { td: string, sni: string, expected: string } | undefined
  readonly #pool: TunnelPool | undefined
  #unsubscribe: (() => void) | undefined

  constructor (opts: OutboundOptions) {
    const metrics = opts.metrics ?? noopMetrics
    super({ kind: 'outbound', timeouts: opts.timeouts, maxConnections: opts.maxConnections ?? 0, logger: opts.logger, metrics })
    this.#opts = opts
    this.#metrics = metrics
    this.#pool = opts.tunnel !== true
      ? undefined
      : new TunnelPool({ connect: instance => this.#attempt(instance, true), connectTimeoutMs: opts.timeouts.connectTimeoutMs, logger: opts.logger, metrics, fields: { listener: 'outbound', upstream: opts.upstream } })
    // A new TLS generation: today's tunnels take no new streams (ours must show the new leaf).
    if (this.#pool !== undefined) this.#unsubscribe = opts.tls.onChange(() => this.#pool?.retireAll())
  }

  /** Bind; resolves with the bound address (the path, for a UNIX socket). */
  async start (): Promise<Endpoint> {
    // pauseOnConnect: the app's first bytes wait in the kernel until the upstream is ready.
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, app => this.#onApp(app))
    return await this.bind(server, this.#opts.bind, `--upstream ${this.#opts.upstream}`, this.#opts.unixSocketMode ?? DEFAULT_UNIX_SOCKET_MODE)
  }

  #namesFor (state: TlsState): { sni: string, expected: string } {
    const td = state.svid.id.trustDomain
    if (this.#names?.td !== td) {
      const { upstream, target } = this.#opts
      const w = { trustDomain: target?.trustDomain ?? td, service: upstream, namespace: target?.namespace ?? this.#opts.namespace, datacenter: target?.datacenter ?? this.#opts.datacenter, ...(target?.partition === undefined ? {} : { partition: target.partition }) }
      this.#names = { td, sni: upstreamSni(w), expected: upstreamIdOf(this.#opts.identityForm, w).uri }
    }
    return this.#names
  }

  /** The SPIFFE ID the upstream's server certificate must carry. */
  expectedId (state: TlsState): string {
    return this.#namesFor(state).expected
  }

  #onApp (app: Socket): void {
    if (!this.admit(0, { upstream: this.#opts.upstream })) {
      cut(app)
      return
    }
    const log = this.#opts.logger
    const id = { conn: `out-${++nextConnId}`, listener: 'outbound', upstream: this.#opts.upstream } // fields, not a child logger: see inbound.ts
    // Before the relay, an abort comes only from abortAll (the drain's end, destroy()): every
    // connection is aborted at once, so every pending dial goes with it.
    let abort = (): void => { cut(app); this.#dials.abort() }
    const finish = this.track({ abort: () => abort() })
    app.on('error', ignoreError) // reported through the relay or the refusal below
    // Callbacks once the relay runs, not an async function awaiting it: a suspended
    // one (and its promises) would be held for the connection's whole life.
    this.#connectUpstream(id).then(c => {
      const mesh = c.stream ?? c.up.tls
      if (app.destroyed) { cut(mesh); finish(); return }
      const up = c.up
      const access = { ...id, peer: up.peerId, instance: `${c.instance.host}:${c.instance.port}`, resumed: up.resumed, psk: up.psk, ...(c.stream === undefined ? {} : { tunnel: true }) }
      if (log.isLevelEnabled('debug')) log.debug({ ...access, protocol: up.tls.getProtocol() }, 'conn opened')
      const r = relay(app, mesh, this.#opts.timeouts, result => { this.#closed(result, access); finish() })
      abort = () => r.abort()
    }, (err: unknown) => {
      const up = toError(err)
      const result = up instanceof PeerIdentityError ? 'tls_error' : up instanceof StreamRefused ? 'peer_refused' : 'upstream_error'
      this.#metrics.connection('outbound', result)
      log.warn({ ...id, reason: up instanceof PeerIdentityError || up instanceof StreamRefused ? up.reason : 'upstream_unavailable', err: up.message }, 'conn refused')
      cut(app)
      finish()
    }).catch(connBug(log, id, () => { abort(); finish() }))
  }

  /** The one line (and metrics) for a connection that was relayed, or refused once bytes flowed. */
  #closed (result: RelayResult, access: Record<string, unknown>): void {
    const log = this.#opts.logger
    const alert = result.bytesBtoA === 0 ? tlsAlertOf(result.error) : undefined
    if (alert === undefined && result.bytesBtoA === 0 && result.reason === 'peer_aborted' && access.tunnel === undefined) {
      // The far sidecar reset us before a byte came back: how it refuses (an intention
      // denial, its app unreachable), or it died. Said here, where the caller looks.
      // (A tunnel's stream is answered before it opens: its refusals never get here.)
      this.#metrics.connection('outbound', 'peer_refused')
      log.warn({ ...access, reason: 'peer_refused', bytesFromApp: result.bytesAtoB, durationMs: Math.round(result.durationMs), err: 'the upstream\'s sidecar reset the connection before answering: its intentions deny us, its app is unreachable, or it stopped (its log says which)' }, 'conn refused')
    } else if (alert === undefined) logClosed(log, result, this.#metrics, 'outbound', 'app', access)
    else {
      // TLS 1.3: the client's handshake is done before the server has checked our
      // certificate, so its refusal arrives as an alert once bytes flow. Nothing was
      // answered: a refusal, not a relayed connection (and the app was reset).
      this.#metrics.handshakeFailure(alert)
      this.#metrics.connection('outbound', 'tls_error')
      log.warn({ ...access, reason: alert, err: result.error!.message }, 'conn refused')
    }
  }

  /** An instance, tried in turn: a stream of a tunnel to it when tunnels are on and it takes them, else a plain mTLS connection. */
  async #connectUpstream (id: Record<string, unknown>): Promise<Connected> {
    const instances = await this.#opts.resolver.instances(this.#opts.upstream, this.#opts.target)
    if (instances.length === 0) throw new Error(`no instances of ${this.#opts.upstream} are known (is its sidecar running and registered in the mesh dir catalog?)`)
    const start = this.#rr++
    let last: Error | undefined
    for (let k = 0; k < instances.length; k++) {
      const instance = instances[(start + k) % instances.length]!
      try {
        if (this.#pool !== undefined && this.#pool.tunnels(`${instance.host}:${instance.port}`)) {
          const opened = await this.#pool.open(instance)
          return 'stream' in opened ? { ...opened, instance } : { up: opened.plain, instance }
        }
        return { up: await this.#attempt(instance, false), instance }
      } catch (err) {
        // An identity failure or a refusal is the answer; an unreachable instance is not: try the next.
        if (err instanceof PeerIdentityError || err instanceof StreamRefused) throw err
        last = toError(err)
        this.#metrics.upstreamConnectError(this.#opts.upstream)
        this.#opts.logger.debug({ ...id, instance: `${instance.host}:${instance.port}`, err: last.message }, 'upstream instance unreachable')
      }
    }
    throw last ?? new Error('no instance reachable')
  }

  /** One verified mTLS connection to `instance` (TUNNEL_ALPN offered for a tunnel). */
  async #attempt (instance: Instance, tunnel: boolean): Promise<Upstream> {
    const state = this.#opts.tls.current
    const key = `${instance.host}:${instance.port}`
    const signal = this.#dials.signal
    if (signal.aborted) throw new Error('upstream listener closed')
    const attempt = new UpstreamAttempt({ state, names: this.#namesFor(state), key, resumption: this.#resumption, handshakeTimeoutMs: this.#opts.timeouts.handshakeTimeoutMs, metrics: this.#metrics, ...(tunnel ? { alpn: [TUNNEL_ALPN] } : {}) })
    // One socket for TCP and TLS (no plain Socket object under the TLSSocket):
    // the handshake starts as soon as TCP is up.
    const tls = await dial(instance, this.#opts.timeouts.connectTimeoutMs, attempt.open, signal)
    return await attempt.handshake(tls, signal)
  }

  protected override beforeDrain (): void {
    this.#unsubscribe?.()
    this.#pool?.retireAll()
  }

  protected override async afterClose (): Promise<void> {
    this.#resumption.clear()
    await this.#pool?.destroy()
  }
}
