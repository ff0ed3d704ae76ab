/**
 * The terminating gateway: sidecars reach a service outside the mesh as
 * any upstream (SNI `<service>.<namespace>.<dc>.internal.<td>`, the server
 * identity that service's SVID). The SNI picks which represented service's
 * SVID is presented; mTLS is terminated here, the peer verified as the
 * inbound listener does, the intention `source => service` asked once, and
 * only then the external target is connected (plain TCP or TLS,
 * external.ts) and the bytes relayed. Targets exist only for the services
 * given: there is no other place to go.
 */
import { createSecureContext, createServer, type SecureContext, type TLSSocket } from 'node:tls'
import type { Socket } from 'node:net'
import type { Logger } from 'pino'
import type { HostPort, Timeouts } from '../core/config/types.js'
import type { Watched } from '../core/watched.js'
import { PeerIdentityError, errorCode, ignoreError, isRoutineCloseError, toError } from '../core/errors.js'
import { decidedBy, formatServiceRef, type Authorizer, type ServiceRef } from '../core/intentions/table.js'
import { notOfForm, workloadOf, type IdentityForm } from '../core/identity/forms.js'
import { parseConsulSni } from '../core/consul-sni.js'
import { noopMetrics, type Metrics } from '../metrics/metrics.js'
import type { TlsState } from '../tls/context.js'
import { trackTlsEnd } from '../tls/end.js'
import { Listener } from '../dataplane/listener.js'
import { PendingHandshakes } from '../dataplane/handshake.js'
import { cut, relay } from '../dataplane/relay.js'
import { connBug, logClosed } from '../dataplane/finish.js'
import { connectExternal, describe, type ExternalTarget } from './external.js'

/** One service the gateway stands in for. */
export interface Represented {
  readonly target: ExternalTarget
  /** Its SVID and our trust bundle, per generation. */
  readonly tls: Watched<TlsState>
  /** The intentions towards it (read per connection). */
  readonly authorize: () => Authorizer
}

/** What a terminating gateway needs. */
export interface TerminatingGatewayOptions {
  readonly listen: HostPort
  readonly services: ReadonlyMap<string, Represented>
  readonly identityForm: IdentityForm
  readonly timeouts: Timeouts
  readonly maxConnections?: number
  readonly logger: Logger
  readonly metrics?: Metrics
}

/** The SNI names no service of ours: the handshake is aborted with this. */
class SniRefusal extends Error {
  constructor (readonly reason: string, message: string) { super(message) }
}

let nextConnId = 0

/** Terminates sidecars' mTLS for external services and relays allowed connections to them. */
export class TerminatingGateway extends Listener {
  readonly #o: TerminatingGatewayOptions
  readonly #metrics: Metrics
  readonly #handshakes: PendingHandshakes
  /** One secure context per TLS generation of each service (built on first use). */
  readonly #contexts = new WeakMap<TlsState, SecureContext>()

  constructor (o: TerminatingGatewayOptions) {
    const metrics = o.metrics ?? noopMetrics
    super({ kind: 'terminating_gateway', timeouts: o.timeouts, maxConnections: o.maxConnections ?? 0, logger: o.logger, metrics })
    this.#o = o
    this.#metrics = metrics
    this.#handshakes = new PendingHandshakes(o.timeouts.handshakeTimeoutMs)
  }

