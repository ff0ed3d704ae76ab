/** The validated, frozen configuration of one sidecar. */
import type { IdentityForm } from '../identity/forms.js'
import type { UpstreamTarget } from '../resolver.js'

/** A host and port. */
export interface HostPort {
  readonly host: string
  readonly port: number
}

/** A UNIX domain socket, given as `unix:/run/app.sock` (core/config/endpoint.ts). */
export interface UnixSocket {
  readonly path: string
}

/** Where the local app is, or where an upstream listener binds: TCP or a UNIX socket. */
export type Endpoint = HostPort | UnixSocket

/** One upstream: a local plaintext listener that leads to a service's sidecars. */
export interface UpstreamConfig {
  readonly service: string
  /** A TCP address, or a UNIX socket this sidecar creates (mode `unixSocketMode`). */
  readonly bind: Endpoint
  /** Explicit instances (`db:9191=h:p,h:p`), or null to resolve through the mesh dir catalog. */
  readonly instances: readonly HostPort[] | null
  /** Consul proxy registrations: the upstream's namespace, datacenter, partition when not ours. */
  readonly target?: UpstreamTarget
  /** Consul's per-upstream `connect_timeout_ms`, instead of --connect-timeout. */
  readonly connectTimeoutMs?: number
  /** Consul's `LocalBindSocketMode`: this upstream's UNIX socket mode, instead of --unix-socket-mode. */
  readonly socketMode?: number
}

/** Another trust domain we accept peers of (SPIFFE federation): its bundle, as a file we follow. */
export interface Federation {
  readonly trustDomain: string
  /** A SPIFFE bundle (JSON, as SPIRE's federation endpoint serves it) or PEM roots. */
  readonly bundleFile: string
}

/** The five per-connection timeouts plus the shutdown drain. 0 disables idle and lifetime. */
export interface Timeouts {
  /** TLS handshake, inbound and outbound, measured from TCP accept/connect. */
  readonly handshakeTimeoutMs: number
  /** TCP connect to the local app or to an upstream instance. */
  readonly connectTimeoutMs: number
  /** No byte in either direction for this long closes the connection. */
  readonly idleTimeoutMs: number
  /** After one side half-closes, how long the other direction may keep flowing. */
  readonly closeTimeoutMs: number
  /** Hard cap on a connection's life. */
  readonly maxConnLifetimeMs: number
  /** On shutdown, how long live connections may finish before they are closed. */
  readonly drainTimeoutMs: number
}

/**
 * The control plane, one shape per kind (src/plane/ has one implementation each):
 * - mesh-dir: the embedded one (`--mesh-dir`): certificates issued from its CA,
 *   intentions and the catalog from its files;
 * - files: `--cert/--key/--ca` written by someone else (spiffe-helper,
 *   cert-manager); intentions and catalog from a mesh dir when one is given too;
 * - consul: the local Consul agent (`--control-plane consul`);
 * - spiffe: the SPIFFE Workload API (`--control-plane spiffe`, the SPIRE agent's
 *   socket): SVIDs and bundles streamed; intentions and catalog as for files.
 */
export type PlaneConfig =
  | { readonly kind: 'mesh-dir', readonly meshDir: string }
  | { readonly kind: 'files', readonly cert: string, readonly key: string, readonly ca: string, readonly meshDir: string | null }
  | { readonly kind: 'consul', readonly address: string, readonly token: string | null, readonly tokenFile: string | null, readonly caCertFile: string | null, readonly register: ConsulRegister | null, readonly authorizeViaAgent: boolean }
  | { readonly kind: 'spiffe', readonly endpoint: WorkloadEndpoint, readonly meshDir: string | null }

/** Where the SPIFFE Workload API listens (SPIFFE_ENDPOINT_SOCKET: `unix:///path` or `tcp://<ip>:<port>`). */
export type WorkloadEndpoint = { readonly kind: 'unix', readonly path: string } | { readonly kind: 'tcp', readonly host: string, readonly port: number }

/** `--consul-register`: our public listener as a connect-proxy service of the agent (as `consul connect proxy -register`). */
export interface ConsulRegister {
  /** `<service>-proxy`, or `<service>-proxy-<suffix>` with --consul-register-id. */
  readonly id: string
}

/** Effective sidecar configuration. */
export interface Config {
  readonly service: string
  readonly namespace: string
  /** How SPIFFE IDs name services, ours, our peers' and our upstreams' (core/identity/forms.ts). */
  readonly identityForm: IdentityForm
  /** Trust domains besides ours whose peers may connect (each verified against its own bundle only); empty = none. */
  readonly federate: readonly Federation[]
  /** Public mTLS listener; null when the sidecar only has upstreams. */
  readonly listen: HostPort | null
  /** The local app (TCP, or a UNIX socket it listens on); null when there is no inbound side. */
  readonly to: Endpoint | null
  readonly upstreams: readonly UpstreamConfig[]
  /** Upstreams whose connections are streams of pooled tunnels (`*`: all); docs/tunnels.md. */
  readonly tunnelUpstreams: readonly string[]
  /** What the app receives before the first byte of an inbound connection: a PROXY v2 header (core/proxy-protocol.ts), or nothing. */
  readonly proxyProtocol: 'off' | 'v2'
  /** Permission bits of the UNIX sockets the upstream listeners create (0o660 by default). */
  readonly unixSocketMode: number
  /** Where certificates, intentions and upstream instances come from (the control plane). */
  readonly plane: PlaneConfig
  /** Intentions file instead of the mesh dir's (mesh-dir and files planes). */
  readonly intentionsFile: string | null
  /** Overrides the intentions file's default policy when set. */
  readonly defaultPolicy: 'allow' | 'deny' | null
  /** Datacenter of the service identities; null = from the mesh dir (or dc1). */
  readonly datacenter: string | null
  /** Which mesh gateway an upstream of another datacenter is reached through (upstream-dc.ts). */
  readonly meshGatewayMode: 'local' | 'remote' | 'none'
  readonly timeouts: Timeouts
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'
  readonly unsafeTarget: boolean
  /** Close live inbound connections that a changed intention table now denies (beyond Consul). */
  readonly enforceOnChange: boolean
  /** Admin HTTP listener (/ready, /metrics, ...); null when `--admin off`. */
  readonly admin: HostPort | null
  /** Lifetime of leaves the sidecar issues itself (mesh dir holding the CA). */
  readonly leafTtlMs: number
  /** New inbound connections per source address (`20/s`); null = unlimited. */
  readonly sourceRateLimit: { readonly burst: number, readonly refillMs: number } | null
  /** Per listener; 0 = unlimited. Over the limit a new connection is refused with a log line and a count. */
  readonly maxConnections: number
  /** Processes sharing the listeners (node:cluster); 1 = this process alone. */
  readonly workers: number
}
