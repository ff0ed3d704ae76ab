/**
 * An inbound connection between the handshake and the relay: what its log
 * lines carry, what a live one is, and the verified peers whose decision is
 * asked of someone else (the Consul agent, `--authorize-via-agent`), waiting
 * for the answer with their bytes unread. Those were never admitted, so a
 * closing listener cuts them at once instead of draining them; one that hung
 * up meanwhile is dropped when the answer comes.
 */
import type { TLSSocket } from 'node:tls'
import type { Logger } from 'pino'
import type { Decision, ServiceRef } from '../core/intentions/table.js'
import type { TrackedConn } from './conn-registry.js'
import { connBug } from './finish.js'
import { cut } from './relay.js'

/** `host:port` of the client, also once the TLS socket is gone (from its TCP socket, `_parent`). */
export function remoteOf (sock: TLSSocket): string | undefined {
  const s = sock.remoteAddress === undefined ? (sock as TLSSocket & { _parent?: { remoteAddress?: string, remotePort?: number } })._parent : sock
  return s?.remoteAddress === undefined ? undefined : `${s.remoteAddress}:${s.remotePort}`
}

/** What the decision of one verified connection is logged with. */
export interface Asked { readonly id: { conn: string, listener: string }, readonly peerId: string, readonly source: ServiceRef, readonly resumed: boolean, readonly viaPsk: boolean }

/** A live inbound connection: who it is from, so a changed table can re-check it. */
export interface InboundConn extends TrackedConn {
  readonly source: ServiceRef
  revoke (by: Decision): void
}

/** The verified peers waiting for an answer. */
export class PendingAsks {
  readonly #asking = new Set<TLSSocket>()

  /** Wait for `answer` (which must not reject: a failure is a deny), then `decided` unless `sock` is gone. */
  wait (sock: TLSSocket, answer: Promise<Decision>, decided: (d: Decision) => void, log: Logger, fields: Record<string, unknown>): void {
    this.#asking.add(sock)
    answer.then(d => {
      if (!this.#asking.delete(sock) || sock.destroyed) return
      decided(d)
    }).catch(connBug(log, fields, () => { this.#asking.delete(sock); cut(sock) }))
  }

  /** Cut every waiting peer (the listener is closing). */
  destroyAll (): void {
    for (const s of this.#asking) cut(s)
    this.#asking.clear()
  }
}
