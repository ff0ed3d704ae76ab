/**
 * Envoy configured as a Consul Connect sidecar: a static bootstrap shaped like
 * the one `consul connect envoy` produces (public listener: DownstreamTlsContext
 * that requires a client certificate, trusted_ca = the mesh bundle and the
 * peer's SPIFFE URI SAN matched; upstream cluster: UpstreamTlsContext with our
 * leaf, SNI <svc>.default.dc1.internal.<td> and the server's SPIFFE URI
 * matched; TLS 1.3 only), listeners on port 0, the bound port read back from
 * the admin API.
 *
 * Shared by the benchmark's Envoy pairs (bench/pairs.ts) and the interop tests'
 * helper (test/peers/envoy.ts); Node built-ins only, so that neither pulls in
 * the other's harness.
 */
import { existsSync, readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { request } from 'node:http'
import { join } from 'node:path'

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

/**
 * `maxConnections`: the cluster's circuit-breaker thresholds (what Consul's
 * upstream `limits { max_connections }` sets); absent: Envoy's defaults, 1024
 * connections per cluster, beyond which TCP proxy closes new downstream
 * connections at once.
 */
function cluster (name: string, port: number, transportSocket?: Record<string, unknown>, maxConnections?: number): Record<string, unknown> {
  return {
    name,
    type: 'STATIC',
    connect_timeout: '5s',
    ...(maxConnections === undefined ? {} : { circuit_breakers: { thresholds: [{ max_connections: maxConnections, max_pending_requests: maxConnections, max_requests: maxConnections }] } }),
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }] },
    ...(transportSocket === undefined ? {} : { transport_socket: transportSocket })
  }
}

/** 127.0.0.1:0: Envoy binds a free port; `listenerPort` reads which. */
export const ENVOY_ANY_PORT = { socket_address: { address: '127.0.0.1', port_value: 0 } }

/** Envoy as `web`'s sidecar: a plaintext upstream listener for the app, mTLS to `upstreamPort` (db's sidecar). Its stats: `cluster.<upstream>.*`. */
export function outboundBootstrap (o: { tls: EnvoyTls, upstream: string, upstreamSpiffeId: string, trustDomain: string, upstreamPort: number, maxConnections?: number }): Record<string, unknown> {
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
      listeners: [{ name: `${o.upstream}:127.0.0.1:0`, stat_prefix: `upstream_${o.upstream}`, address: ENVOY_ANY_PORT, filter_chains: [{ filters: [tcpProxy(`upstream.${o.upstream}`, o.upstream)] }] }],
      clusters: [cluster(o.upstream, o.upstreamPort, upstreamTls, o.maxConnections)]
    }
  }
}

/** Envoy as `db`'s sidecar: a public mTLS listener that accepts `sourceSpiffeId` and relays to the local app. Its stats: `listener.public_listener.*`. */
export function inboundBootstrap (o: { tls: EnvoyTls, sourceSpiffeId: string, appPort: number, maxConnections?: number }): Record<string, unknown> {
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
      listeners: [{ name: 'public_listener:127.0.0.1:0', stat_prefix: 'public_listener', address: ENVOY_ANY_PORT, filter_chains: [{ filters: [tcpProxy('public_listener', 'local_app')], transport_socket: downstreamTls }] }],
      clusters: [cluster('local_app', o.appPort, undefined, o.maxConnections)]
    }
  }
}

/** The bootstrap file's text: `bootstrap` plus an admin server on 127.0.0.1:0 (JSON is YAML: Envoy's loader reads it as it is). */
export const bootstrapText = (bootstrap: Record<string, unknown>): string => JSON.stringify({ ...bootstrap, admin: { address: ENVOY_ANY_PORT } }, null, 2)

/** GET an admin path on 127.0.0.1:`port`: status and body. */
export function adminGet (port: number, path: string): Promise<{ status: number, body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path }, res => {
      let body = ''
      res.on('data', (d: Buffer) => { body += d.toString() })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

/** The admin port from the file `--admin-address-path` names (`127.0.0.1:<port>`). */
export async function adminPortFrom (adminPath: string): Promise<number> {
  return Number((await readFile(adminPath, 'utf8')).trim().split(':').pop())
}

/** The port Envoy's one listener is bound to, from the admin /listeners endpoint. */
export async function listenerPort (adminPort: number): Promise<number> {
  const { body } = await adminGet(adminPort, '/listeners?format=json')
  const listeners = JSON.parse(body) as { listener_statuses: Array<{ local_address: { socket_address: { port_value: number } } }> }
  const port = listeners.listener_statuses[0]?.local_address.socket_address.port_value ?? 0
  if (!(port > 0)) throw new Error(`envoy reported no bound port: ${body}`)
  return port
}

/**
 * The Envoy binary test/peers/install.sh installed (ENVOY_BIN in
 * `${MESH_PROXY_CACHE:-$HOME/.cache/mesh-proxy}/peers/env`), or why there is none.
 */
export function installedEnvoy (): { bin: string } | { reason: string } {
  const envFile = join(process.env.MESH_PROXY_CACHE ?? join(homedir(), '.cache', 'mesh-proxy'), 'peers', 'env')
  const line = existsSync(envFile) ? readFileSync(envFile, 'utf8').split('\n').find(l => l.startsWith('ENVOY_BIN=')) : undefined
  const bin = line?.slice('ENVOY_BIN='.length)
  if (bin === undefined || bin === '') return { reason: `no ENVOY_BIN in ${envFile}: run bash test/peers/install.sh envoy` }
  if (!existsSync(bin)) return { reason: `ENVOY_BIN=${bin} (${envFile}) does not exist: run bash test/peers/install.sh envoy` }
  return { bin }
}
