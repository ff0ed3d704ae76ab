/**
 * A connect-proxy registration of the agent as a sidecar's settings, the way
 * Consul's built-in proxy reads it (connect/proxy/config.go,
 * AgentConfigWatcher): the public listener from `Address`/`Port` (or
 * `Proxy.Config.bind_address`/`bind_port`), the local app from
 * `Proxy.LocalServiceAddress`/`LocalServicePort`, `local_connect_timeout_ms`
 * and `handshake_timeout_ms` from `Proxy.Config`, and each upstream with its
 * namespace, datacenter, partition, local bind and `connect_timeout_ms`.
 * And `-sidecar-for`: the one proxy whose `Proxy.DestinationServiceID` is the
 * given ID, with Consul's errors for none or several.
 * Every error names the registration field and the fix. Pure.
 * Shapes followed: Consul v1.20 agent/service (Get Service Configuration)
 * and the proxy configuration reference; test/fixtures/consul/.
 */
import { parseSocketMode, parseUnixSocket } from '../core/config/endpoint.js'
import type { HostPort, UpstreamConfig } from '../core/config/types.js'
import { ConfigError } from '../core/errors.js'

/** What a registration configures. */
export interface ProxySettings {
  /** The registration's ID (what is followed). */
  readonly id: string
  /** Proxy.DestinationServiceName: the service we stand beside. */
  readonly service: string
  /** The registration's Namespace (Enterprise), when given. */
  readonly namespace: string | undefined
  readonly listen: HostPort
  /** The local app (Proxy.LocalServiceAddress, default 127.0.0.1, and LocalServicePort). */
  readonly to: HostPort
  readonly handshakeTimeoutMs: number
  /** local_connect_timeout_ms: towards the local app. */
  readonly localConnectTimeoutMs: number
  readonly upstreams: readonly UpstreamConfig[]
}

/** Consul's built-in proxy defaults (connect/proxy/config.go). */
const DEFAULTS = { bindAddress: '0.0.0.0', localConnectTimeoutMs: 1000, handshakeTimeoutMs: 10_000, upstreamBindAddress: '127.0.0.1', upstreamConnectTimeoutMs: 10_000 }

interface UpstreamBody {
  DestinationType?: string, DestinationName?: string, DestinationNamespace?: string, DestinationPartition?: string, DestinationPeer?: string
  Datacenter?: string, LocalBindAddress?: string, LocalBindPort?: number, LocalBindSocketPath?: string, LocalBindSocketMode?: string, Config?: Record<string, unknown> | null
}
interface ServiceBody {
  Kind?: string, ID?: string, Service?: string, Address?: string, Port?: number, Namespace?: string
  Proxy?: { DestinationServiceName?: string, DestinationServiceID?: string, LocalServiceAddress?: string, LocalServicePort?: number, Mode?: string, Config?: Record<string, unknown> | null, Upstreams?: UpstreamBody[] | null } | null
}

/** A positive whole number of ms from Proxy.Config, or the default. */
function ms (where: string, v: unknown, dflt: number): number {
  if (v === undefined || v === null) return dflt
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new ConfigError(where, `must be a whole number of milliseconds above 0, got ${JSON.stringify(v)}; fix the proxy registration`)
  return v
}

function port (where: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 65535) throw new ConfigError(where, `must be a port (0-65535), got ${JSON.stringify(v)}; fix the proxy registration`)
  return v
}

const given = (s: string | undefined): string | undefined => s === undefined || s === '' ? undefined : s

