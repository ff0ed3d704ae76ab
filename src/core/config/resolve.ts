/**
 * flags + env + file -> one validated, frozen Config, or every problem at once.
 * Precedence, highest first: command-line flags, environment, config file, defaults.
 * Pure: the CLI reads the file and passes its parsed JSON in.
 */
import { isIP } from 'node:net'
import { ConfigError } from '../errors.js'
import { DEFAULT_ADMIN, DEFAULT_LISTEN, DEFAULT_NAMESPACE, DEFAULT_TIMEOUTS, DEFAULT_UPSTREAM_BIND_HOST, DEFAULT_LOG_LEVEL } from './defaults.js'
import type { Config, HostPort, Timeouts, UpstreamConfig } from './types.js'
import { parseRateLimit } from './rate-limit.js'

/** Upper bound of --workers: more processes than this on one sidecar is a mistake, not a setting. */
export const MAX_WORKERS = 64

/** What resolve() reads. Flag keys are commander's camelCase option names. */
export interface ConfigSources {
  readonly flags: Readonly<Record<string, unknown>>
  readonly env: Readonly<Record<string, string | undefined>>
  /** Parsed JSON of --config, or null. */
  readonly file: unknown
  readonly fileName?: string
}

type Kind = 'service' | 'string' | 'hostport' | 'duration' | 'bool' | 'upstreams' | 'policy' | 'level'

interface Field {
  /** Key in flags (commander camelCase) and in the JSON file. */
  readonly key: string
  readonly flag: string
  readonly kind: Kind
  readonly env?: string
}

/** Every setting: its flag, JSON key, environment variable and kind. The README's flags table mirrors this. */
export const FIELDS: readonly Field[] = [
  { key: 'service', flag: '--service', kind: 'service' },
  { key: 'listen', flag: '--listen', kind: 'hostport' },
  { key: 'to', flag: '--to', kind: 'hostport' },
  { key: 'upstream', flag: '--upstream', kind: 'upstreams' },
  { key: 'meshDir', flag: '--mesh-dir', kind: 'string', env: 'MESH_DIR' },
  { key: 'cert', flag: '--cert', kind: 'string' },
  { key: 'key', flag: '--key', kind: 'string' },
  { key: 'ca', flag: '--ca', kind: 'string' },
  { key: 'intentions', flag: '--intentions', kind: 'string' },
  { key: 'defaultPolicy', flag: '--default-policy', kind: 'policy' },
  { key: 'datacenter', flag: '--datacenter', kind: 'service' },
  { key: 'namespace', flag: '--namespace', kind: 'service' },
  { key: 'logLevel', flag: '--log-level', kind: 'level', env: 'MESH_PROXY_LOG_LEVEL' },
  { key: 'unsafeTarget', flag: '--unsafe-target', kind: 'bool' },
  { key: 'enforceOnChange', flag: '--enforce-on-change', kind: 'bool' },
  { key: 'admin', flag: '--admin', kind: 'hostport', env: 'MESH_PROXY_ADMIN' },
  { key: 'maxConnections', flag: '--max-connections', kind: 'string' },
  { key: 'leafTtl', flag: '--leaf-ttl', kind: 'duration' },
  { key: 'sourceRateLimit', flag: '--source-rate-limit', kind: 'string' },
  { key: 'workers', flag: '--workers', kind: 'string', env: 'MESH_PROXY_WORKERS' },
  { key: 'controlPlane', flag: '--control-plane', kind: 'string' },
  { key: 'consulAddr', flag: '--consul-addr', kind: 'string', env: 'CONSUL_HTTP_ADDR' },
  { key: 'consulToken', flag: '--consul-token', kind: 'string', env: 'CONSUL_HTTP_TOKEN' },
  { key: 'consulTokenFile', flag: '--consul-token-file', kind: 'string', env: 'CONSUL_HTTP_TOKEN_FILE' },
  { key: 'consulCacert', flag: '--consul-cacert', kind: 'string', env: 'CONSUL_CACERT' },
  { key: 'handshakeTimeout', flag: '--handshake-timeout', kind: 'duration' },
  { key: 'connectTimeout', flag: '--connect-timeout', kind: 'duration' },
  { key: 'idleTimeout', flag: '--idle-timeout', kind: 'duration' },
  { key: 'closeTimeout', flag: '--close-timeout', kind: 'duration' },
  { key: 'maxConnLifetime', flag: '--max-conn-lifetime', kind: 'duration' },
  { key: 'drainTimeout', flag: '--drain-timeout', kind: 'duration' }
]

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
const SERVICE = /^[a-zA-Z0-9]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?$/

