/**
 * Value parsers of the configuration: each turns one raw value (a flag's
 * string, an environment variable, or a JSON value from --config) into its
 * typed value, or throws a ConfigError naming `where` (the flag, variable or
 * `file: key` the value came from), so every message points at what to fix.
 * Pure.
 */
import { isIP } from 'node:net'
import { ConfigError } from '../errors.js'
import { DEFAULT_UPSTREAM_BIND_HOST } from './defaults.js'
import type { Endpoint, Federation, Config, HostPort, UpstreamConfig, WorkloadEndpoint } from './types.js'
import { parseRateLimit, type RateLimit } from './rate-limit.js'
import { parseIdentityForm, type IdentityForm } from '../identity/forms.js'
import { parseTrustDomain } from '../identity/spiffe-id.js'
import { isUnixSpec, parseEndpoint, parseSocketMode, parseUnixSocket } from './endpoint.js'

/** One parser: raw value and where it came from, to the typed value. */
export type Parser<T> = (raw: unknown, where: string) => T

/** Service and namespace names: Consul's rule (DNS label, underscores allowed). */
const SERVICE = /^[a-zA-Z0-9]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?$/

/** Pino's levels; `satisfies` keeps the list inside Config's type of the field. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const satisfies ReadonlyArray<Config['logLevel']>

/** Parse `host:port`, `[v6]:port` or `:port`. */
export function parseHostPort (s: string, field: string): HostPort {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(s.trim())
  if (m === null) throw new ConfigError(field, `${JSON.stringify(s)} is not host:port (e.g. 127.0.0.1:21000 or [::1]:21000)`)
  const named = m[2] ?? ''
  const host = m[1] ?? (named === '' ? '0.0.0.0' : named)
  const port = Number(m[3])
  if (port > 65535) throw new ConfigError(field, `port ${port} is out of range (0-65535)`)
  return { host, port }
}

/** Parse a duration: `250ms`, `10s`, `5m`, `1h`, or a bare number of milliseconds. */
export function parseDuration (v: unknown, field: string): number {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v
  const m = typeof v === 'string' ? /^(\d+)(ms|s|m|h)?$/.exec(v.trim()) : null
  if (m === null) throw new ConfigError(field, `${JSON.stringify(v)} is not a duration (e.g. 500ms, 10s, 5m, 1h, or milliseconds)`)
  const mult = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h' ?? 'ms']
  return Number(m[1]) * mult
}

/**
 * Parse an upstream: `db:9191`, `db:127.0.0.2:9191`, `db:unix:/run/db.sock`,
 * and with explicit instances `db:9191=10.0.0.5:21000,10.0.0.6:21000`.
 */
export function parseUpstream (s: string, field: string): UpstreamConfig {
  const [left, right] = s.split('=', 2) as [string, string | undefined]
  const i = left.indexOf(':')
  if (i <= 0) throw new ConfigError(field, `${JSON.stringify(s)} is not service:port, service:host:port, service:unix:/path or service:port=host:port,... (e.g. db:9191)`)
  const service = left.slice(0, i)
  if (!SERVICE.test(service)) throw new ConfigError(field, `upstream service name ${JSON.stringify(service)} is invalid (letters, digits, '-', '_')`)
  const rest = left.slice(i + 1)
  const bind = /^\d+$/.test(rest) ? parseHostPort(`${DEFAULT_UPSTREAM_BIND_HOST}:${rest}`, field) : isUnixSpec(rest) ? parseUnixSocket(rest, field) : parseHostPort(rest, field)
  let instances: HostPort[] | null = null
  if (right !== undefined) {
    instances = right.split(',').filter(x => x !== '').map(x => parseHostPort(x, field))
    if (instances.length === 0) throw new ConfigError(field, `${JSON.stringify(s)} lists no instances after "="`)
  }
  return { service, bind, instances }
}

/** A loopback address: 127.0.0.0/8, ::1, localhost. */
export function isLoopback (host: string): boolean {
  if (host === 'localhost' || host === '::1') return true
  return isIP(host) === 4 && host.startsWith('127.')
}

/** A non-empty string: paths, tokens, addresses checked later by whoever dials them. */
export const str: Parser<string> = (v, where) => {
  if (typeof v !== 'string' || v === '') throw new ConfigError(where, 'must be a non-empty string')
  return v
}

/** JSON booleans, and `true`/`false` as an environment variable spells them. */
export const bool: Parser<boolean> = (v, where) => {
  if (typeof v === 'boolean') return v
  if (v === 'true' || v === 'false') return v === 'true'
  throw new ConfigError(where, 'must be true or false')
}

