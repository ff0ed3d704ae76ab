/**
 * The rules between settings, each value already parsed on its own: what
 * must come together, what excludes what, which control plane the
 * certificate settings make. Each rule adds ConfigErrors that name the flag
 * to change; none throws, so the user sees every problem at once. Pure.
 */
import { ConfigError } from '../errors.js'
import { FIELDS, flagName } from './fields.js'
import { isLoopback } from './parse.js'
import type { Endpoint, HostPort, PlaneConfig, Timeouts, UpstreamConfig, WorkloadEndpoint } from './types.js'
import { formatEndpoint, isUnix } from './endpoint.js'

/** The settings the rules look at, defaults applied. */
export interface Settled {
  /** Settings given at all (a flag, the environment, the file), whether or not they parsed: a bad one has its own error, and is not also "required". */
  readonly given: ReadonlySet<string>
  readonly listen: HostPort | null
  readonly to: Endpoint | null
  readonly upstreams: readonly UpstreamConfig[]
  /**
   * As given: null for `off`, undefined when not given. The default admin
   * address is left out of the port check: it is applied after the rules.
   */
  readonly admin: HostPort | null | undefined
  readonly unsafeTarget: boolean
  readonly timeouts: Timeouts
  readonly meshDir: string | null
  readonly cert: string | null
  readonly key: string | null
  readonly ca: string | null
  readonly intentions: string | null
  readonly controlPlane: 'mesh' | 'consul' | 'spiffe'
  readonly spiffeEndpoint: WorkloadEndpoint | null
  readonly consul: { readonly address: string, readonly token: string | null, readonly tokenFile: string | null, readonly caCertFile: string | null }
  /** --consul-register, --consul-register-id, --authorize-via-agent (consul only). */
  readonly agent: { readonly register: boolean, readonly registerId: string | null, readonly authorizeViaAgent: boolean, readonly enforceOnChange: boolean }
  readonly service: string | undefined
}

/** The Workload API streams the SVIDs and bundles; intentions and the catalog come from files, as with --cert/--key/--ca. */
function spiffePlane (s: Settled, errors: ConfigError[], someFile: boolean): PlaneConfig | null {
  if (someFile) errors.push(new ConfigError('--cert', '--cert, --key and --ca are not used with --control-plane spiffe (the Workload API delivers the SVID and bundles); remove them, or use --control-plane mesh'))
  if (s.listen !== null && s.meshDir === null && s.intentions === null) {
    errors.push(new ConfigError('--intentions', 'is required with --listen and --control-plane spiffe when there is no --mesh-dir: the intentions file the inbound checks peers against (e.g. --intentions ./intentions.json)'))
  }
  if (s.spiffeEndpoint === null) {
    // Given but malformed: its parse error says so already.
    if (s.given.has('spiffeEndpointSocket')) return null
    errors.push(new ConfigError('--spiffe-endpoint-socket', 'is required with --control-plane spiffe: where the Workload API listens (e.g. --spiffe-endpoint-socket unix:///run/spire/agent.sock, or SPIFFE_ENDPOINT_SOCKET)'))
    return null
  }
  return { kind: 'spiffe', endpoint: s.spiffeEndpoint, meshDir: s.meshDir }
}

/** A zero handshake, connect or close timeout would fail every connection; idle and lifetime take 0 as off. */
export function positiveTimeouts (t: Timeouts): ConfigError[] {
  const rows = [['handshakeTimeoutMs', FIELDS.handshakeTimeout], ['connectTimeoutMs', FIELDS.connectTimeout], ['closeTimeoutMs', FIELDS.closeTimeout]] as const
  return rows.filter(([k]) => t[k] === 0).map(([, f]) => new ConfigError(flagName(f), 'must be greater than 0'))
}

/**
 * The inbound side needs both ends, and its app must be local; and the sidecar
 * must have something to do. `earlier` is how many errors came before: a
 * sidecar with other problems is not also told it has nothing to do.
 */
