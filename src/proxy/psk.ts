/**
 * Resumption by TLS 1.3 external PSK between two mesh-proxy sidecars.
 *
 * After a full handshake in which each side verified the other's SVID, both
 * take the same PSK and PSK identity from the connection (TLS exporters,
 * RFC 8446 §7.5: secret, unique to that connection, known to its two ends
 * only) and keep it with the identity they verified. A later connection
 * between the two offers the PSK: no certificates, no signatures, and, unlike
 * a ticket, no session for the server to decrypt and decode (a ticket holds
 * the client's leaf: ~150 µs of X.509 decoding per connection in OpenSSL 3.0,
 * bench/RESULTS.md). The key exchange stays (EC)DHE (psk_dhe_ke), so forward
 * secrecy is kept, and every connection still asks the intention table.
 *
 * A PSK lives like a ticket (session-cache.ts): at most SESSION_LIFETIME_MS,
 * never past either leaf's notAfter, and only in the TLS generation that made
 * it (a new leaf or bundle on either side drops it). An identity the server
 * does not know (restart, rotation, another --workers process) falls back to a
 * full certificate handshake; an upstream that declines PSKs (not mesh-proxy)
 * is offered tickets instead (outbound.ts).
 *
 * Node's PSK callbacks are OpenSSL's legacy ones, whose TLS 1.3 PSK is bound
 * to SHA-256: a server that picks AES-256-GCM-SHA384 ignores it. Our contexts
 * list TLS_AES_128_GCM_SHA256 first (tls-context.ts), as Envoy and Go do.
 */
import type { TLSSocket } from 'node:tls'
import type { PeerIdentity } from './peer.js'

/** RFC 5705 labels beginning with "EXPORTER" are for private use. */
const IDENTITY_LABEL = 'EXPORTER-mesh-proxy-psk-identity'
const KEY_LABEL = 'EXPORTER-mesh-proxy-psk'
/** TLS 1.3 exporters treat a missing context as an empty one (RFC 8446 §7.5). */
const NO_CONTEXT = Buffer.alloc(0)

/** A PSK as Node's client pskCallback returns it. */
export interface Psk {
  /** Hex, so valid UTF-8 as Node requires. */
  readonly identity: string
  readonly psk: Buffer
}

/** The PSK of an established TLS 1.3 connection, the same on both ends; undefined below TLS 1.3. */
export function exportPsk (sock: TLSSocket): Psk | undefined {
  if (sock.getProtocol() !== 'TLSv1.3') return undefined
  return { identity: sock.exportKeyingMaterial(16, IDENTITY_LABEL, NO_CONTEXT).toString('hex'), psk: sock.exportKeyingMaterial(32, KEY_LABEL, NO_CONTEXT) }
}

/** What the server keeps per PSK: the key and the client it verified. */
export interface ServerPsk {
  readonly psk: Buffer
  readonly peer: PeerIdentity
  readonly expiresAt: number
}

/** PSK identities at most; the oldest is dropped first. */
const MAX_PSKS = 10_000

/** The server's PSKs of one TLS generation, by identity. Pure bookkeeping: time is passed in. */
export class PskTable {
  readonly #entries = new Map<string, ServerPsk>()

  /** The PSK for `identity` (as the client sent it) unless unknown or expired; expired ones are dropped. */
  get (identity: string, now: number): ServerPsk | undefined {
    const e = this.#entries.get(identity)
    if (e === undefined) return undefined
    if (now >= e.expiresAt) {
      this.#entries.delete(identity)
      return undefined
    }
    return e
  }

  set (identity: string, e: ServerPsk): void {
    if (this.#entries.size >= MAX_PSKS) this.#entries.delete(this.#entries.keys().next().value as string)
    this.#entries.set(identity, e)
  }

  get size (): number { return this.#entries.size }
}
