// Why: the public listener answers ALPN for tunnels; it must not change what any
// other client ends up speaking to the app.
import t from 'tap'
import { selectAlpn, TUNNEL_ALPN } from '../../src/tls/alpn.js'

t.test('ALPN choice: the tunnel when offered, else what the client can always speak', async t => {
  const rows: Array<[string[], string | undefined, string]> = [
    [[TUNNEL_ALPN], TUNNEL_ALPN, 'a mesh-proxy outbound asking for a tunnel'],
    [['h2', TUNNEL_ALPN], TUNNEL_ALPN, 'the tunnel wins wherever it is in the list'],
    [['h2', 'http/1.1'], 'http/1.1', 'curl, Envoy auto: HTTP/1.1, as when ALPN went unanswered'],
    [['h2'], 'h2', 'gRPC requires h2'],
    [['spdy/3', 'acme'], 'spdy/3', 'anything else: the client\'s first choice'],
    [[], undefined, 'nothing offered (Node does not call us then)']
  ]
  for (const [offered, want, why] of rows) t.equal(selectAlpn({ protocols: offered }), want, why)
})
