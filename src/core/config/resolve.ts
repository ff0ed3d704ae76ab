/**
 * flags + env + file -> one validated, frozen Config, or every problem at once.
 * Four steps, one module each: pick each setting's raw value (sources.ts:
 * flags > env > file), parse it (fields.ts, parse.ts), apply the defaults
 * (defaults.ts, here), check the rules between settings (rules.ts).
 * Pure: the CLI reads the file and passes its parsed JSON in.
 */
import { ConfigError } from '../errors.js'
import { DEFAULT_ADMIN, DEFAULT_LISTEN, DEFAULT_NAMESPACE, DEFAULT_TIMEOUTS, DEFAULT_LOG_LEVEL } from './defaults.js'
import { FIELDS, FIELD_KEYS, flagName, type Field, type FieldKey, type Values } from './fields.js'
import { parseHostPort } from './parse.js'
import { pickSources, type ConfigSources, type RawValues } from './sources.js'
import { planeOf, portErrors, positiveTimeouts, sideErrors, unixSocketErrors, upstreamErrors, type Settled } from './rules.js'
import type { Config, PlaneConfig, UpstreamConfig } from './types.js'
import { parseIdentityForm } from '../identity/forms.js'
import { DEFAULT_UNIX_SOCKET_MODE } from './endpoint.js'
import { upstreamDcErrors, withDatacenters } from './upstream-dc.js'

export { parseHostPort, parseDuration, parseUpstream, isLoopback } from './parse.js'
export { FIELDS, MAX_WORKERS } from './fields.js'
export type { ConfigSources } from './sources.js'

/** Resolve sources into a Config, or throw an AggregateError of ConfigErrors (each names its flag or JSON path). */
export function resolveConfig (src: ConfigSources): Config {
  const errors: ConfigError[] = []
  const raw = pickSources(src, errors)
  const v = parseValues(raw, errors)
  const s = settle(v, raw)
  errors.push(...positiveTimeouts(s.timeouts))
  errors.push(...sideErrors(s, errors.length))
  errors.push(...notUpstreams('--upstream-tunnel', (v.upstreamTunnel ?? []).filter(n => n !== '*'), s.upstreams))
  errors.push(...federatedUpstreamErrors(v, s))
  if (v.proxyProtocol === 'v2' && s.to === null) errors.push(new ConfigError('--proxy-protocol', 'v2 is a header to the local app on inbound connections: give --to (the app) too, or leave --proxy-protocol off'))
  const plane = planeOf(s, errors)
  errors.push(...upstreamErrors(s), ...portErrors(s), ...unixSocketErrors(s.upstreams, v.unixSocketMode !== undefined, v.workers ?? 1), ...upstreamDcErrors(s.upstreams, v.upstreamDc, s.meshDir, s.controlPlane, v.meshGatewayMode))
  // A missing service or plane has its error in the list already.
  if (v.service === undefined || plane === null || errors.length > 0) throw new AggregateError(errors, errors.map(e => e.message).join('\n'))
  return deepFreeze(build(v.service, plane, v, s))
}

/**
 * `config` with `upstreams` in place of its own (a Consul proxy registration's,
 * read at start and again on every change), checked by the same rules as
 * --upstream; throws an AggregateError of ConfigErrors.
 */
export function withUpstreams (config: Config, upstreams: readonly UpstreamConfig[]): Config {
  const meshDir = config.plane.kind === 'consul' ? null : config.plane.meshDir
  const errors = [
    ...upstreamErrors({ upstreams, meshDir, controlPlane: config.plane.kind === 'consul' ? 'consul' : config.plane.kind === 'spiffe' ? 'spiffe' : 'mesh' }),
    ...portErrors({ listen: config.listen, admin: config.admin, upstreams, to: config.to })
  ]
  if (errors.length > 0) throw new AggregateError(errors, errors.map(e => e.message).join('\n'))
  return deepFreeze({ ...config, upstreams })
}

/** Parse every given setting; a value that does not parse, or a required one not given, is an error and is left out. */
function parseValues (raw: RawValues, errors: ConfigError[]): Values {
  const out: Partial<Record<FieldKey, unknown>> = {}
  for (const key of FIELD_KEYS) {
    const f: Field<unknown> = FIELDS[key]
    const r = raw.get(key)
    if (r === undefined) {
      if (f.required !== undefined) errors.push(new ConfigError(flagName(f), `is required: ${f.required}`))
      continue
    }
    try { out[key] = f.parse(r.value, r.where) } catch (err) {
      errors.push(err instanceof ConfigError ? err : new ConfigError(r.where, String(err)))
    }
  }
  return out as Values
}

/** `names` given to `flag` that are not upstreams of this sidecar: one error naming them and the upstreams there are. */
function notUpstreams (flag: string, names: readonly string[], upstreams: readonly UpstreamConfig[]): ConfigError[] {
  const unknown = names.filter(n => !upstreams.some(u => u.service === n))
  if (unknown.length === 0) return []
  return [new ConfigError(flag, `${unknown.join(', ')} ${unknown.length === 1 ? 'is' : 'are'} not an upstream of this sidecar (it has: ${upstreams.map(u => u.service).join(', ') || 'none'}); give the --upstream too, or drop the name`)]
}

