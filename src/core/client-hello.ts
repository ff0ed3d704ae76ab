/**
 * The SNI of a TLS ClientHello, read from the raw bytes a client sent, without
 * terminating TLS (the mesh gateway holds no key and never sees plaintext).
 * Pure: bytes in, a verdict out. It reads the record layer (RFC 8446 §5.1: a
 * handshake message may span several records, records carry at most 2^14
 * bytes), the ClientHello (§4.1.2) and the server_name extension (RFC 6066
 * §3), and checks every length against its container.
 *
 * Called again with more bytes while it answers `incomplete`; the caller caps
 * how long it waits (the handshake timeout); past MAX_CLIENT_HELLO_BYTES of
 * ClientHello or MAX_BUFFERED_BYTES of records it answers `client_hello_too_large`.
 */

/** The largest ClientHello message taken (a post-quantum key share is ~1.2 KB; 16 KiB is generous). */
export const MAX_CLIENT_HELLO_BYTES = 16 * 1024

/** The most record bytes kept while waiting for it (room for record headers of a finely fragmented one). */
export const MAX_BUFFERED_BYTES = 2 * MAX_CLIENT_HELLO_BYTES

/** Why the bytes are not a ClientHello we route on (the `reason` of the gateway's refusal). */
export type HelloReason =
  /** The first byte is not a TLS handshake record: plaintext, HTTP, SSLv2. */
  | 'not_tls'
  /** A TLS handshake, but its first message is not a ClientHello. */
  | 'not_client_hello'
  /** A length or field that does not fit its container, a record of another type in the middle. */
  | 'malformed_client_hello'
  /** More than MAX_CLIENT_HELLO_BYTES, or no end within MAX_BUFFERED_BYTES. */
  | 'client_hello_too_large'
  /** A server_name that is not a DNS host name. */
  | 'malformed_sni'

/** What a buffer holds so far. */
export type HelloResult =
  /** `needBytes`: nothing can change before the buffer holds this many (the caller parses again then, not per byte). */
  | { readonly state: 'incomplete', readonly needBytes: number }
  /** `sni` null: the ClientHello has no server_name. `bytes`: the records it took (routing relays everything anyway). */
  | { readonly state: 'complete', readonly sni: string | null, readonly bytes: number }
  | { readonly state: 'invalid', readonly reason: HelloReason, readonly detail: string }

const RECORD_HANDSHAKE = 22
const HANDSHAKE_CLIENT_HELLO = 1
const EXT_SERVER_NAME = 0
const NAME_TYPE_HOST = 0
const MAX_RECORD = 1 << 14

class Malformed extends Error {}