export function sideErrors (s: Settled, earlier: number): ConfigError[] {
  const errors: ConfigError[] = []
  const { listen, to } = s
  if (listen !== null && to === null && !s.given.has('to')) errors.push(new ConfigError('--to', 'is required with --listen: the local app address inbound connections go to (e.g. --to 127.0.0.1:8080)'))
  // A UNIX socket is local by construction.
  if (to !== null && !isUnix(to) && !isLoopback(to.host) && !s.unsafeTarget) errors.push(new ConfigError('--to', `${to.host} is not a loopback address; the app target must be local (127.0.0.0/8, ::1, localhost) unless you pass --unsafe-target`))
  if (listen === null && s.upstreams.length === 0 && earlier + errors.length === 0) errors.push(new ConfigError('--listen', 'nothing to do: give --listen/--to for inbound and/or --upstream for outbound'))
  return errors
}

/**
 * The control plane the settings describe, or null with the reason in
 * `errors`: Consul when asked for; else the three PEM files (all or none);
 * else the mesh dir. A mesh dir given with the files still serves intentions
 * and the catalog.
 */
export function planeOf (s: Settled, errors: ConfigError[]): PlaneConfig | null {
  const { cert, key, ca, meshDir } = s
  const files = cert !== null && key !== null && ca !== null ? { kind: 'files', cert, key, ca, meshDir } as const : null
  const someFile = cert !== null || key !== null || ca !== null
  if (files === null && someFile) {
    const missing = ([['--cert', cert], ['--key', key], ['--ca', ca]] as const).filter(([, v]) => v === null).map(([f]) => f)
    errors.push(new ConfigError(missing[0] ?? '--cert', `--cert, --key and --ca go together; missing ${missing.join(', ')}`))
  }
  if (s.controlPlane === 'consul') {
    // Consul issues the leaf and serves the intentions: files given too would be silently unused.
    const unused = ([['--cert', cert], ['--key', key], ['--ca', ca], ['--intentions', s.intentions]] as const).filter(([, v]) => v !== null).map(([f]) => f)
    if (unused.length > 0) errors.push(new ConfigError(unused[0]!, `${unused.join(', ')} ${unused.length === 1 ? 'is' : 'are'} not used with --control-plane consul (the agent issues the certificates and serves the intentions); remove ${unused.length === 1 ? 'it' : 'them'}, or use --control-plane mesh`))
    return { kind: 'consul', ...s.consul, ...agentFeatures(s, errors) }
  }
  const given = ([['--consul-register', s.agent.register], ['--consul-register-id', s.agent.registerId !== null], ['--authorize-via-agent', s.agent.authorizeViaAgent]] as const).filter(([, v]) => v).map(([f]) => f)
  if (given.length > 0) errors.push(new ConfigError(given[0]!, `${given.join(', ')} need${given.length === 1 ? 's' : ''} the Consul agent: add --control-plane consul, or remove ${given.length === 1 ? 'it' : 'them'}`))
  if (s.controlPlane === 'spiffe') return spiffePlane(s, errors, someFile)
  if (files !== null && meshDir === null && s.listen !== null && s.intentions === null) {
    errors.push(new ConfigError('--intentions', 'is required with --listen and --cert/--key/--ca when there is no --mesh-dir: the intentions file the inbound checks peers against (e.g. --intentions ./intentions.json)'))
  }
  if (files !== null) return files
  if (meshDir !== null) return { kind: 'mesh-dir', meshDir }
  if (!someFile) errors.push(new ConfigError('--mesh-dir', 'no certificates: give --mesh-dir (or MESH_DIR) for the embedded control plane, or --cert, --key and --ca'))
  return null
}

