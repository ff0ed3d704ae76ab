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
 * does not know (restart, rotation) falls back to a full certificate
 * handshake; an upstream that declines PSKs (not mesh-proxy) is offered
 * tickets instead (outbound.ts).
 *
 * With `--workers N` the kernel hands each connection to any worker, so a PSK
 * one worker made is shared with its siblings through the primary (runtime/supervisor.ts):
 * `sharedPsk` turns it into a plain message, `adoptPsk` takes it into a
 * sibling's table, only under the same TLS generation (same leaf, same bundle:
 * the peer was verified against the roots the sibling trusts) and unexpired.
 * The workers are one sidecar that already shares its private key file; the
 * key travels over the cluster's IPC channel to its own processes only.
 *
 * Node's PSK callbacks are OpenSSL's legacy ones, whose TLS 1.3 PSK is bound
 * to SHA-256: a server that picks AES-256-GCM-SHA384 ignores it. Our contexts
 * list TLS_AES_128_GCM_SHA256 first (tls-context.ts), as Envoy and Go do.
 */
import type { TLSSocket } from 'node:tls'
import type { PeerIdentity } from './peer.js'
import { parseSpiffeId, toConsulService } from '../core/identity/spiffe-id.js'

/** RFC 5705 labels beginning with "EXPORTER" are for private use. */
const IDENTITY_LABEL = 'EXPORTER-mesh-proxy-psk-identity'
const KEY_LABEL = 'EXPORTER-mesh-proxy-psk'
/** TLS 1.3 exporters treat a missing context as an empty one (RFC 8446 §7.5). */
const NO_CONTEXT = Buffer.alloc(0)
const IDENTITY_BYTES = 16
const PSK_BYTES = 32
/** An identity as exportPsk writes it: IDENTITY_BYTES in lower-case hex. */
const IDENTITY_FORM = new RegExp(`^[0-9a-f]{${IDENTITY_BYTES * 2}}$`)

/** A PSK as Node's client pskCallback returns it. */
export interface Psk {
  /** Hex, so valid UTF-8 as Node requires. */
  readonly identity: string
  readonly psk: Buffer
}

/** The PSK of an established TLS 1.3 connection, the same on both ends; undefined below TLS 1.3. */
export function exportPsk (sock: TLSSocket): Psk | undefined {
  if (sock.getProtocol() !== 'TLSv1.3') return undefined
  return { identity: sock.exportKeyingMaterial(IDENTITY_BYTES, IDENTITY_LABEL, NO_CONTEXT).toString('hex'), psk: sock.exportKeyingMaterial(PSK_BYTES, KEY_LABEL, NO_CONTEXT) }
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

/**
 * A server PSK as one --workers process hands it to the others: JSON-safe
 * (cluster IPC), with the TLS generation it belongs to (TlsState.generation).
 */
export interface SharedPsk {
  readonly generation: string
  readonly identity: string
  /** base64 */
  readonly psk: string
  readonly peer: { readonly uri: string, readonly serial: string, readonly notAfter: number }
  readonly expiresAt: number
}

/** The message for a PSK just made under `generation`. */
export function sharedPsk (generation: string, identity: string, e: ServerPsk): SharedPsk {
  return { generation, identity, psk: e.psk.toString('base64'), peer: { uri: e.peer.id.uri, serial: e.peer.serial, notAfter: e.peer.notAfter.getTime() }, expiresAt: e.expiresAt }
}

/** What adoptPsk did with a shared PSK. */
export type Adopted = 'adopted' | 'other_generation' | 'expired' | 'malformed' | 'not_started'

/**
 * Take a sibling's PSK into `table` when it was made under `generation` (ours)
 * and has not expired. A message of another shape is refused, not thrown.
 */
export function adoptPsk (table: PskTable, generation: string, m: SharedPsk, now: number): Adopted {
  const psk = typeof m?.psk === 'string' ? Buffer.from(m.psk, 'base64') : undefined
  if (psk?.length !== PSK_BYTES || typeof m.identity !== 'string' || !IDENTITY_FORM.test(m.identity) ||
    typeof m.expiresAt !== 'number' || typeof m.peer?.uri !== 'string' || typeof m.peer.serial !== 'string' || typeof m.peer.notAfter !== 'number') return 'malformed'
  if (m.generation !== generation) return 'other_generation'
  if (now >= m.expiresAt || now >= m.peer.notAfter) return 'expired'
  let id
  try { id = parseSpiffeId(m.peer.uri) } catch { return 'malformed' }
  table.set(m.identity, { psk, peer: { id, service: toConsulService(id), serial: m.peer.serial, notAfter: new Date(m.peer.notAfter) }, expiresAt: m.expiresAt })
  return 'adopted'
}
