/**
 * The flags of `mesh-proxy gateway mesh|terminating` into a frozen config,
 * or an AggregateError of ConfigErrors, each naming its flag and the fix
 * (as core/config/resolve.ts does for `run`). What both gateways share is
 * parsed once here; each gateway's own flags in its function.
 */
import type { Config, HostPort, Timeouts } from '../core/config/types.js'
import * as p from '../core/config/parse.js'
import { DEFAULT_ADMIN, DEFAULT_TIMEOUTS } from '../core/config/defaults.js'
import { ConfigError, toError } from '../core/errors.js'
import { parseTrustDomain } from '../core/identity/spiffe-id.js'
import { meshLayout, readMeshSettings } from '../meshdir/layout.js'
import { readRemoteGateways } from '../meshdir/gateways.js'
import { resolveConfig } from '../core/config/resolve.js'
import { publicConfig } from '../core/config/public.js'
import type { IdentityForm } from '../core/identity/forms.js'
import { parseExternal } from './external.js'
import type { ServiceEntry } from './represented.js'

/** Consul's mesh gateways listen on 8443 (its `-address` default for `consul connect envoy -gateway=mesh`). */
export const DEFAULT_MESH_GATEWAY_LISTEN = '0.0.0.0:8443'

/** What every gateway takes. */
export interface GatewayCommon {
  readonly timeouts: Timeouts
  /** 0 = unlimited. */
  readonly maxConnections: number
  readonly admin: HostPort | null
  readonly logLevel: Config['logLevel']
}

/** `gateway mesh`. */
export interface MeshGatewayConfig extends GatewayCommon {
  readonly listen: HostPort
  readonly datacenter: string
  readonly trustDomain: string
  /** Our datacenter's catalog (the mesh dir's). */
  readonly catalogDir: string
  readonly remoteGateways: ReadonlyMap<string, readonly HostPort[]>
}

/** Collects ConfigErrors; `get` returns undefined for a value that failed. */
export class Problems {
  readonly errors: ConfigError[] = []
  get<T> (raw: unknown, flag: string, parse: (v: unknown, where: string) => T): T | undefined {
    if (raw === undefined) return undefined
    try { return parse(raw, flag) } catch (err) {
      this.errors.push(err instanceof ConfigError ? err : new ConfigError(flag, toError(err).message))
      return undefined
    }
  }

  add (flag: string, message: string): void { this.errors.push(new ConfigError(flag, message)) }
  /** Throw them all at once, if any. */
  check (): void {
    if (this.errors.length > 0) throw new AggregateError(this.errors, this.errors.map(e => e.message).join('\n'))
  }
}

const TIMEOUT_FLAGS = [
  ['handshakeTimeout', '--handshake-timeout', 'handshakeTimeoutMs'],
  ['connectTimeout', '--connect-timeout', 'connectTimeoutMs'],
  ['idleTimeout', '--idle-timeout', 'idleTimeoutMs'],
  ['closeTimeout', '--close-timeout', 'closeTimeoutMs'],
  ['maxConnLifetime', '--max-conn-lifetime', 'maxConnLifetimeMs'],
  ['drainTimeout', '--drain-timeout', 'drainTimeoutMs']
] as const

/** The flags both gateways share. */
export function commonOf (flags: Record<string, unknown>, env: NodeJS.ProcessEnv, problems: Problems): GatewayCommon {
  const timeouts: Record<string, number> = { ...DEFAULT_TIMEOUTS }
  for (const [key, flag, field] of TIMEOUT_FLAGS) {
    const ms = problems.get(flags[key], flag, p.duration)
    if (ms !== undefined) timeouts[field] = ms
  }
  if (timeouts.handshakeTimeoutMs === 0) problems.add('--handshake-timeout', 'must be more than 0 (a client that never sends its ClientHello would hold a socket forever)')
  return {
    timeouts: timeouts as unknown as Timeouts,
    maxConnections: problems.get(flags.maxConnections, '--max-connections', p.wholeNumber(0, 1_000_000, 'a whole number from 0 (unlimited) to 1000000')) ?? 0,
    admin: problems.get(flags.admin ?? DEFAULT_ADMIN, '--admin', p.hostPortOrOff) ?? null,
    logLevel: problems.get(flags.logLevel ?? env.MESH_PROXY_LOG_LEVEL ?? 'info', '--log-level', p.logLevel) ?? 'info'
  }
}

/** `--remote-gateway dc2=host:port[,host:port]` (repeatable) into a map by datacenter. */
export function remoteGateways (raw: unknown, ours: string | undefined, problems: Problems): Map<string, HostPort[]> {
  const out = new Map<string, HostPort[]>()
  const list = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw]
  for (const spec of list) {
    const m = /^([a-zA-Z0-9][a-zA-Z0-9_-]*)=(.+)$/.exec(String(spec))
    if (m === null) { problems.add('--remote-gateway', `${JSON.stringify(spec)} is not <datacenter>=<host:port>[,<host:port>...] (e.g. dc2=10.1.0.5:8443)`); continue }
    const dc = m[1]!
    if (dc === ours) { problems.add('--remote-gateway', `${dc} is our own datacenter; its services are found in the catalog, not through a gateway`); continue }
    if (out.has(dc)) { problems.add('--remote-gateway', `${dc} is given twice; list its gateways once, comma-separated`); continue }
    const addrs = m[2]!.split(',').map(a => problems.get(a, '--remote-gateway', p.hostPort))
    if (addrs.every(a => a !== undefined)) out.set(dc, addrs as HostPort[])
  }
  return out
}

