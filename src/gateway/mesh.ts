/**
 * The mesh gateway (Consul's, without Envoy): accepts TCP from sidecars,
 * reads the SNI of their ClientHello without terminating TLS (sniff.ts), and
 * routes by Consul's SNI form `<service>.<namespace>.<dc>.internal.<td>`: a
 * service of our datacenter to one of its instances in the catalog, another
 * datacenter to that datacenter's mesh gateways. Then every byte, the
 * ClientHello first and unmodified, is relayed both ways (dataplane/relay.ts):
 * the mTLS session stays between the two sidecars, which check identity and
 * intentions as without a gateway. The gateway holds no key and never sees
 * plaintext. What it cannot route it resets, logs with a reason and counts.
 */
import { createServer, type Socket } from 'node:net'
import type { Logger } from 'pino'
import type { HostPort, Timeouts } from '../core/config/types.js'
import type { Resolver } from '../core/resolver.js'
import { ignoreError, toError } from '../core/errors.js'
import { parseConsulSni, type ConsulSni } from '../core/consul-sni.js'
import { noopMetrics, type Metrics } from '../metrics/metrics.js'
import { dial } from '../net/dial.js'
import { Listener } from '../dataplane/listener.js'
import { cut, relay } from '../dataplane/relay.js'
import { connBug, logClosed } from '../dataplane/finish.js'
import { sniffClientHello } from './sniff.js'

/** What a mesh gateway needs. */
export interface MeshGatewayOptions {
  readonly listen: HostPort
  /** Ours: SNIs of this datacenter go to the catalog, all others to their gateways. */
  readonly datacenter: string
  /** Ours: an SNI of another trust domain is refused. */
  readonly trustDomain: string
  /** Instances of our datacenter's services (the mesh dir catalog). */
  readonly resolver: Resolver
  /** Each other datacenter's mesh gateways. */
  readonly remoteGateways: ReadonlyMap<string, readonly HostPort[]>
  readonly timeouts: Timeouts
  /** 0 = unlimited; counts connections still sending their ClientHello. */
  readonly maxConnections?: number
  readonly logger: Logger
  readonly metrics?: Metrics
}

/** Where a connection goes. */
interface Route {
  readonly name: ConsulSni
  /** `service` (an instance in our catalog) or `mesh_gateway` (another datacenter's). */
  readonly via: 'service' | 'mesh_gateway'
  readonly targets: readonly HostPort[]
}

/** A refusal: the `reason` of the log line and the metric's result, and what to do about it. */
class Refusal extends Error {
  constructor (readonly reason: string, message: string) { super(message) }
}

let nextConnId = 0

/** Routes TLS connections by SNI without terminating them. */
export class MeshGateway extends Listener {
  readonly #o: MeshGatewayOptions
  readonly #metrics: Metrics
  /** Sockets still sending their ClientHello (never admitted: destroyed on close). */
  readonly #sniffing = new Set<Socket>()
  #rr = 0
  /** Other datacenters' gateways: the options', until setRemoteGateways (SIGHUP). */
  #remote: ReadonlyMap<string, readonly HostPort[]>

  constructor (o: MeshGatewayOptions) {
    const metrics = o.metrics ?? noopMetrics
    super({ kind: 'mesh_gateway', timeouts: o.timeouts, maxConnections: o.maxConnections ?? 0, logger: o.logger, metrics })
    this.#o = o
    this.#metrics = metrics
    this.#remote = o.remoteGateways
  }

  /** Route other datacenters to these gateways from now on (connections already relayed keep theirs). */
  setRemoteGateways (m: ReadonlyMap<string, readonly HostPort[]>): void {
    this.#remote = m
  }

