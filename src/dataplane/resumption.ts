/**
 * The outbound's resumption policy, per upstream instance: what to offer on
 * the next handshake (a PSK of ours, a TLS ticket, or nothing) and what each
 * outcome teaches. A mesh-proxy server takes our PSKs (tls/psk.ts); a server
 * that is not (Envoy, openssl, haproxy) declines them, and after
 * PSK_DECLINES_FOR_TICKETS declines in a row it is offered tickets only.
 * Pure bookkeeping, no I/O: the handshake itself is upstream-attempt.ts.
 */
import { SessionCache, type CachedSession } from '../tls/session-cache.js'
import type { Psk } from '../tls/psk.js'

/** Declined PSK offers in a row after which an instance that never took one is offered tickets only. */
export const PSK_DECLINES_FOR_TICKETS = 2
/** In #pskDeclines: the instance has taken a PSK of ours, so it is offered PSKs whatever it declines. */
const TAKES_PSKS = -1
/** Instances whose PSK outcomes are remembered at most (forgotten all at once beyond). */
const MAX_INSTANCES_DECLINING = 1024

/** What one handshake offers. */
export interface Offer {
  /** The cached entry the offer came from (its peer identity stands in on resumption). */
  readonly entry: CachedSession | undefined
  /** A PSK of ours, to an instance that takes them. */
  readonly psk: Psk | undefined
  /** Else the newest ticket. */
  readonly ticket: Buffer | undefined
}

/** Tickets, PSKs and PSK outcomes of one upstream listener's instances. */
export class Resumption {
  /** Tickets and PSKs per instance, under the TLS generation that made them. */
  readonly #sessions = new SessionCache()
  /** PSK offers declined in a row per instance, or TAKES_PSKS. */
  readonly #pskDeclines = new Map<string, number>()

  /** What to offer `instance` under TLS generation `owner` at `now`. */
  offer (owner: object, instance: string, now: number): Offer {
    const entry = this.#sessions.get(owner, instance, now)
    const psk = entry?.psk !== undefined && (this.#pskDeclines.get(instance) ?? 0) < PSK_DECLINES_FOR_TICKETS ? entry.psk : undefined
    return { entry, psk, ticket: psk === undefined ? entry?.session : undefined }
  }

  /** Keep what a handshake with `instance` gave (the newest wins). */
  keep (owner: object, instance: string, s: CachedSession): void {
    this.#sessions.set(owner, instance, s)
  }

  /** A handshake that offered something failed: the next one is a full handshake. */
  forget (instance: string): void {
    this.#sessions.delete(instance)
  }

  /**
   * A PSK offer to `instance` was taken or declined. Declined twice in a row by
   * an instance that never took one (an upstream that is not mesh-proxy):
   * tickets only for that instance from then on. An instance that took one is
   * mesh-proxy, and its declines are a restart, a rotation, or a --workers
   * sibling the PSK had not reached yet: the PSK of the full handshake that
   * followed is offered next, always.
   */
  pskOutcome (instance: string, taken: boolean): void {
    const before = this.#pskDeclines.get(instance)
    if (before === TAKES_PSKS) return
    if (before === undefined && this.#pskDeclines.size >= MAX_INSTANCES_DECLINING) this.#pskDeclines.clear()
    this.#pskDeclines.set(instance, taken ? TAKES_PSKS : (before ?? 0) + 1)
  }

  /** Forget every ticket and PSK (the listener closed). */
  clear (): void {
    this.#sessions.clear()
  }
}