/** `gateway mesh` flags into its config (the mesh dir read for its trust domain, datacenter and catalog). */
export async function resolveMeshGateway (flags: Record<string, unknown>, env: NodeJS.ProcessEnv): Promise<MeshGatewayConfig> {
  const problems = new Problems()
  const common = commonOf(flags, env, problems)
  const listen = problems.get(flags.listen ?? DEFAULT_MESH_GATEWAY_LISTEN, '--listen', p.hostPort)
  const dir = problems.get(flags.meshDir ?? env.MESH_DIR, '--mesh-dir', p.str)
  if (dir === undefined) problems.add('--mesh-dir', 'a mesh gateway needs the mesh dir of its datacenter (--mesh-dir <dir> or MESH_DIR): its catalog lists the instances it routes to')
  const layout = meshLayout(dir ?? '.')
  const settings = dir === undefined ? undefined : await readMeshSettings(layout).catch((err: unknown) => { problems.errors.push(err instanceof ConfigError ? err : new ConfigError('--mesh-dir', toError(err).message)); return undefined })
  const datacenter = problems.get(flags.datacenter, '--datacenter', p.serviceName) ?? settings?.datacenter
  const trustDomain = problems.get(flags.trustDomain, '--trust-domain', (v, where) => {
    try { return parseTrustDomain(p.str(v, where)) } catch (err) { throw new ConfigError(where, toError(err).message) }
  }) ?? settings?.trustDomain
  const remote = remoteGateways(flags.remoteGateway, datacenter, problems)
  // The mesh dir's gateways.json, for the datacenters the flags do not name.
  const fromDir = dir === undefined ? new Map<string, HostPort[]>() : await readRemoteGateways(dir).catch((err: unknown) => { problems.errors.push(err instanceof ConfigError ? err : new ConfigError('--mesh-dir', toError(err).message)); return new Map<string, HostPort[]>() })
  for (const [dc, gws] of fromDir) if (!remote.has(dc) && dc !== datacenter) remote.set(dc, gws)
  problems.check()
  return Object.freeze({ ...common, listen: listen!, datacenter: datacenter!, trustDomain: trustDomain!, catalogDir: layout.catalog, remoteGateways: remote })
}

/** mesh-proxy's choice, beside the mesh gateway's 8443 so that both can run on one host. */
export const DEFAULT_TERMINATING_GATEWAY_LISTEN = '0.0.0.0:8444'

/** `gateway terminating`. */
export interface TerminatingGatewayConfig extends GatewayCommon {
  readonly listen: HostPort
  readonly identityForm: IdentityForm
  readonly services: readonly ServiceEntry[]
}

/** The flags each represented service's plane is resolved from, as `run` would take them for a sidecar of it. */
const PLANE_FLAGS = ['meshDir', 'ca', 'intentions', 'defaultPolicy', 'controlPlane', 'consulAddr', 'consulToken', 'consulTokenFile', 'consulCacert', 'spiffeEndpointSocket', 'identityForm', 'namespace', 'datacenter', 'federate', 'leafTtl'] as const

/** `gateway terminating` flags into its config: one sidecar-shaped Config per `--service`, for its plane. */
export function resolveTerminatingGateway (flags: Record<string, unknown>, env: NodeJS.ProcessEnv): TerminatingGatewayConfig {
  const problems = new Problems()
  const common = commonOf(flags, env, problems)
  const listenRaw = String(flags.listen ?? DEFAULT_TERMINATING_GATEWAY_LISTEN)
  const listen = problems.get(listenRaw, '--listen', p.hostPort)
  const raw = flags.service === undefined ? [] : Array.isArray(flags.service) ? flags.service as unknown[] : [flags.service]
  if (raw.length === 0) problems.add('--service', 'a terminating gateway needs at least one external service: --service <name>=<host:port>[,tls,ca=<file>,sni=<name>] (repeatable)')
  const specs = raw.map(s => problems.get(s, '--service', (v, where) => parseExternal(p.str(v, where), where))).filter(s => s !== undefined)
  const seen = new Set<string>()
  const services: ServiceEntry[] = []
  for (const spec of specs) {
    if (seen.has(spec.service)) { problems.add('--service', `${spec.service} is given twice; one target per service`); continue }
    seen.add(spec.service)
    const planeFlags: Record<string, unknown> = { service: spec.service, listen: listenRaw, admin: 'off' }
    for (const k of PLANE_FLAGS) if (flags[k] !== undefined) planeFlags[k] = flags[k]
    if (spec.certFile !== null) { planeFlags.cert = spec.certFile; planeFlags.key = spec.keyFile }
    // `to` is the external target, not a local app (never dialled as one): the
    // --service list is this gateway's explicit allow-list, hence unsafeTarget.
    planeFlags.to = `${spec.target.host.includes(':') ? `[${spec.target.host}]` : spec.target.host}:${spec.target.port}`
    planeFlags.unsafeTarget = true
    try {
      services.push({ spec, config: resolveConfig({ flags: planeFlags, env, file: null }) })
    } catch (err) {
      for (const e of err instanceof AggregateError ? err.errors : [err]) problems.add('--service', `${spec.service}: ${toError(e).message}`)
    }
  }
  const identityForm = services[0]?.config.identityForm
  problems.check()
  return Object.freeze({ ...common, listen: listen!, identityForm: identityForm!, services })
}

/** A gateway's config as it may be shown (/config, --dry-run): maps as objects, each service's plane through publicConfig (no token). */
export function publicGateway (config: MeshGatewayConfig | TerminatingGatewayConfig): unknown {
  const shown = 'services' in config
    ? { ...config, identityForm: config.identityForm.name, services: config.services.map(s => ({ ...s.spec, plane: publicConfig(s.config).plane })) }
    : config
  return JSON.parse(JSON.stringify(shown, (_k, v: unknown) => v instanceof Map ? Object.fromEntries(v) : v))
}
