/**
 * The PROXY protocol version 2 header (haproxy doc/proxy-protocol.txt, §2.2)
 * that `--proxy-protocol v2` writes to the app before the first byte of a
 * connection: the peer's source and destination address, the peer's SPIFFE
 * ID in TLV 0xD0 (the type istio/ztunnel writes, src/proxy.rs
 * PROXY_PROTOCOL_AUTHORITY_TLV, so apps written for Istio ambient read it
 * too) and PP2_TYPE_SSL (0x20) saying the client connected over TLS with a
 * verified certificate. Pure: addresses in, one Buffer out.
 */
import { isIP } from 'node:net'

/** The 12 bytes every v2 header starts with (§2.2). */
export const PP2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a])

/** TLV types we write. */
export const PP2_TYPE = {
  /** PP2_TYPE_SSL: client flags, verify result, sub-TLVs (§2.2.6). */
  SSL: 0x20,
  /** PP2_SUBTYPE_SSL_VERSION: the TLS version, US-ASCII (`TLSv1.3`). */
  SSL_VERSION: 0x21,
  /** The peer's SPIFFE ID, as istio/ztunnel writes it (not a haproxy-assigned type). */
  SPIFFE_ID: 0xd0
} as const

/** Bits of pp2_tlv_ssl.client (§2.2.6). */
export const PP2_CLIENT = { SSL: 0x01, CERT_CONN: 0x02, CERT_SESS: 0x04 } as const

/** One end of the forwarded connection. */
export interface ProxyAddress {
  readonly address: string
  readonly port: number
}

/** What the header says about one connection. */
export interface ProxyHeader {
  /** The peer (the far sidecar) as we saw it; null when unknown (the header then says UNSPEC). */
  readonly source: ProxyAddress | null
  /** Where the peer connected to (our inbound listener); null when unknown. */
  readonly destination: ProxyAddress | null
  /** The peer's verified SPIFFE ID (TLV 0xD0); omitted when undefined. */
  readonly spiffeId?: string
  /**
   * The TLS facts (PP2_TYPE_SSL): the version string, and whether the
   * certificate was presented on this connection (a full handshake) or
   * earlier in the session (resumed). Verified, always: an unverified peer
   * never reaches the app.
   */
  readonly tls?: { readonly version: string, readonly certOnThisConnection: boolean }
}

/** The largest value of a TLV and of the part after the 16-byte fixed header: a 16-bit length. */
const MAX_LEN = 0xffff

/** `::ffff:10.0.0.1` (a v4 peer on a dual-stack listener) as `10.0.0.1`; anything else unchanged. */
function unmapped (a: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a)
  return m === null ? a : m[1]!
}

function ipv4Bytes (a: string): Buffer {
  return Buffer.from(a.split('.').map(Number))
}

/** The 16 bytes of an IPv6 address in text (RFC 4291 §2.2: `::`, an embedded IPv4 tail, a zone after `%`). */
export function ipv6Bytes (text: string): Buffer {
  const a = text.split('%', 1)[0]!
  if (isIP(a) !== 6) throw new RangeError(`${JSON.stringify(text)} is not an IPv6 address`)
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(a)
  const hex = v4 === null ? a : a.slice(0, v4.index) + '0:0'
  const [head, tail] = hex.includes('::') ? hex.split('::') as [string, string] : [hex, undefined]
  const words = (s: string): number[] => s === '' ? [] : s.split(':').map(w => parseInt(w, 16))
  const h = words(head)
  const tl = tail === undefined ? [] : words(tail)
  const all = tail === undefined ? h : [...h, ...new Array<number>(8 - h.length - tl.length).fill(0), ...tl]
  const out = Buffer.alloc(16)
  all.forEach((w, i) => out.writeUInt16BE(w, i * 2))
  if (v4 !== null) ipv4Bytes(v4[1]!).copy(out, 12)
  return out
}