/** Registration and agent authorization: both are about the public listener. */
function agentFeatures (s: Settled, errors: ConfigError[]): { register: { id: string } | null, authorizeViaAgent: boolean } {
  const { register, registerId, authorizeViaAgent } = s.agent
  if (registerId !== null && !register) errors.push(new ConfigError('--consul-register-id', 'is the suffix of the registration --consul-register makes; add --consul-register, or remove it'))
  if (register && s.listen === null) errors.push(new ConfigError('--consul-register', 'registers the public listener, and there is none: add --listen and --to, or remove --consul-register'))
  if (authorizeViaAgent && s.listen === null) errors.push(new ConfigError('--authorize-via-agent', 'decides inbound connections, and there is no public listener: add --listen and --to, or remove it'))
  if (authorizeViaAgent && s.agent.enforceOnChange) errors.push(new ConfigError('--enforce-on-change', 're-checks live connections against the local intention table, and with --authorize-via-agent the agent decides instead: give one of the two'))
  const base = `${s.service ?? 'service'}-proxy`
  return { register: register ? { id: registerId === null ? base : `${base}-${registerId}` } : null, authorizeViaAgent }
}

/**
 * One listener per upstream service (the sidecar keys them by service: reload
 * diffs, SIGTERM closes them), and an upstream without listed instances needs
 * a catalog to resolve through.
 */
export function upstreamErrors (s: Pick<Settled, 'upstreams' | 'meshDir' | 'controlPlane'>): ConfigError[] {
  const errors: ConfigError[] = []
  const seen = new Map<string, string>()
  for (const u of s.upstreams) {
    const given = `${u.service}:${formatEndpoint(u.bind)}`
    const first = seen.get(u.service)
    if (first !== undefined) errors.push(new ConfigError('--upstream', `${u.service} is given twice (${first} and ${given}); give each upstream service once, with one local port`))
    else seen.set(u.service, given)
  }
  for (const u of s.upstreams) {
    if (u.instances === null && s.meshDir === null && s.controlPlane === 'mesh') errors.push(new ConfigError('--upstream', `upstream ${u.service} has no instances: list them (${u.service}:${isUnix(u.bind) ? formatEndpoint(u.bind) : u.bind.port}=host:port,...) or give --mesh-dir so it resolves through the catalog`))
  }
  return errors
}

/**
 * Every listener needs its own port (port 0, "any free port", never collides)
 * and every UNIX socket its own path; and no upstream may bind the app's
 * socket (it would be taken for a live socket of another process, or replace it).
 */
export function portErrors (s: Pick<Settled, 'listen' | 'admin' | 'upstreams' | 'to'>): ConfigError[] {
  const errors: ConfigError[] = []
  const ports = new Map<string, string>()
  const app: Array<readonly [string, Endpoint | null]> = s.to !== null && isUnix(s.to) ? [['--to', s.to]] : []
  const listeners: Array<readonly [string, Endpoint | null]> = [...app, ['--listen', s.listen], ['--admin', s.admin ?? null], ...s.upstreams.map(u => [`--upstream ${u.service}`, u.bind] as const)]
  for (const [what, hp] of listeners) {
    if (hp === null || (!isUnix(hp) && hp.port === 0)) continue
    const k = formatEndpoint(hp)
    const prev = ports.get(k)
    if (prev !== undefined) errors.push(new ConfigError(what, `${k} is also used by ${prev}; every listener needs its own ${isUnix(hp) ? 'socket path' : 'port'}`))
    ports.set(k, what)
  }
  return errors
}

/**
 * `--unix-socket-mode` is for the sockets upstream listeners create; and
 * `--workers` shares listeners through node:cluster, whose primary binds a
 * UNIX path without our stale-socket check: not together yet.
 */
export function unixSocketErrors (upstreams: readonly UpstreamConfig[], modeGiven: boolean, workers: number): ConfigError[] {
  const unix = upstreams.filter(u => isUnix(u.bind))
  const errors: ConfigError[] = []
  if (modeGiven && unix.length === 0) errors.push(new ConfigError('--unix-socket-mode', 'is the mode of the UNIX sockets upstream listeners create, and no --upstream binds one (e.g. --upstream db:unix:/run/db.sock); remove it, or bind an upstream to a socket'))
  if (workers > 1 && unix.length > 0) errors.push(new ConfigError('--workers', `UNIX-socket upstreams (${unix.map(u => u.service).join(', ')}) are not supported with --workers ${workers} yet; use --workers 1, or bind those upstreams to a loopback port`))
  return errors
}