export const hostPort: Parser<HostPort> = (v, where) => parseHostPort(str(v, where), where)

/** `--to`: `host:port` or `unix:/path` (core/config/endpoint.ts). */
export const endpoint: Parser<Endpoint> = (v, where) => parseEndpoint(str(v, where), where, parseHostPort)

/** `--unix-socket-mode`: octal bits as a string (endpoint.ts). */
export const socketMode: Parser<number> = parseSocketMode

/** `--admin`: a listener, or `off` (null) for none. */
export const hostPortOrOff: Parser<HostPort | null> = (v, where) => v === 'off' ? null : hostPort(v, where)

export const duration: Parser<number> = parseDuration

/** `--upstream`: repeatable on the command line, an array (or one string) in the file. */
export const upstreams: Parser<UpstreamConfig[]> = (v, where) => {
  const list = Array.isArray(v) ? v : [v]
  return list.map(u => parseUpstream(str(u, where), where))
}

/** `--upstream-trust-domain db=other.org`: repeatable; each upstream once. */
export const upstreamTrustDomains: Parser<Array<{ service: string, trustDomain: string }>> = (v, where) => {
  const seen = new Set<string>()
  return (Array.isArray(v) ? v : [v]).map(x => {
    const text = str(x, where)
    const i = text.indexOf('=')
    const service = text.slice(0, i)
    if (i <= 0 || !SERVICE.test(service)) throw new ConfigError(where, `${JSON.stringify(text)} is not <upstream>=<trust domain> (e.g. db=other.org)`)
    let trustDomain: string
    try { trustDomain = parseTrustDomain(text.slice(i + 1)) } catch (err) { throw new ConfigError(where, `${JSON.stringify(text.slice(i + 1))} is not a trust domain name (${(err as Error).message})`) }
    if (seen.has(service)) throw new ConfigError(where, `${service} is given twice; give each upstream one trust domain`)
    seen.add(service)
    return { service, trustDomain }
  })
}

/** `--upstream-tunnel db --upstream-tunnel billing`, or `*`: the upstreams that use pooled tunnels. */
export const tunnelUpstreams: Parser<string[]> = (v, where) => {
  const list = (Array.isArray(v) ? v : [v]).map(x => str(x, where))
  for (const s of list) if (s !== '*' && !SERVICE.test(s)) throw new ConfigError(where, `${JSON.stringify(s)} is not an upstream service name (or * for every upstream)`)
  return list
}

export const serviceName: Parser<string> = (v, where) => {
  const s = str(v, where)
  if (!SERVICE.test(s)) throw new ConfigError(where, `${JSON.stringify(s)} is not a valid service name (letters, digits, '-' and '_', at most 63)`)
  return s
}

export const namespaceName: Parser<string> = (v, where) => {
  const ns = str(v, where)
  if (!SERVICE.test(ns)) throw new ConfigError(where, `${JSON.stringify(ns)} is not a valid namespace name`)
  return ns
}

export const logLevel: Parser<Config['logLevel']> = (v, where) => {
  if (!LOG_LEVELS.includes(v as never)) throw new ConfigError(where, `must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(v)}`)
  return v as Config['logLevel']
}

/** One of two words; `what` is the rest of the message after `must be `. */
export function either<A extends string, B extends string> (a: A, b: B, what: string): Parser<A | B> {
  return (v, where) => {
    if (v !== a && v !== b) throw new ConfigError(where, `must be ${what}, got ${JSON.stringify(v)}`)
    return v as A | B
  }
}

/** One of `choices`; `what` is the rest of the message after `must be `. */
export function oneOf<C extends string> (choices: readonly C[], what: string): Parser<C> {
  return (v, where) => {
    if (typeof v !== 'string' || !(choices as readonly string[]).includes(v)) throw new ConfigError(where, `must be ${what}, got ${JSON.stringify(v)}`)
    return v as C
  }
}

/** A whole number from `min` to `max`; `what` is the rest of the message after `must be `. */
export function wholeNumber (min: number, max: number, what: string): Parser<number> {
  return (v, where) => {
    const n = typeof v === 'number' ? v : /^\d+$/.test(String(v)) ? Number(v) : NaN
    if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(where, `must be ${what}, got ${JSON.stringify(v)}`)
    return n
  }
}

