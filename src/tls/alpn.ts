/**
 * ALPN on the public listener. A mesh-proxy outbound that wants a pooled
 * tunnel (HTTP/2 CONNECT streams over one mTLS connection, dataplane/tunnel-*.ts)
 * offers TUNNEL_ALPN; every other peer is served one connection per TLS
 * session as before. The token is ours, not HBONE's `h2`: a peer that offers
 * `h2` for its own traffic (a gRPC client, Envoy with an HTTP/2 cluster) must
 * have its bytes relayed to the app, not read as tunnel frames.
 *
 * Node has no way for a server to leave ALPN unanswered once it takes part
 * (an ALPNCallback that returns nothing, or no overlap with ALPNProtocols, is a
 * fatal no_application_protocol alert on Node 20, 22 and 24). So a peer that
 * offers ALPN without our token gets one of its own protocols: `http/1.1` when
 * it offers it (what an HTTP client falls back to when a server ignores ALPN,
 * as we did before tunnels), else its first choice (a client offering only `h2`,
 * as gRPC does, requires it). Pure.
 */

/** The ALPN protocol of a mesh-proxy tunnel (version 1: HTTP/2 CONNECT streams). */
export const TUNNEL_ALPN = 'mesh-proxy-tunnel/1'

/** The server's choice among the client's `protocols` (never empty: Node calls this only when the client offers ALPN). */
export function selectAlpn ({ protocols }: { protocols: readonly string[] }): string | undefined {
  if (protocols.includes(TUNNEL_ALPN)) return TUNNEL_ALPN
  if (protocols.includes('http/1.1')) return 'http/1.1'
  return protocols[0]
}
