/**
 * An upstream listener (consul NewUpstreamListener): the app connects here in
 * plaintext; we pick an instance of the upstream (round-robin, next one on a
 * connect failure), originate mTLS with SNI, require the server to be exactly
 * the upstream's SPIFFE ID in our trust domain, and relay.
 */
import { createServer, type Server, type Socket, type AddressInfo } from 'node:net'
import { connect as tlsConnect, TLSSocket, type PeerCertificate } from 'node:tls'
import type { Logger } from 'pino'
import type { HostPort, Timeouts } from '../core/config/types.js'
import type { Instance, Resolver } from '../core/resolver.js'
import { PeerIdentityError, errorCode, ignoreError, toError } from '../core/errors.js'
import { consulServiceId } from '../core/identity/spiffe-id.js'
import { noopMetrics, type Metrics } from '../metrics/metrics.js'
import { ConnRegistry } from './conn-registry.js'
import { dial, type Opener } from '../net/dial.js'
import { handshakeDeadline } from './handshake.js'
import { cut, relay } from './relay.js'
import { trackTlsEnd } from '../tls/end.js'
import { connBug, logClosed } from './finish.js'
import { listen } from '../net/listen.js'
import type { TlsState } from '../tls/context.js'
import { SessionCache, resumableUntil } from '../tls/session-cache.js'
import { withoutPeerCertificate } from '../tls/ticket-der.js'
import { exportPsk, type Psk } from '../tls/psk.js'

/** What an upstream listener needs. */
export interface OutboundOptions {
  readonly upstream: string
  readonly namespace: string
  readonly datacenter: string
  readonly bind: HostPort
  readonly resolver: Resolver
  readonly timeouts: Timeouts
  /** 0 = unlimited. */
  readonly maxConnections?: number
  readonly tls: () => TlsState
  readonly logger: Logger
  readonly metrics?: Metrics
}

let nextConnId = 0

/** `alert_<name>` when `err` is a TLS alert the peer sent (Node's ERR_SSL_*_ALERT_* codes), else undefined. */
export function tlsAlertOf (err: Error | undefined): string | undefined {
  const m = /^ERR_SSL_(?:SSLV3|TLSV1|TLSV13)_ALERT_([A-Z0-9_]+)$/.exec(errorCode(err) ?? '')
  return m === null ? undefined : `alert_${m[1]!.toLowerCase()}`
}

/** TLSSocket#setSession: what tls.connect() itself calls, not in @types/node. */
type SettableSession = TLSSocket & { setSession: (session: Buffer) => void }
const hasSetSession = typeof (TLSSocket.prototype as Partial<SettableSession>).setSession === 'function'

/** Declined PSK offers in a row after which an instance that never took one is offered tickets only. */
const PSK_DECLINES_FOR_TICKETS = 2
/** In #pskDeclines: the instance has taken a PSK of ours, so it is offered PSKs whatever it declines. */
const TAKES_PSKS = -1
/** Instances whose PSK outcomes are remembered at most (forgotten all at once beyond). */
const MAX_INSTANCES_DECLINING = 1024

/** Accepts plaintext from the app and relays it over mTLS to the upstream. */
export class UpstreamListener {
  readonly #opts: OutboundOptions
  readonly #metrics: Metrics
  readonly #registry = new ConnRegistry()
  /** Tickets and PSKs per upstream instance, for resumed handshakes (session-cache.ts). */
  readonly #sessions = new SessionCache()
  /** PSK offers declined in a row per instance, or TAKES_PSKS; at PSK_DECLINES_FOR_TICKETS, tickets only (#pskOutcome). */
  readonly #pskDeclines = new Map<string, number>()
  #server: Server | undefined
  #rr = 0
  /** SNI and the server's SPIFFE ID for the current trust domain (built once per trust domain, not per connection). */
  #names: { td: string, sni: string, expected: string } | undefined
  #closing: Promise<void> | undefined

  constructor (opts: OutboundOptions) {
    this.#opts = opts
    this.#metrics = opts.metrics ?? noopMetrics
  }

