/**
 * The outbound end of pooled tunnels: per upstream instance, a few long-lived
 * mTLS connections (the handshake, the server identity check and resumption
 * are upstream-attempt.ts's, with TUNNEL_ALPN offered), each an HTTP/2 session
 * carrying one CONNECT stream per app connection. A new app connection costs a
 * stream, not a handshake.
 *
 * - Pick: the least loaded live tunnel under TUNNEL_MAX_STREAMS; else a new
 *   one, up to TUNNEL_MAX_PER_INSTANCE (concurrent requests for a new tunnel
 *   share one handshake); else the least loaded (HTTP/2 queues the stream).
 * - A server that does not take the token (not mesh-proxy: Envoy, ghostunnel)
 *   has made a plain mTLS connection: it is handed back for this app
 *   connection, and that instance is not asked again for NO_TUNNEL_RETRY_MS.
 * - A tunnel is retired (no new streams; live ones finish) on our TLS
 *   generation change and on the server's GOAWAY; gone when its connection
 *   is. A vanished peer destroys its session, and with it every stream: each
 *   app connection on it is reset (relay.ts).
 * - The answer to CONNECT is awaited for connectTimeoutMs (the far sidecar's
 *   connect to its app is inside it): 200 opens, 403 is an intention denial,
 *   503 the far app unreachable; anything else, or no answer, is a refusal.
 */