/** Parse `host:port`, `[v6]:port` or `:port`. */
export function parseHostPort (s: string, field: string): HostPort {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(s.trim())
  if (m === null) throw new ConfigError(field, `${JSON.stringify(s)} is not host:port (e.g. 127.0.0.1:21000 or [::1]:21000)`)
  const host = m[1] ?? (m[2] === '' ? '0.0.0.0' : m[2]!)
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
 * Parse an upstream: `db:9191`, `db:127.0.0.2:9191`, and with explicit
 * instances `db:9191=10.0.0.5:21000,10.0.0.6:21000`.
 */
export function parseUpstream (s: string, field: string): UpstreamConfig {
  const [left, right] = s.split('=', 2) as [string, string | undefined]
  const i = left.indexOf(':')
  if (i <= 0) throw new ConfigError(field, `${JSON.stringify(s)} is not service:port, service:host:port or service:port=host:port,... (e.g. db:9191)`)
  const service = left.slice(0, i)
  if (!SERVICE.test(service)) throw new ConfigError(field, `upstream service name ${JSON.stringify(service)} is invalid (letters, digits, '-', '_')`)
  const rest = left.slice(i + 1)
  const bind = /^\d+$/.test(rest) ? parseHostPort(`${DEFAULT_UPSTREAM_BIND_HOST}:${rest}`, field) : parseHostPort(rest, field)
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

/** Resolve sources into a Config, or throw an AggregateError of ConfigErrors (each names its flag or JSON path). */
export function resolveConfig (src: ConfigSources): Config {
  const errors: ConfigError[] = []
  const fileObj = validateFileShape(src, errors)
  const raw = new Map<string, { value: unknown, where: string }>()
  for (const f of FIELDS) {
    const flag = src.flags[f.key]
    const env = f.env === undefined ? undefined : src.env[f.env]
    if (flag !== undefined && !(Array.isArray(flag) && flag.length === 0)) raw.set(f.key, { value: flag, where: f.flag })
    else if (env !== undefined && env !== '') raw.set(f.key, { value: env, where: f.env! })
    else if (fileObj !== null && fileObj[f.key] !== undefined) raw.set(f.key, { value: fileObj[f.key], where: `${src.fileName ?? 'config file'}: ${f.key}` })
  }
  const get = <T>(key: string, parse: (v: unknown, where: string) => T): T | undefined => {
    const r = raw.get(key)
    if (r === undefined) return undefined
    try { return parse(r.value, r.where) } catch (err) {
      errors.push(err instanceof ConfigError ? err : new ConfigError(r.where, String(err)))
      return undefined
    }
  }
  const str = (v: unknown, where: string): string => {
    if (typeof v !== 'string' || v === '') throw new ConfigError(where, 'must be a non-empty string')
    return v
  }
  const service = get('service', (v, w) => {
    const s = str(v, w)
    if (!SERVICE.test(s)) throw new ConfigError(w, `${JSON.stringify(s)} is not a valid service name (letters, digits, '-' and '_', at most 63)`)
    return s
  })
  if (service === undefined && !raw.has('service')) errors.push(new ConfigError('--service', 'is required: the name of the service this sidecar stands beside (e.g. --service web)'))
  const to = get('to', (v, w) => parseHostPort(str(v, w), w))
  let listen = get('listen', (v, w) => parseHostPort(str(v, w), w)) ?? null
  if (listen === null && to !== undefined && !raw.has('listen')) listen = parseHostPort(DEFAULT_LISTEN, '--listen')
  const upstreams = get('upstream', (v, w) => {
    const list = Array.isArray(v) ? v : [v]
    return list.map(u => parseUpstream(str(u, w), w))
  }) ?? []
  const meshDir = get('meshDir', str) ?? null
  const certFile = get('cert', str) ?? null
  const keyFile = get('key', str) ?? null
  const caFile = get('ca', str) ?? null
  const intentionsFile = get('intentions', str) ?? null
  const defaultPolicy = get('defaultPolicy', (v, w) => {
    if (v !== 'allow' && v !== 'deny') throw new ConfigError(w, `must be "allow" or "deny", got ${JSON.stringify(v)}`)
    return v
  }) ?? null
  const datacenter = get('datacenter', str) ?? null
  const logLevel = get('logLevel', (v, w) => {
    if (!LEVELS.includes(v as never)) throw new ConfigError(w, `must be one of ${LEVELS.join(', ')}, got ${JSON.stringify(v)}`)
    return v as Config['logLevel']
  }) ?? DEFAULT_LOG_LEVEL
  const bool = (v: unknown, w: string): boolean => {
    if (typeof v === 'boolean') return v
    if (v === 'true' || v === 'false') return v === 'true'
    throw new ConfigError(w, 'must be true or false')
  }
  const unsafeTarget = get('unsafeTarget', bool) ?? false
  const enforceOnChange = get('enforceOnChange', bool) ?? false
  const admin = get('admin', (v, w) => v === 'off' ? null : parseHostPort(str(v, w), w))
  const maxConnections = get('maxConnections', (v, w) => {
    const n = typeof v === 'number' ? v : /^\d+$/.test(String(v)) ? Number(v) : NaN
    if (!Number.isInteger(n) || n < 0) throw new ConfigError(w, `must be a whole number (0 = unlimited), got ${JSON.stringify(v)}`)
    return n
  }) ?? 0
  const workers = get('workers', (v, w) => {
    const n = typeof v === 'number' ? v : /^\d+$/.test(String(v)) ? Number(v) : NaN
    if (!Number.isInteger(n) || n < 1 || n > MAX_WORKERS) throw new ConfigError(w, `must be a whole number from 1 to ${MAX_WORKERS} (processes sharing the listeners; 1 = no cluster), got ${JSON.stringify(v)}`)
    return n
  }) ?? 1
  const t = (key: string, dflt: number): number => get(key, parseDuration) ?? dflt
  const timeouts: Timeouts = {
    handshakeTimeoutMs: t('handshakeTimeout', DEFAULT_TIMEOUTS.handshakeTimeoutMs),
    connectTimeoutMs: t('connectTimeout', DEFAULT_TIMEOUTS.connectTimeoutMs),
    idleTimeoutMs: t('idleTimeout', DEFAULT_TIMEOUTS.idleTimeoutMs),
    closeTimeoutMs: t('closeTimeout', DEFAULT_TIMEOUTS.closeTimeoutMs),
    maxConnLifetimeMs: t('maxConnLifetime', DEFAULT_TIMEOUTS.maxConnLifetimeMs),
    drainTimeoutMs: t('drainTimeout', DEFAULT_TIMEOUTS.drainTimeoutMs)
  }
  for (const k of ['handshakeTimeoutMs', 'connectTimeoutMs', 'closeTimeoutMs'] as const) {
    if (timeouts[k] === 0) errors.push(new ConfigError(FIELDS.find(f => k.startsWith(f.key))!.flag, 'must be greater than 0'))
  }

  const controlPlane = get('controlPlane', (v, w) => {
    if (v !== 'mesh' && v !== 'consul') throw new ConfigError(w, `must be "mesh" (mesh dir or --cert/--key/--ca) or "consul", got ${JSON.stringify(v)}`)
    return v
  }) ?? 'mesh'
  const consulAddr = get('consulAddr', str) ?? '127.0.0.1:8500'
  const consulTokenFile = get('consulTokenFile', str) ?? null
  const consulToken = get('consulToken', str) ?? null
  const consulCacert = get('consulCacert', str) ?? null

  const sourceRateLimit = get('sourceRateLimit', (v, w) => {
    try { return parseRateLimit(str(String(v), w)) } catch (err) { throw new ConfigError(w, (err as Error).message) }
  }) ?? null
  const namespace = get('namespace', (v, w) => {
    const ns = str(v, w)
    if (!SERVICE.test(ns)) throw new ConfigError(w, `${JSON.stringify(ns)} is not a valid namespace name`)
    return ns
  }) ?? DEFAULT_NAMESPACE

  // Cross-field rules.
  if (listen !== null && to === undefined) errors.push(new ConfigError('--to', `is required with --listen: the local app address inbound connections go to (e.g. --to 127.0.0.1:8080)`))
  if (to !== undefined && !isLoopback(to.host) && !unsafeTarget) errors.push(new ConfigError('--to', `${to.host} is not a loopback address; the app target must be local (127.0.0.0/8, ::1, localhost) unless you pass --unsafe-target`))
  if (listen === null && upstreams.length === 0 && errors.length === 0) errors.push(new ConfigError('--listen', 'nothing to do: give --listen/--to for inbound and/or --upstream for outbound'))
  const hasFiles = certFile !== null || keyFile !== null || caFile !== null
  if (hasFiles && (certFile === null || keyFile === null || caFile === null)) {
    const missing = [['--cert', certFile], ['--key', keyFile], ['--ca', caFile]].filter(([, v]) => v === null).map(([f]) => f).join(', ')
    errors.push(new ConfigError(missing.split(',')[0]!, `--cert, --key and --ca go together; missing ${missing}`))
  }
  if (!hasFiles && meshDir === null && controlPlane === 'mesh') errors.push(new ConfigError('--mesh-dir', 'no certificates: give --mesh-dir (or MESH_DIR) for the embedded control plane, or --cert, --key and --ca'))
  // One listener per upstream service: the sidecar keys them by service (reload diffs, SIGTERM closes them).
  const seen = new Map<string, string>()
  for (const u of upstreams) {
    const given = `${u.service}:${u.bind.host}:${u.bind.port}`
    const first = seen.get(u.service)
    if (first !== undefined) errors.push(new ConfigError('--upstream', `${u.service} is given twice (${first} and ${given}); give each upstream service once, with one local port`))
    else seen.set(u.service, given)
  }
  for (const u of upstreams) {
    if (u.instances === null && meshDir === null && controlPlane === 'mesh') errors.push(new ConfigError('--upstream', `upstream ${u.service} has no instances: list them (${u.service}:${u.bind.port}=host:port,...) or give --mesh-dir so it resolves through the catalog`))
  }
  const ports = new Map<string, string>()
  for (const [what, hp] of [['--listen', listen] as const, ['--admin', admin ?? null] as const, ...upstreams.map(u => [`--upstream ${u.service}`, u.bind] as const)]) {
    if (hp === null || hp.port === 0) continue
    const k = `${hp.host}:${hp.port}`
    const prev = ports.get(k)
    if (prev !== undefined) errors.push(new ConfigError(what, `${k} is also used by ${prev}; every listener needs its own port`))
    ports.set(k, what)
  }
  if (errors.length > 0) throw new AggregateError(errors, errors.map(e => e.message).join('\n'))
  return deepFreeze({
    service: service!,
    namespace,
    listen,
    to: to ?? null,
    upstreams,
    plane: controlPlane === 'consul'
      ? { kind: 'consul', address: consulAddr, token: consulToken, tokenFile: consulTokenFile, caCertFile: consulCacert }
      : certFile !== null ? { kind: 'files', cert: certFile, key: keyFile!, ca: caFile!, meshDir } : { kind: 'mesh-dir', meshDir: meshDir! },
    intentionsFile,
    defaultPolicy,
    datacenter,
    timeouts,
    logLevel,
    unsafeTarget,
    enforceOnChange,
    sourceRateLimit,
    admin: admin === undefined ? parseHostPort(DEFAULT_ADMIN, '--admin') : admin,
    leafTtlMs: get('leafTtl', parseDuration) ?? 72 * 3_600_000,
    maxConnections,
    workers
  })
}

function validateFileShape (src: ConfigSources, errors: ConfigError[]): Record<string, unknown> | null {
  if (src.file === null || src.file === undefined) return null
  const name = src.fileName ?? 'config file'
  if (typeof src.file !== 'object' || Array.isArray(src.file)) {
    errors.push(new ConfigError(name, 'must be a JSON object whose keys are the flag names in camelCase (e.g. {"service": "web", "listen": "127.0.0.1:21001"})'))
    return null
  }
  const obj = src.file as Record<string, unknown>
  const known = new Set(FIELDS.map(f => f.key))
  for (const k of Object.keys(obj)) {
    if (!known.has(k)) errors.push(new ConfigError(`${name}: ${k}`, `unknown field; known fields: ${[...known].join(', ')}`))
  }
  return obj
}

function deepFreeze<T> (o: T): T {
  if (typeof o === 'object' && o !== null) {
    for (const v of Object.values(o)) deepFreeze(v)
    Object.freeze(o)
  }
  return o
}