  /** Live connections (0 after close). */
  get connections (): number { return this.#registry.size }

  /** Bind; resolves with the bound address. */
  async start (): Promise<HostPort> {
    // pauseOnConnect: the app's first bytes wait in the kernel until the upstream is ready.
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, app => this.#onApp(app))
    this.#server = server
    await listen(server, this.#opts.bind, `--upstream ${this.#opts.upstream}`)
    const a = server.address() as AddressInfo
    return { host: a.address, port: a.port }
  }

  #namesFor (state: TlsState): { sni: string, expected: string } {
    const td = state.svid.id.trustDomain
    if (this.#names?.td !== td) {
      const { upstream, namespace, datacenter } = this.#opts
      this.#names = { td, sni: `${upstream}.${namespace}.${datacenter}.internal.${td}`, expected: consulServiceId({ trustDomain: td, namespace, datacenter, service: upstream }).uri }
    }
    return this.#names
  }

  /** The SPIFFE ID the upstream's server certificate must carry. */
  expectedId (state: TlsState): string {
    return this.#namesFor(state).expected
  }

  #onApp (app: Socket): void {
    const max = this.#opts.maxConnections ?? 0
    if (max > 0 && this.#registry.size >= max) {
      this.#metrics.connection('outbound', 'over_limit')
      this.#opts.logger.warn({ listener: 'outbound', upstream: this.#opts.upstream, reason: 'max_connections', maxConnections: max }, 'conn rejected')
      cut(app)
      return
    }
    const log = this.#opts.logger
    const id = { conn: `out-${++nextConnId}`, listener: 'outbound', upstream: this.#opts.upstream } // fields, not a child logger: see inbound.ts
    const undo = this.#metrics.trackActive('outbound')
    let abort = (): void => { app.destroy() }
    const conn = { abort: () => abort() }
    this.#registry.add(conn)
    const finish = (): void => { undo(); this.#registry.delete(conn) }
    app.on('error', ignoreError) // reported through the relay or the refusal below
    // Callbacks once the relay runs, not an async function awaiting it: a suspended
    // one (and its promises) would be held for the connection's whole life.
    this.#connectUpstream(id).then(up => {
      if (app.destroyed) { up.tls.destroy(); finish(); return }
      const access = { ...id, peer: up.peerId, instance: `${up.instance.host}:${up.instance.port}`, resumed: up.resumed, psk: up.psk }
      if (log.isLevelEnabled('debug')) log.debug({ ...access, protocol: up.tls.getProtocol() }, 'conn opened')
      const r = relay(app, up.tls, this.#opts.timeouts, result => {
        const alert = result.bytesBtoA === 0 ? tlsAlertOf(result.error) : undefined
        if (alert === undefined) logClosed(log, result, this.#metrics, 'outbound', 'app', access)
        else {
          // TLS 1.3: the client's handshake is done before the server has checked our
          // certificate, so its refusal arrives as an alert once bytes flow. Nothing was
          // answered: a refusal, not a relayed connection (and the app was reset).
          this.#metrics.handshakeFailure(alert)
          this.#metrics.connection('outbound', 'tls_error')
          log.warn({ ...access, reason: alert, err: result.error!.message }, 'conn refused')
        }
        finish()
      })
      abort = () => r.abort()
    }, (err: unknown) => {
      const up = toError(err)
      const result = up instanceof PeerIdentityError ? 'tls_error' : 'upstream_error'
      this.#metrics.connection('outbound', result)
      log.warn({ ...id, reason: up instanceof PeerIdentityError ? up.reason : 'upstream_unavailable', err: up.message }, 'conn refused')
      cut(app)
      finish()
    }).catch(connBug(log, id, () => { abort(); finish() }))
  }

