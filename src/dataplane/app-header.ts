/**
 * What the local app receives before the first relayed byte of an allowed
 * inbound connection, with `--proxy-protocol v2`: one PROXY v2 header
 * (core/proxy-protocol.ts) with the peer's address as we saw it, where it
 * connected to, its verified SPIFFE ID and the TLS facts. Built once per
 * connection and written once, before the relay starts, so the relay's hot
 * path neither copies nor looks at it.
 */
import type { TLSSocket } from 'node:tls'
import { encodeProxyV2, type ProxyAddress } from '../core/proxy-protocol.js'

function end (address: string | undefined, port: number | undefined): ProxyAddress | null {
  return address === undefined || port === undefined ? null : { address, port }
}

/**
 * The header for `sock`, whose peer `peerId` passed every check. A resumed
 * session (a ticket or one of our PSKs) presented its certificate on the
 * handshake that made it, not on this connection (PP2_CLIENT_CERT_SESS only).
 */
export function proxyHeaderFor (sock: TLSSocket, peerId: string): Buffer {
  return encodeProxyV2({
    source: end(sock.remoteAddress, sock.remotePort),
    destination: end(sock.localAddress, sock.localPort),
    spiffeId: peerId,
    tls: { version: sock.getProtocol() ?? 'unknown', certOnThisConnection: !sock.isSessionReused() }
  })
}
