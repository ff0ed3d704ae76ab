/**
 * A TLS 1.3 client session with the server's certificate cut out.
 *
 * Node hands a client its sessions as OpenSSL's DER (i2d_SSL_SESSION) and
 * takes one back the same way, so every resumed connect decodes it again
 * (d2i_SSL_SESSION). With the server's leaf inside, that is an X.509 decode:
 * ~150 µs in OpenSSL 3.0, 18 % of an outbound sidecar's CPU under connection
 * churn (bench/RESULTS.md). The client never uses that certificate again: a
 * resumed TLS 1.3 handshake carries no certificate, Node reports none on a
 * resumed client connection either way, and it accepts a resumed TLS 1.3
 * session that holds none (node's VerifyPeerCertificate). The server identity
 * we verified travels next to the ticket (session-cache.ts), and the server
 * still proves it is that server by holding the ticket's keys.
 *
 * TLS 1.3 sessions only: Node reports a resumed TLS 1.2 session without a
 * certificate as a verification failure. Anything not of the shape below is
 * returned as it is (resumption still works, at the old cost).
 *
 *   SSL_SESSION_ASN1 ::= SEQUENCE { version INTEGER, ssl_version INTEGER,
 *     cipher, session_id, master_key, ..., peer [3] EXPLICIT Certificate OPTIONAL, ... }
 *
 * Node 22 and 24 (seen on 22.23 and 24.22; Node 20 does not) hand the DER inside an envelope of their own,
 * `\0nodejs:tls:session:1\0`, a 16-bit big-endian length and the server name,
 * then the DER (node's SSLSession serialisation); the envelope is kept as it
 * is around the cut DER. Without this the cut was silently off on those Nodes.
 *
 * Pure: no I/O. Runs once per received ticket, never per relayed chunk.
 */

const SEQUENCE = 0x30
const INTEGER = 0x02
/** [3] EXPLICIT, constructed: the peer certificate. */
const PEER = 0xa3
const TLS13 = 0x0304

/** One DER element: its tag, where its content starts, where it ends. */
interface Tlv { readonly tag: number, readonly body: number, readonly end: number }

/** The element at `at`, or undefined unless it is definite-length DER that ends by `limit`. */
function tlvAt (der: Uint8Array, at: number, limit: number): Tlv | undefined {
  if (at + 2 > limit) return undefined
  const tag = der[at]!
  if ((tag & 0x1f) === 0x1f) return undefined // high tag numbers: not in a session
  const first = der[at + 1]!
  let length = first
  let body = at + 2
  if (first >= 0x80) {
    const n = first & 0x7f
    if (n === 0 || n > 3 || body + n > limit) return undefined // indefinite, or longer than any session
    length = 0
    for (let k = 0; k < n; k++) length = length * 256 + der[body + k]!
    body += n
  }
  const end = body + length
  return end > limit ? undefined : { tag, body, end }
}

/** How many bytes the DER length `n` takes. */
const lengthSize = (n: number): number => n < 0x80 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 4

/** Write the DER length `n` at `at`; returns where the content starts. */
function writeLength (out: Buffer, at: number, n: number): number {
  const size = lengthSize(n)
  if (size === 1) { out[at] = n; return at + 1 }
  out[at] = 0x80 | (size - 1)
  for (let k = size - 1; k >= 1; k--) { out[at + k] = n & 0xff; n >>>= 8 }
  return at + size
}

/** The envelope Node 22/24 put around the DER: magic, u16 name length, name. */
const ENVELOPE = Buffer.from('\0nodejs:tls:session:1\0', 'latin1')

/** Where the DER starts in `session`: 0 for bare DER, after the envelope, or -1 for a malformed envelope. */
function derStart (session: Buffer): number {
  if (session.length < ENVELOPE.length + 2 || session.compare(ENVELOPE, 0, ENVELOPE.length, 0, ENVELOPE.length) !== 0) return 0
  const at = ENVELOPE.length + 2 + session.readUInt16BE(ENVELOPE.length)
  return at < session.length ? at : -1
}

/** `session` without its peer certificate when it is a TLS 1.3 session holding one; otherwise `session` itself. */
export function withoutPeerCertificate (session: Buffer): Buffer {
  const start = derStart(session)
  if (start < 0) return session
  if (start === 0) return cutDer(session, Buffer.alloc(0))
  const der = session.subarray(start)
  const out = cutDer(der, session.subarray(0, start))
  return out === der ? session : out
}

/** `der` cut (see above) behind `prefix`, or `der` itself when there is nothing to cut. */
function cutDer (session: Buffer, prefix: Buffer): Buffer {
  const outer = tlvAt(session, 0, session.length)
  if (outer === undefined || outer.tag !== SEQUENCE || outer.end !== session.length) return session
  const version = tlvAt(session, outer.body, outer.end)
  if (version === undefined || version.tag !== INTEGER) return session
  const proto = tlvAt(session, version.end, outer.end)
  if (proto === undefined || proto.tag !== INTEGER || proto.end - proto.body !== 2 || session.readUInt16BE(proto.body) !== TLS13) return session
  let peer: { start: number, end: number } | undefined
  let at = proto.end
  while (at < outer.end) {
    const e = tlvAt(session, at, outer.end)
    if (e === undefined) return session
    if (e.tag === PEER) peer = { start: at, end: e.end }
    at = e.end
  }
  if (peer === undefined) return session
  const bodyLength = outer.end - outer.body - (peer.end - peer.start)
  // Its own memory, not a slice of Node's shared pool: it stays cached for minutes.
  const out = Buffer.allocUnsafeSlow(prefix.length + 1 + lengthSize(bodyLength) + bodyLength)
  prefix.copy(out, 0)
  out[prefix.length] = SEQUENCE
  const body = writeLength(out, prefix.length + 1, bodyLength)
  const mid = body + session.copy(out, body, outer.body, peer.start)
  session.copy(out, mid, peer.end, outer.end)
  return out
}
