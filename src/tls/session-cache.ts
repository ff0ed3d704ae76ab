/**
 * TLS session tickets for outbound resumption, one per upstream instance.
 *
 * A resumed TLS 1.3 handshake (PSK with (EC)DHE) skips both certificate
 * messages, both signatures and both chain verifications; the server proves
 * it is the one we verified by holding the ticket key. So a ticket is only
 * valid together with what we verified when we got it:
 *
 * - it belongs to one TLS generation of ours (`owner`): a new leaf or bundle
 *   drops every ticket (the server side swaps its ticket keys with its leaf);
 * - it remembers the server identity we checked (`peerId`), which a resumed
 *   handshake cannot check again (Node does not call checkServerIdentity then);
 * - it expires at the earliest of SESSION_LIFETIME_MS after the full handshake,
 *   our leaf's notAfter and the server leaf's notAfter. Tickets received on a
 *   resumed connection inherit the expiry, never extend it.
 *
 * Pure bookkeeping: no I/O, time is passed in.
 */
import type { Psk } from './psk.js'

/** How long a ticket may be used after the full handshake that verified the server: Node's server sessionTimeout default (300 s). */
export const SESSION_LIFETIME_MS = 300_000

/** Until when a ticket or PSK made `now` may be used: SESSION_LIFETIME_MS, and never past the peer's or our own leaf. */
export function resumableUntil (now: number, peerNotAfter: Date, ownNotAfter: Date): number {
  return Math.min(now + SESSION_LIFETIME_MS, peerNotAfter.getTime(), ownNotAfter.getTime())
}
/** Instances remembered at most; the oldest is dropped first. */
const MAX_INSTANCES = 1024

/** What a resumption needs, and what it must carry over. */
export interface CachedSession {
  /** A TLS session (ticket), for any server. */
  readonly session?: Buffer
  /** A PSK made with a mesh-proxy server (psk.ts). */
  readonly psk?: Psk
  /** The server's SPIFFE ID, checked on the full handshake. */
  readonly peerId: string
  readonly expiresAt: number
}

interface Entry extends CachedSession { readonly owner: object }

/** Tickets by upstream instance ("host:port"). */
export class SessionCache {
  readonly #entries = new Map<string, Entry>()

  /** The ticket for `instance`, when it was made under `owner` and has not expired; stale ones are dropped. */
  get (owner: object, instance: string, now: number): CachedSession | undefined {
    const e = this.#entries.get(instance)
    if (e === undefined) return undefined
    if (e.owner !== owner || now >= e.expiresAt) {
      this.#entries.delete(instance)
      return undefined
    }
    return e
  }

  /** Remember the newest ticket for `instance`. */
  set (owner: object, instance: string, s: CachedSession): void {
    this.#entries.delete(instance) // re-insert: the Map's order is the eviction order
    if (this.#entries.size >= MAX_INSTANCES) this.#entries.delete(this.#entries.keys().next().value as string)
    this.#entries.set(instance, { ...s, owner })
  }

  /** Forget `instance` (a resumption it offered failed in a way that needs a full handshake). */
  delete (instance: string): void {
    this.#entries.delete(instance)
  }

  get size (): number { return this.#entries.size }

  clear (): void {
    this.#entries.clear()
  }
}