/** `--source-rate-limit`: the rate syntax of rate-limit.ts, its message under this field's name. */
export const rateLimit: Parser<RateLimit | null> = (v, where) => {
  const text = str(String(v), where) // (its own ConfigError already names the field)
  try { return parseRateLimit(text) } catch (err) { throw new ConfigError(where, (err as Error).message) }
}

/** `--identity-form`: consul, kubernetes or a template (core/identity/forms.ts). */
export const identityForm: Parser<IdentityForm> = (v, where) => {
  const text = str(v, where)
  try { return parseIdentityForm(text) } catch (err) { throw new ConfigError(where, (err as Error).message) }
}

/** `--leaf-ttl`: a duration of at least `min` ms (the CA store refuses shorter leaves). */
export function durationAtLeast (min: number, what: string): Parser<number> {
  return (v, where) => {
    const ms = parseDuration(v, where)
    if (ms < min) throw new ConfigError(where, `${JSON.stringify(v)} is too short: ${what}`)
    return ms
  }
}

/** `--consul-addr`: host:port, http://host:port, https://host:port or unix:///path, as Consul's CLI takes CONSUL_HTTP_ADDR. */
export const consulAddress: Parser<string> = (v, where) => {
  const s = str(v, where)
  if (/^unix:\/\/\/.+/.test(s) || /^(https?:\/\/)?(\[[0-9a-fA-F:.]+\]|[^\s:/[\]]+):\d{1,5}\/?$/.test(s)) return s
  throw new ConfigError(where, `${JSON.stringify(s)} is not a Consul agent address: give host:port, http://host:port, https://host:port or unix:///path/to/socket`)
}

/**
 * `--spiffe-endpoint-socket` / SPIFFE_ENDPOINT_SOCKET (SPIFFE Workload Endpoint
 * standard, section 4): `unix:///path` (or `unix:/path`), or `tcp://<IP>:<port>`
 * with an IP address, never a name.
 */
export const workloadEndpoint: Parser<WorkloadEndpoint> = (v, where) => {
  const s = str(v, where)
  const authority = /^unix:\/\/([^/]+)\//.exec(s)
  if (authority !== null) throw new ConfigError(where, `${JSON.stringify(s)} has an authority part (${JSON.stringify(authority[1])}); a unix: Workload API address names a path only: unix:///${s.slice('unix://'.length)}`)
  const unix = /^unix:(?:\/\/)?(\/[^?#]+)$/.exec(s)
  if (unix !== null) return { kind: 'unix', path: unix[1]! }
  if (/^tcp:\/\/(\[[0-9a-fA-F:.]+\]|[0-9.]+)\/?$/.test(s)) throw new ConfigError(where, `${JSON.stringify(s)} has no port: give tcp://<IP address>:<port> (e.g. tcp://127.0.0.1:8081)`)
  const tcp = /^tcp:\/\/(\[[0-9a-fA-F:.]+\]|[0-9.]+):(\d{1,5})$/.exec(s)
  if (tcp !== null && isIP(tcp[1]!.replace(/^\[|\]$/g, '')) !== 0 && Number(tcp[2]) > 0 && Number(tcp[2]) < 65536) {
    return { kind: 'tcp', host: tcp[1]!.replace(/^\[|\]$/g, ''), port: Number(tcp[2]) }
  }
  throw new ConfigError(where, `${JSON.stringify(s)} is not a Workload API address: give unix:///path/to/agent.sock (SPIRE's default is unix:///tmp/spire-agent/public/api.sock) or tcp://<IP address>:<port>`)
}

/** `--federate other.org=bundle.json`: repeatable; each trust domain once. */
export const federations: Parser<Federation[]> = (v, where) => {
  const list = (Array.isArray(v) ? v : [v]).map(x => {
    const text = str(x, where)
    const i = text.indexOf('=')
    if (i <= 0 || i === text.length - 1) throw new ConfigError(where, `${JSON.stringify(text)} is not <trust domain>=<bundle file> (e.g. other.org=/etc/mesh/other.org.json)`)
    let trustDomain: string
    try { trustDomain = parseTrustDomain(text.slice(0, i)) } catch (err) { throw new ConfigError(where, `${JSON.stringify(text.slice(0, i))} is not a trust domain name (${(err as Error).message})`) }
    return { trustDomain, bundleFile: text.slice(i + 1) }
  })
  const seen = new Set<string>()
  for (const f of list) {
    if (seen.has(f.trustDomain)) throw new ConfigError(where, `${f.trustDomain} is given twice; give each federated trust domain one bundle file`)
    seen.add(f.trustDomain)
  }
  return list
}
