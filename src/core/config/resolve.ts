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
import { planeOf, portErrors, positiveTimeouts, sideErrors, upstreamErrors, type Settled } from './rules.js'
import type { Config, PlaneConfig } from './types.js'
import { parseIdentityForm } from '../identity/forms.js'
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
  const plane = planeOf(s, errors)
  errors.push(...upstreamErrors(s), ...portErrors(s), ...upstreamDcErrors(s.upstreams, v.upstreamDc, s.meshDir, s.controlPlane))
  // A missing service or plane has its error in the list already.
  if (v.service === undefined || plane === null || errors.length > 0) throw new AggregateError(errors, errors.map(e => e.message).join('\n'))
  return deepFreeze(build(v.service, plane, v, s))
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

/** The settings the rules look at, with their defaults. */
function settle (v: Values, raw: RawValues): Settled {
  const to = v.to ?? null
  // Consul's default public listener, when only the app is given.
  const listen = v.listen ?? (to !== null && !raw.has('listen') ? parseHostPort(DEFAULT_LISTEN, '--listen') : null)
  const d = DEFAULT_TIMEOUTS
  return {
    listen,
    to,
    upstreams: withDatacenters(v.upstream ?? [], v.upstreamDc),
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
    consul: { address: v.consulAddr ?? '127.0.0.1:8500', token: v.consulToken ?? null, tokenFile: v.consulTokenFile ?? null, caCertFile: v.consulCacert ?? null }
  }
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