/** A bounds-checked cursor over one message. */
class Reader {
  #at = 0
  constructor (private readonly buf: Buffer, private readonly end = buf.length) {}
  get left (): number { return this.end - this.#at }
  take (n: number, what: string): Buffer {
    if (n > this.left) throw new Malformed(`${what} needs ${n} bytes, ${this.left} left`)
    const out = this.buf.subarray(this.#at, this.#at + n)
    this.#at += n
    return out
  }

  u8 (what: string): number { return this.take(1, what)[0]! }
  u16 (what: string): number { return this.take(2, what).readUInt16BE(0) }
  /** A vector with a `width`-byte length prefix, as a reader of its own. */
  vector (width: 1 | 2, what: string): Reader {
    const n = width === 1 ? this.u8(`${what} length`) : this.u16(`${what} length`)
    return new Reader(this.take(n, what))
  }
}

const invalid = (reason: HelloReason, detail: string): HelloResult => ({ state: 'invalid', reason, detail })

/** Join the handshake records at the start of `buf`: the handshake bytes so far and the record bytes they took, or a verdict. */
function handshakeBytes (buf: Buffer): { data: Buffer, used: number, done: boolean, needBytes: number } | HelloResult {
  const parts: Buffer[] = []
  let have = 0
  let at = 0
  let need = -1 // the ClientHello's full length (4 + body), once its header is in
  let partial = 0 // the end of a record that has begun to arrive
  while (at + 5 <= buf.length) {
    const type = buf[at]!
    if (type !== RECORD_HANDSHAKE) return at === 0 ? invalid('not_tls', `first byte 0x${type.toString(16).padStart(2, '0')} is not a TLS handshake record (0x16)`) : invalid('malformed_client_hello', `a record of type ${type} inside the ClientHello`)
    if (buf[at + 1] !== 3) return invalid(at === 0 ? 'not_tls' : 'malformed_client_hello', `record version ${buf[at + 1]!}.${buf[at + 2]!} is not TLS (3.x)`)
    const len = buf.readUInt16BE(at + 3)
    if (len === 0 || len > MAX_RECORD) return invalid('malformed_client_hello', `record length ${len} is not 1..${MAX_RECORD}`)
    if (at + 5 + len > buf.length) { partial = at + 5 + len; break }
    parts.push(buf.subarray(at + 5, at + 5 + len))
    have += len
    at += 5 + len
    if (need < 0 && have >= 4) {
      const first = parts.length === 1 ? parts[0]! : Buffer.concat(parts)
      if (first[0] !== HANDSHAKE_CLIENT_HELLO) return invalid('not_client_hello', `first handshake message is of type ${first[0]!}, not ClientHello (1)`)
      need = 4 + first.readUIntBE(1, 3)
      if (need > MAX_CLIENT_HELLO_BYTES) return invalid('client_hello_too_large', `ClientHello of ${need} bytes is over ${MAX_CLIENT_HELLO_BYTES}`)
    }
    if (need >= 0 && have >= need) return { data: Buffer.concat(parts).subarray(0, need), used: at, done: true, needBytes: at }
  }
  if (buf.length > 0 && buf[0] !== RECORD_HANDSHAKE) return invalid('not_tls', `first byte 0x${buf[0]!.toString(16).padStart(2, '0')} is not a TLS handshake record (0x16)`)
  if (buf.length >= MAX_BUFFERED_BYTES) return invalid('client_hello_too_large', `no complete ClientHello in the first ${buf.length} bytes`)
  return { data: Buffer.alloc(0), used: at, done: false, needBytes: Math.max(partial, at + 5) }
}

/** RFC 6066 §3 / RFC 1123: letters, digits, hyphens, dots between labels of 1..63; no trailing dot. */
const HOST_NAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/

/** The host_name in a server_name extension's body. */
function serverName (ext: Reader): string | HelloResult {
  const list = ext.vector(2, 'server_name_list')
  if (ext.left !== 0) throw new Malformed('bytes after server_name_list')
  let host: string | undefined
  while (list.left > 0) {
    const type = list.u8('name_type')
    const name = list.vector(2, 'host_name')
    const raw = name.take(name.left, 'host_name')
    if (type !== NAME_TYPE_HOST) continue // other name types are ignored (RFC 6066 §3)
    if (host !== undefined) throw new Malformed('two host_name entries in server_name')
    const text = raw.toString('latin1').toLowerCase()
    if (!HOST_NAME.test(text)) return invalid('malformed_sni', `server_name ${JSON.stringify(text.slice(0, 80))} is not a DNS host name`)
    host = text
  }
  return host ?? invalid('malformed_sni', 'server_name extension with an empty list')
}

/** Parse the ClientHello body (after the 4-byte handshake header): the SNI, or null. */
function sniOf (body: Reader): string | null | HelloResult {
  body.take(2 + 32, 'legacy_version and random')
  if (body.vector(1, 'legacy_session_id').left > 32) throw new Malformed('legacy_session_id longer than 32 bytes')
  const suites = body.vector(2, 'cipher_suites')
  if (suites.left === 0 || suites.left % 2 !== 0) throw new Malformed(`cipher_suites of ${suites.left} bytes`)
  if (body.vector(1, 'legacy_compression_methods').left === 0) throw new Malformed('no compression method')
  if (body.left === 0) return null // TLS 1.2 without extensions
  const exts = body.vector(2, 'extensions')
  if (body.left !== 0) throw new Malformed(`${body.left} bytes after the extensions`)
  let sni: string | null | HelloResult = null
  const seen = new Set<number>()
  while (exts.left > 0) {
    const type = exts.u16('extension type')
    const data = exts.vector(2, `extension ${type}`)
    if (seen.has(type)) throw new Malformed(`extension ${type} twice`)
    seen.add(type)
    if (type === EXT_SERVER_NAME) sni = serverName(data)
  }
  return sni
}

/** See the module comment: what the bytes received so far say. */
export function parseClientHello (buf: Buffer): HelloResult {
  const hs = handshakeBytes(buf)
  if ('state' in hs) return hs
  if (!hs.done) return { state: 'incomplete', needBytes: hs.needBytes }
  try {
    const sni = sniOf(new Reader(hs.data.subarray(4)))
    if (sni !== null && typeof sni !== 'string') return sni
    return { state: 'complete', sni, bytes: hs.used }
  } catch (err) {
    if (err instanceof Malformed) return invalid('malformed_client_hello', err.message)
    throw err
  }
}