  /** Bind and start accepting; resolves with the bound address. */
  async start (): Promise<HostPort> {
    const server = createServer({ allowHalfOpen: true, noDelay: true }, sock => this.#onTcp(sock))
    return await this.bind(server, this.#o.listen, '--listen')
  }

  #onTcp (sock: Socket): void {
    const remote = `${sock.remoteAddress}:${sock.remotePort}`
    if (!this.admit(this.#sniffing.size, { remote })) { cut(sock); return }
    sock.on('error', ignoreError) // a reset while sniffing ends in 'close'; the relay reports its own
    this.#sniffing.add(sock)
    const id = { conn: `gw-${++nextConnId}`, listener: 'mesh_gateway', remote }
    sniffClientHello(sock, this.#o.timeouts.handshakeTimeoutMs).then(async s => {
      this.#sniffing.delete(sock)
      if (!s.ok) throw new Refusal(s.reason, s.detail)
      if (s.sni === null) throw new Refusal('no_sni', 'the ClientHello has no server_name; a mesh gateway routes by SNI (<service>.<namespace>.<datacenter>.internal.<trust-domain>)')
      const route = await this.#route(s.sni)
      this.#forward(sock, s.bytes, route, { ...id, sni: s.sni })
    }).catch((err: unknown) => {
      this.#sniffing.delete(sock)
      if (!(err instanceof Refusal)) { connBug(this.#o.logger, id, () => cut(sock))(err); return }
      this.#refuse(sock, id, err)
    })
  }

  #refuse (sock: Socket, id: Record<string, unknown>, r: Refusal): void {
    this.#metrics.connection('mesh_gateway', r.reason)
    // A client that hangs up before saying anything is routine (health checks, scanners).
    const level = r.reason === 'closed_before_client_hello' ? 'debug' : 'warn'
    this.#o.logger[level]({ ...id, reason: r.reason, err: r.message }, 'conn rejected')
    cut(sock) // a reset: the sidecar's app sees the refusal as one too
  }

  /** Where `sni` goes; a Refusal when nowhere. */
  async #route (sni: string): Promise<Route> {
    const name = parseConsulSni(sni)
    if (typeof name === 'string') throw new Refusal('unknown_sni', name)
    const { trustDomain, datacenter } = this.#o
    if (name.trustDomain !== trustDomain) throw new Refusal('foreign_trust_domain', `SNI ${sni} is for trust domain ${name.trustDomain}, not ours (${trustDomain})`)
    if (name.datacenter !== datacenter) {
      const gws = this.#remote.get(name.datacenter)
      if (gws === undefined || gws.length === 0) {
        const known = [...this.#remote.keys()]
        throw new Refusal('unknown_datacenter', `no mesh gateway is known for datacenter ${name.datacenter} (known: ${known.length === 0 ? 'none' : known.join(', ')}; add --remote-gateway ${name.datacenter}=<host:port>)`)
      }
      return { name, via: 'mesh_gateway', targets: gws }
    }
    const instances = await this.#o.resolver.instances(name.service)
    if (instances.length === 0) throw new Refusal('unknown_service', `no healthy instance of ${name.service} in datacenter ${datacenter} (is its sidecar running and registered in the catalog?)`)
    return { name, via: 'service', targets: instances }
  }

  /** Connect to one of the route's targets (round-robin, the next on a failure); a Refusal when none answers. */
  async #connect (route: Route, id: Record<string, unknown>, signal: AbortSignal): Promise<{ sock: Socket, at: string }> {
    const { targets } = route
    const start = this.#rr++
    let last: Error | undefined
    for (let k = 0; k < targets.length && !signal.aborted; k++) {
      const to = targets[(start + k) % targets.length]!
      try {
        return { sock: await dial(to, this.#o.timeouts.connectTimeoutMs, undefined, signal), at: `${to.host}:${to.port}` }
      } catch (err) {
        if (signal.aborted) break
        last = toError(err)
        this.#metrics.upstreamConnectError(route.via === 'service' ? route.name.service : `mesh_gateway:${route.name.datacenter}`)
        this.#o.logger.debug({ ...id, target: `${to.host}:${to.port}`, err: last.message }, 'gateway target unreachable')
      }
    }
    throw new Refusal('upstream_unavailable', `no ${route.via === 'service' ? `instance of ${route.name.service}` : `mesh gateway of ${route.name.datacenter}`} answered: ${last?.message ?? 'none tried'}`)
  }

  /** Dial the route, hand it the ClientHello as it came, and relay the rest both ways. */
  #forward (sock: Socket, hello: Buffer, route: Route, id: Record<string, unknown>): void {
    // Until the relay: an abort (the drain's end) resets the client and cancels the dial.
    const dialing = new AbortController()
    let abort = (): void => { cut(sock); dialing.abort() }
    const finish = this.track({ abort: () => abort() })
    const access = { ...id, service: route.name.service, datacenter: route.name.datacenter, via: route.via }
    this.#connect(route, id, dialing.signal).then(({ sock: up, at }) => {
      if (sock.destroyed) { cut(up); this.#metrics.connection('mesh_gateway', 'aborted'); this.#o.logger.debug({ ...access, reason: 'peer_gone' }, 'conn closed'); finish(); return }
      const fields = { ...access, target: at }
      if (this.#o.logger.isLevelEnabled('debug')) this.#o.logger.debug(fields, 'conn opened')
      up.write(hello)
      const r = relay(sock, up, this.#o.timeouts, result => {
        logClosed(this.#o.logger, result, this.#metrics, 'mesh_gateway', 'peer', fields)
        finish()
      })
      abort = () => r.abort()
    }, (err: unknown) => {
      finish()
      if (dialing.signal.aborted) {
        this.#metrics.connection('mesh_gateway', 'aborted')
        this.#o.logger.info({ ...access, reason: 'aborted', err: 'the gateway closed while dialing' }, 'conn closed')
      } else if (err instanceof Refusal) this.#refuse(sock, access, err)
      else throw err
    }).catch(connBug(this.#o.logger, access, () => { abort(); finish() }))
  }

  protected override beforeDrain (): void {
    // Clients still sending their ClientHello were never admitted: nothing to drain.
    for (const s of [...this.#sniffing]) s.destroy()
  }
}
