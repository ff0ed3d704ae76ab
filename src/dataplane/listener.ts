/**
 * What every listener of the data plane does the same way, written once:
 * binding (errors name the flag), admission against --max-connections, the
 * registry of live connections with the active gauge, and shutdown:
 * close() stops accepting, lets live connections finish for up to
 * drainTimeoutMs and then aborts the rest; destroy() aborts them now. Both
 * idempotent. Inbound and outbound add only what differs (TLS side, app side).
 */
import type { Server, AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import type { Endpoint, HostPort, Timeouts } from '../core/config/types.js'
import { DEFAULT_UNIX_SOCKET_MODE, isUnix } from '../core/config/endpoint.js'
import { listen } from '../net/listen.js'
import { listenUnix } from '../net/unix.js'
import type { Direction, Metrics } from '../metrics/metrics.js'
import { ConnRegistry, type TrackedConn } from './conn-registry.js'

/** What the base needs. */
export interface ListenerOptions {
  readonly kind: Direction
  readonly timeouts: Timeouts
  /** 0 = unlimited. */
  readonly maxConnections: number
  readonly logger: Logger
  readonly metrics: Metrics
}

/** A listener with a registry of live connections of type C. */
export abstract class Listener<C extends TrackedConn = TrackedConn> {
  protected readonly registry = new ConnRegistry<C>()
  protected readonly base: ListenerOptions
  #server: Server | undefined
  #closing: Promise<void> | undefined

  constructor (base: ListenerOptions) {
    this.base = base
  }

  /** Live connections (0 after close). */
  get connections (): number { return this.registry.size }

  /**
   * Listen on `at`; resolves with the bound address, rejects with a ListenError
   * naming `flag`. A UNIX socket gets `unixMode`; a stale one in its place (a
   * process that died) is replaced, with a warning (net/unix.ts).
   */
  protected async bind (server: Server, at: HostPort, flag: string): Promise<HostPort>
  protected async bind (server: Server, at: Endpoint, flag: string, unixMode: number): Promise<Endpoint>
  protected async bind (server: Server, at: Endpoint, flag: string, unixMode?: number): Promise<Endpoint> {
    this.#server = server
    if (isUnix(at)) {
      const { replacedStale } = await listenUnix(server, at.path, flag, unixMode ?? DEFAULT_UNIX_SOCKET_MODE)
      if (replacedStale) this.base.logger.warn({ listener: this.base.kind, flag, path: at.path }, 'stale socket replaced')
      return at
    }
    await listen(server, at, flag)
    const a = server.address() as AddressInfo
    return { host: a.address, port: a.port }
  }

  /**
   * Room for one more connection, with `pending` others not yet registered
   * (in the handshake)? Over --max-connections: counted, logged with `fields`, false.
   */
  protected admit (pending: number, fields: Record<string, unknown>): boolean {
    const max = this.base.maxConnections
    if (max === 0 || this.registry.size + pending < max) return true
    this.base.metrics.connection(this.base.kind, 'over_limit')
    this.base.logger.warn({ listener: this.base.kind, ...fields, reason: 'max_connections', maxConnections: max }, 'conn rejected')
    return false
  }

  /** Register `conn` and count it active; the returned function undoes both (call it once, when both sockets are closed). */
  protected track (conn: C): () => void {
    const undo = this.base.metrics.trackActive(this.base.kind)
    this.registry.add(conn)
    return () => { undo(); this.registry.delete(conn) }
  }

  /** Before the drain: what the subclass stops at once (handshakes that were never admitted). */
  protected beforeDrain (): void {}
  /** After the drain: what the subclass releases (caches, tunnels); close() resolves after it. */
  protected afterClose (): void | Promise<void> {}

  /** Stop accepting, let live connections finish for up to drainTimeoutMs, then close them. Idempotent. */
  close (): Promise<void> {
    this.#closing ??= (async () => {
      const server = this.#server
      const stopped = server === undefined ? Promise.resolve() : new Promise<void>(resolve => server.close(() => resolve()))
      this.beforeDrain()
      await this.registry.drain(this.base.timeouts.drainTimeoutMs)
      await stopped
      await this.afterClose()
    })()
    return this.#closing
  }

  /** Close everything now. Idempotent. */
  async destroy (): Promise<void> {
    this.registry.abortAll()
    await this.close()
  }
}
