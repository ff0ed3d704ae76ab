// Envoy as a Consul Connect sidecar: a static bootstrap shaped like the one
// `consul connect envoy` produces (public listener: DownstreamTlsContext that
// requires a client certificate, trusted_ca = the mesh bundle and the peer's
// SPIFFE URI SAN matched; upstream cluster: UpstreamTlsContext with our leaf,
// SNI <svc>.default.dc1.internal.<td> and the server's SPIFFE URI matched;
// TLS 1.3 only), every port 0, the bound ports read back from the admin API.
import type { Test } from 'tap'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { request } from 'node:http'
import { join } from 'node:path'
import { spawnPeer, type Peer } from './peers.js'

/** A cert/key pair and the bundle that verifies peers, as PEM text. */
export interface EnvoyTls { certPem: string, keyPem: string, caPem: string }

const TLS13 = { tls_minimum_protocol_version: 'TLSv1_3', tls_maximum_protocol_version: 'TLSv1_3' }

function commonTls (tls: EnvoyTls, peerSpiffeId: string): Record<string, unknown> {
  return {
    tls_params: TLS13,
    tls_certificates: [{ certificate_chain: { inline_string: tls.certPem }, private_key: { inline_string: tls.keyPem } }],
    validation_context: {
      trusted_ca: { inline_string: tls.caPem },
      match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { exact: peerSpiffeId } }]
    }
  }
}

function tcpProxy (statPrefix: string, cluster: string): Record<string, unknown> {
  return {
    name: 'envoy.filters.network.tcp_proxy',
    typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: statPrefix, cluster }
  }
}

function cluster (name: string, port: number, transportSocket?: Record<string, unknown>): Record<string, unknown> {
  return {
    name,
    type: 'STATIC',
    connect_timeout: '5s',
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }] },
    ...(transportSocket === undefined ? {} : { transport_socket: transportSocket })
  }
}

const listenerAddr = { socket_address: { address: '127.0.0.1', port_value: 0 } }

/** Envoy as `web`'s sidecar: a plaintext upstream listener for the app, mTLS to `upstreamPort` (db's sidecar). Its stats: `cluster.<upstream>.*`. */
export function outboundBootstrap (o: { tls: EnvoyTls, upstream: string, upstreamSpiffeId: string, trustDomain: string, upstreamPort: number }): Record<string, unknown> {
  const upstreamTls = {
    name: 'tls',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
      common_tls_context: commonTls(o.tls, o.upstreamSpiffeId),
      sni: `${o.upstream}.default.dc1.internal.${o.trustDomain}`
    }
  }
  return {
    static_resources: {
      listeners: [{ name: `${o.upstream}:127.0.0.1:0`, stat_prefix: `upstream_${o.upstream}`, address: listenerAddr, filter_chains: [{ filters: [tcpProxy(`upstream.${o.upstream}`, o.upstream)] }] }],
      clusters: [cluster(o.upstream, o.upstreamPort, upstreamTls)]
    }
  }
}

/** Envoy as `db`'s sidecar: a public mTLS listener that accepts `sourceSpiffeId` and relays to the local app. Its stats: `listener.public_listener.*`. */
export function inboundBootstrap (o: { tls: EnvoyTls, sourceSpiffeId: string, appPort: number }): Record<string, unknown> {
  const downstreamTls = {
    name: 'tls',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
      common_tls_context: commonTls(o.tls, o.sourceSpiffeId),
      require_client_certificate: true
    }
  }
  return {
    static_resources: {
      listeners: [{ name: 'public_listener:127.0.0.1:0', stat_prefix: 'public_listener', address: listenerAddr, filter_chains: [{ filters: [tcpProxy('public_listener', 'local_app')], transport_socket: downstreamTls }] }],
      clusters: [cluster('local_app', o.appPort)]
    }
  }
}

/** A running Envoy: its one listener's bound port and its admin API. */
export interface RunningEnvoy {
  readonly peer: Peer
  readonly port: number
  readonly adminPort: number
  /** GET an admin path (e.g. `/stats?format=json`), the body as text. */
  admin (path: string): Promise<string>
  /** One counter from /stats, 0 when absent. */
  stat (name: string): Promise<number>
}

function get (port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path }, res => {
      let body = ''
      res.on('data', (d: Buffer) => { body += d.toString() })
      res.on('end', () => resolve(body))
    })
    req.on('error', reject)
    req.end()
  })
}

/** Start Envoy on `bootstrap` (admin on 127.0.0.1:0); resolves once its listener is bound. Killed at teardown. */
export async function startEnvoy (t: Test, bin: string, bootstrap: Record<string, unknown>): Promise<RunningEnvoy> {
  // Not t.testdir(): that is the test's one fixture dir, and makeMesh already holds it.
  const dir = await mkdtemp(join(tmpdir(), 'mesh-proxy-envoy-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const config = join(dir, 'bootstrap.yaml') // JSON is YAML: Envoy's YAML loader reads it as it is
  const adminPath = join(dir, 'admin-address')
  await writeFile(config, JSON.stringify({ ...bootstrap, admin: { address: listenerAddr } }, null, 2))
  const peer = spawnPeer(t, bin, ['-c', config, '--admin-address-path', adminPath, '--disable-hot-restart', '--concurrency', '1', '--log-level', 'info'])
  await peer.waitFor(/starting main dispatch loop/)
  const adminPort = Number((await readFile(adminPath, 'utf8')).trim().split(':').pop())
  const listeners = JSON.parse(await get(adminPort, '/listeners?format=json')) as { listener_statuses: Array<{ local_address: { socket_address: { port_value: number } } }> }
  const port = listeners.listener_statuses[0]!.local_address.socket_address.port_value
  if (!(port > 0)) throw new Error(`envoy reported no bound port: ${JSON.stringify(listeners)}`)
  const admin = (path: string): Promise<string> => get(adminPort, path)
  const stat = async (name: string): Promise<number> => {
    const body = await admin(`/stats?filter=${encodeURIComponent('^' + name.replace(/\./g, '\\.') + '$')}`)
    const m = body.match(/: (\d+)\s*$/m)
    return m === null ? 0 : Number(m[1])
  }
  return { peer, port, adminPort, admin, stat }
}