import http2, { type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2'
import type { Logger } from 'pino'
import { PeerIdentityError } from '../core/errors.js'
import type { Instance } from '../core/resolver.js'
import type { Metrics } from '../metrics/metrics.js'
import { TUNNEL_ALPN } from '../tls/alpn.js'
import { TUNNEL_MAX_PER_INSTANCE, TUNNEL_MAX_STREAMS, TUNNEL_SESSION_MEMORY_MB, TUNNEL_SESSION_WINDOW, TUNNEL_SETTINGS } from './tunnel-limits.js'
import { destroyTunnel, endsWithItsConnection, TunnelTransport } from './tunnel-transport.js'
import type { Upstream } from './upstream-attempt.js'

/** How long an instance that answered without the tunnel token is served plain before it is asked again. */
export const NO_TUNNEL_RETRY_MS = 10 * 60_000

/** A CONNECT the far sidecar answered with anything but 200: why, in the outbound's log words. */
export class StreamRefused extends Error {
  constructor (readonly reason: 'peer_denied' | 'peer_app_unreachable' | 'peer_refused', message: string) {
    super(message)
    this.name = 'StreamRefused'
  }
}

/** One tunnel and what it carries. */
interface Tunnel {
  readonly session: ClientHttp2Session
  readonly up: Upstream
  streams: number
  carried: number
  retired: boolean
}

/** The plain connection a server without tunnels made: for the first app connection that waited on it only. */
interface Plain { readonly up: Upstream, claimed: boolean }

/** What the pool needs of its listener. */
export interface PoolOptions {
  /** A verified mTLS connection to `instance`, TUNNEL_ALPN offered. */
  readonly connect: (instance: Instance) => Promise<Upstream>
  readonly connectTimeoutMs: number
  readonly logger: Logger
  readonly metrics: Metrics
  readonly fields: Record<string, unknown>
}

/** A stream on a tunnel, or the plain connection a server without tunnels made. */
export type Opened = { readonly stream: ClientHttp2Stream, readonly up: Upstream } | { readonly plain: Upstream }

/** The tunnels of one upstream listener. */
export class TunnelPool {
  readonly #o: PoolOptions
  readonly #tunnels = new Map<string, Tunnel[]>()
  readonly #opening = new Map<string, Promise<Tunnel | Plain>>()
  readonly #plainUntil = new Map<string, number>()
  #closed = false

  constructor (o: PoolOptions) {
    this.#o = o
  }

  /** False while `key` is known not to speak tunnels: dial it plain. */
  tunnels (key: string): boolean {
    const until = this.#plainUntil.get(key)
    return until === undefined || until < Date.now()
  }

  /** A stream to `instance` through one of its tunnels (made if need be). */
  async open (instance: Instance): Promise<Opened> {
    const key = `${instance.host}:${instance.port}`
    const t = await this.#tunnelFor(key, instance)
    if (!('session' in t)) return { plain: t }
    t.streams++
    t.carried++
    const stream = t.session.request({ ':method': 'CONNECT', ':authority': key })
    stream.once('close', () => { t.streams-- })
    await answered(stream, this.#o.connectTimeoutMs, key)
    return { stream, up: t.up }
  }

  async #tunnelFor (key: string, instance: Instance): Promise<Tunnel | Upstream> {
    if (this.#closed) throw new Error('upstream listener closed')
    const live = (this.#tunnels.get(key) ?? []).filter(t => !t.retired)
    const best = live.reduce<Tunnel | undefined>((a, t) => a === undefined || t.streams < a.streams ? t : a, undefined)
    if (best !== undefined && (best.streams < TUNNEL_MAX_STREAMS || live.length >= TUNNEL_MAX_PER_INSTANCE)) return best
    let opening = this.#opening.get(key)
    if (opening === undefined) {
      opening = this.#dial(key, instance).finally(() => this.#opening.delete(key))
      this.#opening.set(key, opening)
    }
    const made = await opening
    if ('session' in made) return made
    // A plain connection serves one app connection only: the others waiting on it dial their own.
    if (made.claimed) return await this.#o.connect(instance)
    made.claimed = true
    return made.up
  }

  async #dial (key: string, instance: Instance): Promise<Tunnel | Plain> {
    const up = await this.#o.connect(instance)
    if (up.tls.alpnProtocol !== TUNNEL_ALPN) {
      this.#plainUntil.set(key, Date.now() + NO_TUNNEL_RETRY_MS)
      this.#o.logger.info({ ...this.#o.fields, instance: key, peer: up.peerId }, 'upstream instance does not take tunnels; plain connections to it')
      return { up, claimed: false }
    }
    if (this.#closed) { up.tls.destroy(); throw new Error('upstream listener closed') }
    const session = http2.connect(`http://${key}`, { createConnection: () => new TunnelTransport(up.tls), settings: TUNNEL_SETTINGS, maxSessionMemory: TUNNEL_SESSION_MEMORY_MB })
    endsWithItsConnection(session, up.tls)
    const t: Tunnel = { session, up, streams: 0, carried: 0, retired: false }
    const list = this.#tunnels.get(key) ?? []
    list.push(t)
    this.#tunnels.set(key, list)
    const untrack = this.#o.metrics.trackTunnel('outbound')
    const opened = performance.now()
    session.on('connect', () => session.setLocalWindowSize(TUNNEL_SESSION_WINDOW))
    session.on('error', () => {}) // its streams report; the close line says how it ended
    session.on('goaway', () => { t.retired = true })
    const fields = { ...this.#o.fields, tunnel: true, instance: key, peer: up.peerId, resumed: up.resumed, psk: up.psk }
    this.#o.logger.info(fields, 'tunnel opened')
    session.once('close', () => {
      t.retired = true
      const now = this.#tunnels.get(key)?.filter(x => x !== t) ?? []
      if (now.length === 0) this.#tunnels.delete(key)
      else this.#tunnels.set(key, now)
      untrack()
      this.#o.logger.info({ ...fields, streams: t.carried, durationMs: Math.round(performance.now() - opened) }, 'tunnel closed')
    })
    return t
  }

  /** No new streams on today's tunnels (a new TLS generation): live streams finish on them, new ones get new tunnels. */
  retireAll (): void {
    for (const list of this.#tunnels.values()) {
      for (const t of list) {
        t.retired = true
        if (!t.session.closed) t.session.close()
      }
    }
  }

  /** Tear every tunnel down now; resolves once each is closed (its gauge and log line done). Idempotent. */
  async destroy (): Promise<void> {
    this.#closed = true
    const all = [...this.#tunnels.values()].flat()
    this.#plainUntil.clear()
    await Promise.all(all.map(t => new Promise<void>(resolve => {
      // Every tunnel listed is still open: its 'close' takes it off the list.
      t.session.once('close', () => resolve())
      destroyTunnel(t.session, t.up.tls)
    })))
  }
}

/** Resolves on a 200 to CONNECT; rejects with why otherwise, or after `ms` without an answer. */
function answered (stream: ClientHttp2Stream, ms: number, key: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { stream.close(http2.constants.NGHTTP2_CANCEL); fail(new StreamRefused('peer_refused', `no answer to CONNECT from ${key} within connectTimeoutMs=${ms}`)) }, ms)
    timer.unref()
    const fail = (err: Error): void => { clearTimeout(timer); stream.off('close', onClose); reject(err) }
    const onClose = (): void => fail(new StreamRefused('peer_refused', `${key} reset the stream before answering (code ${stream.rstCode ?? 'none'}): its sidecar stopped or refused it`))
    stream.once('close', onClose)
    stream.once('error', () => {}) // reported through 'close'
    stream.once('response', headers => {
      const status = Number(headers[':status'])
      if (status === 200) { clearTimeout(timer); stream.off('close', onClose); resolve(); return }
      stream.close(http2.constants.NGHTTP2_CANCEL)
      if (status === 403) fail(new StreamRefused('peer_denied', `${key} answered 403: its intentions deny us`))
      else if (status === 503) fail(new StreamRefused('peer_app_unreachable', `${key} answered 503: its app is unreachable`))
      else fail(new PeerIdentityError('peer_refused', `${key} answered ${status} to CONNECT`))
    })
  })
}