  async start (): Promise<HostPort> {
    const server = createServer({
      requestCert: true,
      // No PSKs here (the inbound's reason for verifying by hand): OpenSSL refuses an unverified chain itself.
      rejectUnauthorized: true,
      handshakeTimeout: this.#o.timeouts.handshakeTimeoutMs + 1000,
      SNICallback: (name, cb) => { try { cb(null, this.#contextFor(name)) } catch (err) { cb(toError(err), undefined) } }
    })
    server.on('connection', (raw: Socket) => {
      if (!this.admit(this.#handshakes.size, { remote: `${raw.remoteAddress}:${raw.remotePort}` })) { raw.destroy(); return }
      raw.setNoDelay(true)
      this.#handshakes.add(raw)
    })
    server.on('secureConnection', (sock: TLSSocket) => { this.#onSecure(sock) })
    server.on('tlsClientError', (err: Error, sock: TLSSocket) => { this.#onTlsError(err, sock) })
    return await this.bind(server, this.#o.listen, '--listen')
  }

  /** The represented service `sni` names, or a SniRefusal. */
  #serviceOf (sni: string): { name: string, svc: Represented } {
    const parsed = parseConsulSni(sni)
    if (typeof parsed === 'string') throw new SniRefusal('unknown_sni', parsed)
    const svc = this.#o.services.get(parsed.service)
    if (svc === undefined) throw new SniRefusal('unknown_service', `this gateway does not represent ${parsed.service} (it represents ${[...this.#o.services.keys()].join(', ')}; add --service ${parsed.service}=<host:port>)`)
    const td = svc.tls.current.svid.id.trustDomain
    if (parsed.trustDomain !== td) throw new SniRefusal('foreign_trust_domain', `SNI ${sni} is for trust domain ${parsed.trustDomain}, not ours (${td})`)
    return { name: parsed.service, svc }
  }

  #contextFor (sni: string): SecureContext {
    const state = this.#serviceOf(sni).svc.tls.current
    let ctx = this.#contexts.get(state)
    if (ctx === undefined) this.#contexts.set(state, ctx = createSecureContext({ ...state.serverOptions }))
    return ctx
  }

  #onTlsError (err: Error, sock: TLSSocket): void {
    const code = errorCode(err)
    // A timeout or a hang-up is what it is; a handshake that failed otherwise without an SNI failed for want of one.
    const noSni = (sock.servername == null || sock.servername === false) && code?.startsWith('MP_ERR_') !== true && !isRoutineCloseError(err)
    const reason = err instanceof SniRefusal ? err.reason : noSni ? 'no_sni' : code ?? 'tls_error'
    this.#metrics.handshakeFailure(reason)
    this.#metrics.connection('terminating_gateway', err instanceof SniRefusal ? reason : 'tls_error')
    const level = isRoutineCloseError(err) ? 'debug' : 'warn'
    const why = reason === 'no_sni' ? `${err.message} (the ClientHello had no server_name: sidecars send <service>.<namespace>.<datacenter>.internal.<trust-domain>)` : err.message
    this.#o.logger[level]({ listener: 'terminating_gateway', remote: `${sock.remoteAddress}:${sock.remotePort}`, reason, err: why }, 'conn rejected')
  }

  /** Who the peer is, as the inbound listener reads it; a PeerIdentityError when not acceptable. */
  #sourceOf (sock: TLSSocket, state: TlsState): { source: ServiceRef, peerId: string } {
    if (!sock.authorized) throw new PeerIdentityError(sock.authorizationError?.toString() ?? 'unverified', 'peer certificate chain was not verified against our trust bundle')
    const peer = state.verifier.verifySocket(sock)
    const w = workloadOf(this.#o.identityForm, peer.id)
    if (w === null) throw new PeerIdentityError('not_a_service', notOfForm(this.#o.identityForm, peer.id.uri))
    const td = peer.id.trustDomain
    const foreign = td !== state.svid.id.trustDomain
    if (foreign && !state.federated.has(td)) throw new PeerIdentityError('foreign_trust_domain', `${peer.id.uri} is not in our trust domain ${state.svid.id.trustDomain}`)
    return { source: foreign ? { namespace: w.namespace, name: w.service, trustDomain: td } : { namespace: w.namespace, name: w.service }, peerId: peer.id.uri }
  }

  #onSecure (sock: TLSSocket): void {
    this.#handshakes.settle(sock)
    sock.on('error', ignoreError)
    sock.allowHalfOpen = true
    const log = this.#o.logger
    const id = { conn: `tgw-${++nextConnId}`, listener: 'terminating_gateway', remote: `${sock.remoteAddress}:${sock.remotePort}` }
    let name: string
    let svc: Represented
    let who: { source: ServiceRef, peerId: string }
    try {
      ({ name, svc } = this.#serviceOf(String(sock.servername)))
      who = this.#sourceOf(sock, svc.tls.current)
    } catch (err) {
      const reason = err instanceof PeerIdentityError || err instanceof SniRefusal ? err.reason : 'bad_certificate'
      this.#metrics.handshakeFailure(reason)
      this.#metrics.connection('terminating_gateway', 'tls_error')
      log.warn({ ...id, reason, err: toError(err).message }, 'conn rejected')
      cut(sock)
      return
    }
    trackTlsEnd(sock)
    const decision = svc.authorize()(who.source)
    const fields = { ...id, peer: who.peerId, source: formatServiceRef(who.source), destination: name, intention: decidedBy(decision) }
    if (!decision.allowed) {
      this.#metrics.connection('terminating_gateway', 'denied_intention')
      log.info({ ...fields, precedence: decision.precedence, reason: decision.reason }, 'conn denied')
      cut(sock)
      return
    }
    this.#serve(sock, svc, { ...fields, external: describe(svc.target.spec) })
  }

  #serve (sock: TLSSocket, svc: Represented, access: Record<string, unknown>): void {
    const log = this.#o.logger
    // Until the relay: an abort (the drain's end) resets the caller and cancels the dial and handshake.
    const dialing = new AbortController()
    let abort = (): void => { cut(sock); dialing.abort() }
    const finish = this.track({ abort: () => abort() })
    connectExternal(svc.target, this.#o.timeouts, dialing.signal).then(ext => {
      if (sock.destroyed) { cut(ext); this.#metrics.connection('terminating_gateway', 'aborted'); log.info({ ...access, reason: 'peer_gone' }, 'conn closed'); finish(); return }
      if (log.isLevelEnabled('debug')) log.debug(access, 'conn opened')
      const r = relay(sock, ext, this.#o.timeouts, result => {
        logClosed(log, result, this.#metrics, 'terminating_gateway', 'peer', access)
        finish()
      })
      abort = () => r.abort()
    }, (err: unknown) => {
      if (dialing.signal.aborted) {
        this.#metrics.connection('terminating_gateway', 'aborted')
        log.info({ ...access, reason: 'aborted', err: 'the gateway closed while dialing' }, 'conn closed')
        finish()
        return
      }
      const e = toError(err)
      this.#metrics.upstreamConnectError(String(access.destination))
      this.#metrics.connection('terminating_gateway', 'upstream_error')
      log.warn({ ...access, reason: e instanceof PeerIdentityError ? e.reason : 'external_connect_failed', err: e.message }, 'conn closed')
      cut(sock)
      finish()
    }).catch(connBug(log, access, () => { abort(); finish() }))
  }

  protected override beforeDrain (): void {
    this.#handshakes.destroyAll()
  }
}