/** An upstream in another trust domain: one of ours, whose trust domain we federate (or may, over the Workload API). */
function federatedUpstreamErrors (v: Values, s: Settled): ConfigError[] {
  const errors: ConfigError[] = []
  const federated = new Set((v.federate ?? []).map(f => f.trustDomain))
  const named = v.upstreamTrustDomain ?? []
  errors.push(...notUpstreams('--upstream-trust-domain', named.map(x => x.service), s.upstreams))
  for (const { service, trustDomain } of named) {
    if (!s.upstreams.some(u => u.service === service)) continue
    if (!federated.has(trustDomain) && s.controlPlane !== 'spiffe') errors.push(new ConfigError('--upstream-trust-domain', `${service}=${trustDomain}: ${trustDomain} is not federated, so its servers could not be verified; add --federate ${trustDomain}=<its bundle>`))
  }
  return errors
}

/** The settings the rules look at, with their defaults. */
function settle (v: Values, raw: RawValues): Settled {
  const to = v.to ?? null
  // Consul's default public listener, when only the app is given.
  const listen = v.listen ?? (to !== null && !raw.has('listen') ? parseHostPort(DEFAULT_LISTEN, '--listen') : null)
  const d = DEFAULT_TIMEOUTS
  return {
    given: new Set(raw.keys()),
    listen,
    to,
    upstreams: withDatacenters(withTrustDomains(v.upstream ?? [], v.upstreamTrustDomain ?? []), v.upstreamDc),
    admin: v.admin,
    unsafeTarget: v.unsafeTarget ?? false,
    timeouts: {
      handshakeTimeoutMs: v.handshakeTimeout ?? d.handshakeTimeoutMs,
      connectTimeoutMs: v.connectTimeout ?? d.connectTimeoutMs,
      idleTimeoutMs: v.idleTimeout ?? d.idleTimeoutMs,
      closeTimeoutMs: v.closeTimeout ?? d.closeTimeoutMs,
      maxConnLifetimeMs: v.maxConnLifetime ?? d.maxConnLifetimeMs,
      drainTimeoutMs: v.drainTimeout ?? d.drainTimeoutMs
    },
    meshDir: v.meshDir ?? null,
    cert: v.cert ?? null,
    key: v.key ?? null,
    ca: v.ca ?? null,
    intentions: v.intentions ?? null,
    controlPlane: v.controlPlane ?? 'mesh',
    spiffeEndpoint: v.spiffeEndpointSocket ?? null,
    consul: { address: v.consulAddr ?? '127.0.0.1:8500', token: v.consulToken ?? null, tokenFile: v.consulTokenFile ?? null, caCertFile: v.consulCacert ?? null },
    agent: { register: v.consulRegister ?? false, registerId: v.consulRegisterId ?? null, authorizeViaAgent: v.authorizeViaAgent ?? false, enforceOnChange: v.enforceOnChange ?? false },
    service: v.service
  }
}

/** Each upstream named by --upstream-trust-domain, with that trust domain in its target. */
function withTrustDomains (upstreams: readonly UpstreamConfig[], tds: ReadonlyArray<{ service: string, trustDomain: string }>): UpstreamConfig[] {
  return upstreams.map(u => {
    const td = tds.find(x => x.service === u.service)?.trustDomain
    return td === undefined ? u : { ...u, target: { ...u.target, trustDomain: td } }
  })
}

/** The Config, in the key order --dry-run and GET /config show. */
function build (service: string, plane: PlaneConfig, v: Values, s: Settled): Config {
  return {
    service,
    namespace: v.namespace ?? DEFAULT_NAMESPACE,
    identityForm: v.identityForm ?? parseIdentityForm('consul'),
    federate: v.federate ?? [],
    listen: s.listen,
    to: s.to,
    upstreams: s.upstreams,
    tunnelUpstreams: v.upstreamTunnel ?? [],
    proxyProtocol: v.proxyProtocol ?? 'off',
    unixSocketMode: v.unixSocketMode ?? DEFAULT_UNIX_SOCKET_MODE,
    plane,
    intentionsFile: v.intentions ?? null,
    defaultPolicy: v.defaultPolicy ?? null,
    datacenter: v.datacenter ?? null,
    meshGatewayMode: v.meshGatewayMode ?? 'local',
    timeouts: s.timeouts,
    logLevel: v.logLevel ?? DEFAULT_LOG_LEVEL,
    unsafeTarget: s.unsafeTarget,
    enforceOnChange: v.enforceOnChange ?? false,
    sourceRateLimit: v.sourceRateLimit ?? null,
    admin: s.admin === undefined ? parseHostPort(DEFAULT_ADMIN, '--admin') : s.admin,
    leafTtlMs: v.leafTtl ?? 72 * 3_600_000,
    maxConnections: v.maxConnections ?? 0,
    workers: v.workers ?? 1
  }
}

function deepFreeze<T> (o: T): T {
  if (typeof o === 'object' && o !== null) {
    for (const x of Object.values(o)) deepFreeze(x)
    Object.freeze(o)
  }
  return o
}