/** The settings of the registration `body` (GET /v1/agent/service/<id>). */
export function proxySettings (body: unknown, id: string): ProxySettings {
  const b = body as ServiceBody | null
  const at = `proxy registration ${id}`
  if (b === null || typeof b !== 'object') throw new ConfigError(at, 'the agent\'s answer is not a service definition')
  if (b.Kind !== 'connect-proxy') throw new ConfigError(`${at}: Kind`, `is ${JSON.stringify(b.Kind ?? '')}, not "connect-proxy": give the ID of a sidecar proxy registration (-proxy-id), or its service's ID (-sidecar-for)`)
  const p = b.Proxy
  const service = given(p?.DestinationServiceName)
  if (p === null || p === undefined || service === undefined) throw new ConfigError(`${at}: Proxy.DestinationServiceName`, 'is missing: a connect-proxy registration names the service it stands beside')
  if (p.Mode === 'transparent') throw new ConfigError(`${at}: Proxy.Mode`, 'transparent proxying is not supported (it needs iptables redirection); use Mode "direct" with explicit upstreams')
  const config = p.Config ?? {}
  const bindAddress = typeof config.bind_address === 'string' && config.bind_address !== '' ? config.bind_address : given(b.Address) ?? DEFAULTS.bindAddress
  const bindPort = config.bind_port === undefined ? port(`${at}: Port`, b.Port) : port(`${at}: Proxy.Config.bind_port`, config.bind_port)
  if (p.LocalServicePort === undefined || p.LocalServicePort === 0) throw new ConfigError(`${at}: Proxy.LocalServicePort`, `is missing: the port of the local ${service} app inbound connections go to (a sidecar_service block sets it to ${service}'s Port)`)
  const to = { host: given(p.LocalServiceAddress) ?? '127.0.0.1', port: port(`${at}: Proxy.LocalServicePort`, p.LocalServicePort) }
  return {
    id,
    service,
    namespace: given(b.Namespace),
    listen: { host: bindAddress, port: bindPort },
    to,
    handshakeTimeoutMs: ms(`${at}: Proxy.Config.handshake_timeout_ms`, config.handshake_timeout_ms, DEFAULTS.handshakeTimeoutMs),
    localConnectTimeoutMs: ms(`${at}: Proxy.Config.local_connect_timeout_ms`, config.local_connect_timeout_ms, DEFAULTS.localConnectTimeoutMs),
    upstreams: (p.Upstreams ?? []).map((u, i) => upstreamOf(u, `${at}: Proxy.Upstreams[${i}]`))
  }
}

function upstreamOf (u: UpstreamBody, at: string): UpstreamConfig {
  const type = given(u.DestinationType) ?? 'service'
  if (type !== 'service') throw new ConfigError(`${at}.DestinationType`, `${JSON.stringify(type)} is not supported (prepared queries are not resolved); use DestinationType "service"`)
  const name = given(u.DestinationName)
  if (name === undefined) throw new ConfigError(`${at}.DestinationName`, 'is missing: the upstream service\'s name')
  if (given(u.DestinationPeer) !== undefined) throw new ConfigError(`${at}.DestinationPeer`, 'cluster peering is not supported; name a service of this cluster (another datacenter: Datacenter)')
  const socket = given(u.LocalBindSocketPath)
  if (socket === undefined && u.LocalBindPort === undefined) throw new ConfigError(`${at}.LocalBindPort`, `is missing: the local port the app connects to for ${name} (or LocalBindSocketPath)`)
  const namespace = given(u.DestinationNamespace)
  const datacenter = given(u.Datacenter)
  const partition = given(u.DestinationPartition)
  return {
    service: name,
    // Consul's LocalBindSocketPath/Mode: a UNIX socket instead of an address (mode in octal, as Consul writes it).
    bind: socket !== undefined ? parseUnixSocket(`unix:${socket}`, `${at}.LocalBindSocketPath`) : { host: given(u.LocalBindAddress) ?? DEFAULTS.upstreamBindAddress, port: port(`${at}.LocalBindPort`, u.LocalBindPort) },
    ...(given(u.LocalBindSocketMode) === undefined ? {} : { socketMode: parseSocketMode(u.LocalBindSocketMode, `${at}.LocalBindSocketMode`) }),
    instances: null,
    target: { ...(namespace === undefined ? {} : { namespace }), ...(datacenter === undefined ? {} : { datacenter }), ...(partition === undefined ? {} : { partition }) },
    connectTimeoutMs: ms(`${at}.Config.connect_timeout_ms`, u.Config?.connect_timeout_ms, DEFAULTS.upstreamConnectTimeoutMs)
  }
}

/**
 * `-sidecar-for <service ID>`: the ID of the one connect-proxy registration
 * whose Proxy.DestinationServiceID is that ID (case-insensitive, as Consul's
 * LookupProxyIDForSidecar); Consul's errors for none and for several.
 */
export function sidecarProxyId (services: unknown, sidecarFor: string): string {
  if (services === null || typeof services !== 'object') throw new ConfigError('-sidecar-for', 'the agent\'s /v1/agent/services answer is not a map of services')
  const want = sidecarFor.toLowerCase()
  const ids = Object.values(services as Record<string, ServiceBody>)
    .filter(s => s?.Kind === 'connect-proxy' && s.Proxy?.DestinationServiceID?.toLowerCase() === want)
    .map(s => s.ID ?? '')
    .sort()
  if (ids.length === 0) throw new ConfigError('-sidecar-for', `No sidecar proxy registered for ${sidecarFor} (no service of Kind connect-proxy with Proxy.DestinationServiceID ${sidecarFor} on this agent: register one, e.g. with "connect": { "sidecar_service": {} } in ${sidecarFor}'s definition, or give -proxy-id)`)
  if (ids.length > 1) throw new ConfigError('-sidecar-for', `More than one sidecar proxy registered for ${sidecarFor}. Start proxy with -proxy-id and one of the following IDs: ${ids.join(', ')}`)
  return ids[0]!
}