  async #connectUpstream (id: Record<string, unknown>): Promise<{ tls: TLSSocket, instance: Instance, peerId: string, resumed: boolean, psk: boolean }> {
    const instances = await this.#opts.resolver.instances(this.#opts.upstream)
    if (instances.length === 0) throw new Error(`no instances of ${this.#opts.upstream} are known (is its sidecar running and registered in the mesh dir catalog?)`)
    const start = this.#rr++
    let last: Error | undefined
    for (let k = 0; k < instances.length; k++) {
      const instance = instances[(start + k) % instances.length]!
      const attempt = this.#attempt(instance)
      let tls: TLSSocket
      try {
        // One socket for TCP and TLS (no plain Socket object under the TLSSocket):
        // the handshake starts as soon as TCP is up.
        tls = await dial(instance, this.#opts.timeouts.connectTimeoutMs, attempt.open)
      } catch (err) {
        last = toError(err)
        this.#metrics.upstreamConnectError(this.#opts.upstream)
        this.#opts.logger.debug({ ...id, instance: `${instance.host}:${instance.port}`, err: last.message }, 'upstream instance unreachable')
        continue
      }
      return { ...await attempt.handshake(tls), instance }
    }
    throw last ?? new Error('no instance reachable')
  }

  /**
   * One attempt at `instance`: `open` starts TCP and TLS (with the server
   * identity check), `handshake` awaits the TLS result once TCP is up.
   */
  #attempt (instance: Instance): { open: Opener<TLSSocket>, handshake: (tls: TLSSocket) => Promise<{ tls: TLSSocket, peerId: string, resumed: boolean, psk: boolean }> } {
    const state = this.#opts.tls()
    const { sni, expected } = this.#namesFor(state)
    const key = `${instance.host}:${instance.port}`
    // Dropped once the handshake is over: this scope lives as long as the connection
    // (the socket keeps checkServerIdentity, and onTicket stays registered), and a
    // held connection must not keep the ticket it was offered (~1.5 KB).
    let offered = this.#sessions.get(state, key, Date.now())
    // A PSK to an instance that takes ours (mesh-proxy, psk.ts), else the ticket.
    let psk = offered?.psk !== undefined && (this.#pskDeclines.get(key) ?? 0) < PSK_DECLINES_FOR_TICKETS ? offered.psk : undefined
    const ticket = psk === undefined ? offered?.session : undefined
    /** The PSK of this connection's full handshake, kept with the tickets that follow it. */
    let fresh: Psk | undefined
    let verified: { peerId: string, expiresAt: number } | undefined
    let identityError: PeerIdentityError | undefined
    const open = (to: HostPort): TLSSocket => {
      const tls = tlsConnect({
        host: to.host,
        port: to.port,
        // (allowHalfOpen stays false, the default, until the handshake is done: a peer's EOF must end it.)
        secureContext: state.clientContext,
        servername: sni,
        // The ticket is set once below, before TCP is up and the ClientHello is
        // written: given as `session` here, Node 20 decodes it twice (in
        // TLSSocket's _init and again in connect()), ~15 % of the outbound's CPU
        // under churn (bench/RESULTS.md). Only if Node lost that method, as an option.
        ...(ticket === undefined || hasSetSession ? {} : { session: ticket }),
        ...(psk === undefined ? {} : { pskCallback: () => psk ?? null }),
        // Runs inside a full handshake, before 'secureConnect': a wrong server fails closed.
        // (Not called for a resumed one: the ticket carries the identity checked here.)
        checkServerIdentity: (_host: string, cert: PeerCertificate) => {
          try {
            const peer = state.verifier.verify(cert)
            if (peer.id.uri !== expected) throw new PeerIdentityError('wrong_server_identity', `server presented ${peer.id.uri}, expected ${expected}`)
            verified = { peerId: peer.id.uri, expiresAt: resumableUntil(Date.now(), peer.notAfter, state.svid.chain[0]!.notAfter) }
            return undefined
          } catch (err) {
            identityError = err instanceof PeerIdentityError ? err : new PeerIdentityError('bad_certificate', toError(err).message)
            return identityError
          }
        }
      }).setNoDelay(true)
      if (ticket !== undefined && hasSetSession) (tls as SettableSession).setSession(ticket)
      return tls
    }
    // TLS 1.3 tickets arrive after the handshake; keep the newest, with what we verified,
    // and without the server's certificate in it (decoded on every resumed connect, never used: ticket-der.ts).
    // (Made here, not inside the handshake's promise: it stays registered for the
    // connection's life and must not keep the handshake's closures alive with it.)
    const onTicket = (session: Buffer): void => {
      if (verified !== undefined) this.#sessions.set(state, key, { session: withoutPeerCertificate(session), ...(fresh === undefined ? {} : { psk: fresh }), peerId: verified.peerId, expiresAt: verified.expiresAt })
    }
    const handshake = (tls: TLSSocket): Promise<{ tls: TLSSocket, peerId: string, resumed: boolean, psk: boolean }> => new Promise((resolve, reject) => {
      // Not when offering a PSK: a mesh-proxy server sends a ticket after every PSK
      // handshake, and Node turns each into DER and an event only if someone listens.
      // (Declined: the full handshake's PSK is kept, and after a second decline the
      // next connection is a full handshake that keeps its ticket.)
      if (psk === undefined) tls.on('session', onTicket)
      const cancel = handshakeDeadline(tls, this.#opts.timeouts.handshakeTimeoutMs, key)
      const onError = (err: Error): void => {
        cancel()
        if (offered !== undefined) this.#sessions.delete(key)
        offered = undefined
        this.#metrics.handshakeFailure(identityError?.reason ?? 'tls_error')
        tls.destroy()
        reject(identityError ?? new PeerIdentityError('tls_error', `TLS with ${key} failed: ${err.message}`))
      }
      tls.once('error', onError)
      tls.once('secureConnect', () => {
        cancel()
        tls.off('error', onError)
        const resumed = tls.isSessionReused()
        // checkServerIdentity did not run: the identity is the ticket's or the PSK's (copied: not the entry itself).
        if (resumed && offered !== undefined) verified = { peerId: offered.peerId, expiresAt: offered.expiresAt }
        if (verified === undefined) { // cannot happen: a full handshake ran checkServerIdentity, a resumed one had a ticket or PSK
          onError(new Error('server identity was not verified'))
          return
        }
        const viaPsk = resumed && psk !== undefined
        if (psk !== undefined) this.#pskOutcome(key, viaPsk)
        if (!resumed) {
          // Both ends take the same PSK from this verified handshake; a mesh-proxy server keeps it too.
          fresh = exportPsk(tls)
          if (fresh !== undefined) this.#sessions.set(state, key, { psk: fresh, peerId: verified.peerId, expiresAt: verified.expiresAt })
        }
        offered = undefined
        psk = undefined
        tls.allowHalfOpen = true // independent half-close from here on (see relay.ts)
        trackTlsEnd(tls)
        resolve({ tls, peerId: verified.peerId, resumed, psk: viaPsk })
      })
    })
    return { open, handshake }
  }

  /**
   * A PSK offer to `key` was taken or declined. Declined twice in a row by an
   * instance that never took one (an upstream that is not mesh-proxy): tickets
   * only for that instance from then on. An instance that took one is
   * mesh-proxy, and its declines are a restart, a rotation, or a --workers
   * sibling the PSK had not reached yet: the PSK of the full handshake that
   * followed is offered next, always.
   */
  #pskOutcome (key: string, taken: boolean): void {
    const before = this.#pskDeclines.get(key)
    if (before === TAKES_PSKS) return
    if (before === undefined && this.#pskDeclines.size >= MAX_INSTANCES_DECLINING) this.#pskDeclines.clear()
    this.#pskDeclines.set(key, taken ? TAKES_PSKS : (before ?? 0) + 1)
  }

  /** Stop accepting, drain up to drainTimeoutMs, then close what is left. Idempotent. */
  close (): Promise<void> {
    this.#closing ??= (async () => {
      const server = this.#server
      const stopped = server === undefined ? Promise.resolve() : new Promise<void>(resolve => server.close(() => resolve()))
      await this.#registry.drain(this.#opts.timeouts.drainTimeoutMs)
      await stopped
      this.#sessions.clear()
    })()
    return this.#closing
  }

  /** Close everything now. Idempotent. */
  async destroy (): Promise<void> {
    this.#registry.abortAll()
    await this.close()
  }
}