/** The v4-mapped form of an IPv4 address, for a header whose other end is IPv6. */
function asV6 (a: string): Buffer {
  return isIP(a) === 4 ? ipv6Bytes(`::ffff:${a}`) : ipv6Bytes(a)
}

/**
 * The family byte and address block (§2.2): TCP over IPv4 (0x11, 12 bytes)
 * when both ends are IPv4, TCP over IPv6 (0x21, 36 bytes) when either is
 * IPv6 (the other as v4-mapped), UNSPEC (0x00, none) when an end is unknown.
 */
function addressBlock (src: ProxyAddress | null, dst: ProxyAddress | null): { fam: number, block: Buffer } {
  if (src === null || dst === null) return { fam: 0x00, block: Buffer.alloc(0) }
  const s = unmapped(src.address)
  const d = unmapped(dst.address)
  for (const [what, a, port] of [['source', s, src.port], ['destination', d, dst.port]] as const) {
    if (isIP(a.split('%', 1)[0]!) === 0) throw new RangeError(`PROXY header ${what} ${JSON.stringify(a)} is not an IP address`)
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`PROXY header ${what} port ${port} is out of range (0-65535)`)
  }
  const v4 = isIP(s) === 4 && isIP(d) === 4
  const block = Buffer.alloc(v4 ? 12 : 36)
  if (v4) {
    ipv4Bytes(s).copy(block, 0)
    ipv4Bytes(d).copy(block, 4)
  } else {
    asV6(s).copy(block, 0)
    asV6(d).copy(block, 16)
  }
  block.writeUInt16BE(src.port, block.length - 4)
  block.writeUInt16BE(dst.port, block.length - 2)
  return { fam: v4 ? 0x11 : 0x21, block }
}

/** type, 16-bit length, value (§2.2.1). */
function tlv (type: number, value: Buffer): Buffer {
  if (value.length > MAX_LEN) throw new RangeError(`PROXY header TLV 0x${type.toString(16)} is ${value.length} bytes; a TLV holds at most ${MAX_LEN}`)
  const head = Buffer.alloc(3)
  head.writeUInt8(type, 0)
  head.writeUInt16BE(value.length, 1)
  return Buffer.concat([head, value])
}

/** PP2_TYPE_SSL: client flags, verify = 0 (verified), the version sub-TLV. */
function sslTlv (tls: NonNullable<ProxyHeader['tls']>): Buffer {
  const head = Buffer.alloc(5)
  head.writeUInt8(PP2_CLIENT.SSL | (tls.certOnThisConnection ? PP2_CLIENT.CERT_CONN : 0) | PP2_CLIENT.CERT_SESS, 0)
  head.writeUInt32BE(0, 1)
  return tlv(PP2_TYPE.SSL, Buffer.concat([head, tlv(PP2_TYPE.SSL_VERSION, Buffer.from(tls.version, 'ascii'))]))
}

/**
 * The whole header, PROXY command (0x21), stream protocol. Throws a
 * RangeError on an address that is not an IP, a port out of range, or a
 * header longer than the 16-bit length allows.
 */
export function encodeProxyV2 (h: ProxyHeader): Buffer {
  const { fam, block } = addressBlock(h.source, h.destination)
  const parts = [block]
  if (h.spiffeId !== undefined) parts.push(tlv(PP2_TYPE.SPIFFE_ID, Buffer.from(h.spiffeId, 'utf8')))
  if (h.tls !== undefined) parts.push(sslTlv(h.tls))
  const body = Buffer.concat(parts)
  if (body.length > MAX_LEN) throw new RangeError(`PROXY header is ${16 + body.length} bytes; the v2 length field allows at most ${16 + MAX_LEN}`)
  const fixed = Buffer.alloc(4)
  fixed.writeUInt8(0x21, 0) // version 2, command PROXY
  fixed.writeUInt8(fam, 1)
  fixed.writeUInt16BE(body.length, 2)
  return Buffer.concat([PP2_SIGNATURE, fixed, body])
}
