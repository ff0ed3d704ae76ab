/**
 * `mesh-proxy consul-proxy`: a drop-in for `consul connect proxy`, with its
 * flags and environment. Two modes, as Consul's:
 * - `-proxy-id <id>` or `-sidecar-for <service ID>` (CONNECT_PROXY_ID,
 *   CONNECT_SIDECAR_FOR): everything from the agent's connect-proxy
 *   registration (consul/proxy-registration.ts), the datacenter from
 *   /v1/agent/self; the registration is followed (hash-based blocking
 *   query) and a changed upstream list applies without a restart, as SIGHUP
 *   applies a config file's;
 * - `-service` with `-listen`/`-service-addr`/`-upstream`: the flags alone.
 * Either way the result is a Config of `--control-plane consul`, served by
 * serve() like `run`'s. docs/consul-proxy.md is the user's page.
 */
import type { Logger } from 'pino'
import { readFile } from 'node:fs/promises'
import { resolveConfig, withUpstreams } from '../core/config/resolve.js'
import { publicConfig } from '../core/config/public.js'
import type { Config, HostPort } from '../core/config/types.js'
import { consulAddress } from '../core/config/parse.js'
import { ConfigError, ConsulError, ERR, errorCode, toError } from '../core/errors.js'
import { BlockingWatch, ConsulClient, type ConsulOptions } from '../consul/client.js'
import { agentSelf, agentService, agentServices } from '../consul/agent.js'
import { proxySettings, sidecarProxyId, type ProxySettings } from '../consul/proxy-registration.js'
import type { Sidecar, SidecarAddresses } from '../sidecar/sidecar.js'
import { serve, type RunHooks } from './serve.js'

/** The options of `consul-proxy` (commander's camelCase of Consul's flags, and ours). */
export interface ConsulProxyFlags {
  readonly proxyId?: string
  readonly sidecarFor?: string
  readonly service?: string
  readonly serviceAddr?: string
  readonly listen?: string
  readonly upstream?: readonly string[]
  readonly register?: boolean
  readonly registerId?: string
  readonly logLevel?: string
  readonly logJson?: boolean
  readonly token?: string
  readonly tokenFile?: string
  readonly httpAddr?: string
  readonly caFile?: string
  readonly authorizeViaAgent?: boolean
  readonly admin?: string
  readonly unsafeTarget?: boolean
  readonly dryRun?: boolean
  /** Consul flags we do not support: given, they are an error that says so. */
  readonly unsupported?: ReadonlyArray<readonly [string, string]>
}

type Env = Readonly<Record<string, string | undefined>>

/** The agent as Consul's CLI finds it: -http-addr > CONSUL_HTTP_ADDR, -token > CONSUL_HTTP_TOKEN > the token file. */
async function agentOptions (f: ConsulProxyFlags, env: Env): Promise<ConsulOptions> {
  const address = consulAddress(f.httpAddr ?? env.CONSUL_HTTP_ADDR ?? '127.0.0.1:8500', f.httpAddr !== undefined ? '-http-addr' : 'CONSUL_HTTP_ADDR')
  const tokenFile = f.tokenFile ?? env.CONSUL_HTTP_TOKEN_FILE
  let token = f.token ?? (env.CONSUL_HTTP_TOKEN === '' ? undefined : env.CONSUL_HTTP_TOKEN)
  if (token === undefined && tokenFile !== undefined && tokenFile !== '') {
    try { token = (await readFile(tokenFile, 'utf8')).trim() } catch (err) {
      throw new ConfigError(f.tokenFile !== undefined ? '-token-file' : 'CONSUL_HTTP_TOKEN_FILE', `cannot read ${tokenFile}: ${toError(err).message}`)
    }
  }
  const ca = f.caFile ?? env.CONSUL_CACERT
  return { address, ...(token === undefined ? {} : { token }), ...(ca === undefined || ca === '' ? {} : { caCertFile: ca }) }
}

/** `host:port`, with brackets for IPv6, as --listen and --to parse it. */
function hp (a: HostPort): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`
}

/** Consul's levels as ours; ERROR is taken for ERR too. */
const CONSUL_LOG_LEVELS: Readonly<Record<string, string>> = { trace: 'trace', debug: 'debug', info: 'info', warn: 'warn', err: 'error', error: 'error' }

/** `-log-level`: one of Consul's levels (TRACE, DEBUG, INFO, WARN, ERR), in any case. */
function logLevel (l: string | undefined): string | undefined {
  if (l === undefined) return undefined
  const v = CONSUL_LOG_LEVELS[l.trim().toLowerCase()]
  if (v === undefined) throw new ConfigError('-log-level', `${JSON.stringify(l)} is not a log level: give one of TRACE, DEBUG, INFO, WARN, ERR (default INFO)`)
  return v
}

/** The flags every mode shares, as `run` names them. */
function common (f: ConsulProxyFlags): Record<string, unknown> {
  const out: Record<string, unknown> = { controlPlane: 'consul', consulAddr: f.httpAddr, consulToken: f.token, consulTokenFile: f.tokenFile, consulCacert: f.caFile, logLevel: logLevel(f.logLevel), admin: f.admin, authorizeViaAgent: f.authorizeViaAgent, unsafeTarget: f.unsafeTarget }
  return Object.fromEntries(Object.entries(out).filter(([, v]) => v !== undefined))
}

/** Which mode the flags ask for, or the error Consul gives (and one where Consul would silently ignore a flag). */
function modeOf (f: ConsulProxyFlags, env: Env): { proxyId: string } | { sidecarFor: string } | 'flags' {
  for (const [flag, why] of f.unsupported ?? []) throw new ConfigError(flag, `is not supported by mesh-proxy consul-proxy: ${why}`)
  logLevel(f.logLevel) // checked before any agent is asked: a typo is not hidden behind an unreachable agent
  const proxyId = f.proxyId ?? (env.CONNECT_PROXY_ID === '' ? undefined : env.CONNECT_PROXY_ID)
  const sidecarFor = f.sidecarFor ?? (env.CONNECT_SIDECAR_FOR === '' ? undefined : env.CONNECT_SIDECAR_FOR)
  const flagMode = ([['-service', f.service], ['-service-addr', f.serviceAddr], ['-listen', f.listen], ['-upstream', f.upstream], ['-register', f.register], ['-register-id', f.registerId]] as const).filter(([, v]) => v !== undefined).map(([n]) => n)
  if (proxyId !== undefined || sidecarFor !== undefined) {
    const by = proxyId !== undefined ? '-proxy-id' : '-sidecar-for'
    const them = flagMode.length === 1 ? 'it' : 'them'
    if (flagMode.length > 0) throw new ConfigError(flagMode[0]!, `${flagMode.join(', ')} ${flagMode.length === 1 ? 'configures' : 'configure'} a proxy by flags; with ${by} the agent's registration configures it (Consul would ignore ${them}): remove ${them}, or drop ${by}`)
    return proxyId !== undefined ? { proxyId } : { sidecarFor: sidecarFor! }
  }
  if (f.service === undefined) throw new ConfigError('-service', '-service or -proxy-id must be specified so that proxy can configure itself (or -sidecar-for <service ID>)')
  if (f.listen !== undefined && f.serviceAddr === undefined) throw new ConfigError('-service-addr', 'must be specified with -listen so the proxy knows the backend service address (e.g. -service-addr 127.0.0.1:8080)')
  if (f.listen === undefined && f.serviceAddr !== undefined) throw new ConfigError('-service-addr', 'is the app behind -listen, and there is no -listen: add -listen (e.g. -listen :21000), or remove -service-addr')
  if ((f.register === true || f.registerId !== undefined) && f.listen === undefined) throw new ConfigError('-register', '-register may only be specified with -service and -listen')
  if (f.listen === undefined && f.upstream === undefined) throw new ConfigError('-service', `${f.service} alone gives the proxy nothing to do: add -listen <host:port> with -service-addr <app host:port> for inbound connections, and/or -upstream <name>:<port> for outbound ones`)
  return 'flags'
}

/** `-upstream name[.service]:port` or `name:host:port`, as --upstream; a prepared query is refused. */
function upstreamSpec (u: string): string {
  const i = u.indexOf(':')
  const port = u.slice(u.lastIndexOf(':') + 1)
  if (i <= 0 || !/^\d{1,5}$/.test(port) || Number(port) > 65535) throw new ConfigError('-upstream', `${JSON.stringify(u)} is not name:port or name:host:port, the local port the upstream listens on (e.g. db:9191 or db:127.0.0.1:9191)`)
  const name = u.slice(0, i)
  const dot = name.indexOf('.')
  if (dot < 0) return u
  const type = name.slice(dot + 1)
  if (type === 'query') throw new ConfigError('-upstream', `${JSON.stringify(u)}: prepared-query upstreams (name.query) are not supported; name the service (${name.slice(0, dot)}:port)`)
  if (type !== '' && type !== 'service') throw new ConfigError('-upstream', `Upstream type must be blank, 'service', or 'query'. Got: ${JSON.stringify(type)}`)
  return name.slice(0, dot) + u.slice(i)
}

/** What `run` calls a setting, as `consul connect proxy` calls it. */
const FLAG_NAMES: Readonly<Record<string, string>> = {
  '--service': '-service', '--to': '-service-addr', '--listen': '-listen', '--upstream': '-upstream', '--log-level': '-log-level',
  '--consul-register': '-register', '--consul-register-id': '-register-id', '--consul-addr': '-http-addr', '--consul-token-file': '-token-file', '--consul-cacert': '-ca-file'
}

/** What `run` calls a setting, as the proxy registration `id` names its source. */
function registrationNames (id: string): Readonly<Record<string, string>> {
  const at = `proxy registration ${id}`
  return { ...FLAG_NAMES, '--to': `${at}: Proxy.LocalServiceAddress/LocalServicePort`, '--listen': `${at}: Address/Port`, '--upstream': `${at}: Proxy.Upstreams`, '--handshake-timeout': `${at}: Proxy.Config.handshake_timeout_ms`, '--connect-timeout': `${at}: Proxy.Config.local_connect_timeout_ms` }
}

/** `f()`, its configuration errors naming the flag or field the user wrote instead of `run`'s. */
function named<T> (names: Readonly<Record<string, string>>, f: () => T): T {
  const rename = (e: unknown): unknown => {
    if (!(e instanceof ConfigError) || names[e.field] === undefined) return e
    return new ConfigError(names[e.field]!, e.message.slice(e.field.length + 2))
  }
  try { return f() } catch (err) {
    if (!(err instanceof AggregateError)) throw rename(err)
    const errors = err.errors.map(rename)
    throw new AggregateError(errors, errors.map(e => toError(e).message).join('\n'))
  }
}

/** The proxy configured by its flags alone. */
function flagsConfig (f: ConsulProxyFlags, env: Env): Config {
  const flags = {
    ...common(f),
    service: f.service,
    ...(f.listen === undefined ? {} : { listen: f.listen.startsWith(':') ? `0.0.0.0${f.listen}` : f.listen, to: f.serviceAddr }),
    ...(f.upstream === undefined ? {} : { upstream: f.upstream.map(upstreamSpec) }),
    ...(f.register === true ? { consulRegister: true } : {}),
    ...(f.registerId === undefined ? {} : { consulRegisterId: f.registerId })
  }
  return named(FLAG_NAMES, () => resolveConfig({ flags, env, file: null }))
}

/** The registration to follow, read once: its settings and the agent's datacenter. */
async function readRegistration (client: ConsulClient, mode: { proxyId: string } | { sidecarFor: string }): Promise<{ settings: ProxySettings, datacenter: string }> {
  const id = 'proxyId' in mode ? mode.proxyId : sidecarProxyId(await agentServices(client), mode.sidecarFor)
  let body: unknown
  try { body = await agentService(client, id) } catch (err) {
    if (err instanceof ConsulError && / HTTP 404:/.test(err.message)) throw new ConfigError('-proxy-id', `no service with ID ${id} on the agent at ${client.address}: give the ID of its connect-proxy registration (GET /v1/agent/services lists them), or -sidecar-for <service ID>`)
    throw err
  }
  const settings = proxySettings(body, id)
  return { settings, datacenter: (await agentSelf(client)).datacenter }
}

/** The config a registration describes. */
function registrationConfig (f: ConsulProxyFlags, env: Env, s: ProxySettings, datacenter: string): Config {
  const flags = {
    ...common(f),
    service: s.service,
    ...(s.namespace === undefined ? {} : { namespace: s.namespace }),
    datacenter,
    listen: hp(s.listen),
    to: hp(s.to),
    handshakeTimeout: s.handshakeTimeoutMs,
    connectTimeout: s.localConnectTimeoutMs
  }
  return named(registrationNames(s.id), () => withUpstreams(resolveConfig({ flags, env, file: null }), s.upstreams))
}

/**
 * Follow the registration: a changed upstream list applies at once (new
 * listeners start, removed ones drain, as a SIGHUP reload); a changed
 * listener, app or timeout is logged, it needs a restart.
 */
function follow (opts: ConsulOptions, config: Config, first: ProxySettings, backoffMs: number | undefined): (sidecar: Sidecar, addrs: SidecarAddresses, logger: Logger) => () => void {
  return (sidecar, _addrs, logger) => {
    const client = new ConsulClient(opts)
    let current = first
    const watch = new BlockingWatch<ProxySettings>({
      client,
      path: `/v1/agent/service/${encodeURIComponent(first.id)}`,
      byHash: true,
      parse: b => proxySettings(b, first.id),
      ...(backoffMs === undefined ? {} : { minBackoffMs: backoffMs }),
      onChange: next => {
        const fixed = (s: ProxySettings): string => JSON.stringify([s.service, s.namespace, s.listen, s.to, s.handshakeTimeoutMs, s.localConnectTimeoutMs])
        if (fixed(next) !== fixed(current)) logger.warn({ id: first.id }, 'proxy registration changed its service, public listener, local app or timeouts; restart the proxy to apply them (upstream changes apply live)')
        if (JSON.stringify(next.upstreams) === JSON.stringify(current.upstreams)) { current = next; return }
        try { named(registrationNames(first.id), () => withUpstreams(config, next.upstreams)) } catch (err) {
          logger.error({ id: first.id, err: err instanceof AggregateError ? err.errors.map(e => toError(e).message).join('; ') : toError(err).message }, 'proxy registration rejected; keeping the current upstreams')
          return
        }
        current = next
        sidecar.setUpstreams(next.upstreams).catch((err: unknown) => logger.error({ id: first.id, err: toError(err).message }, 'proxy registration upstreams could not all be applied'))
      },
      onError: (err, attempt) => logger[attempt === 1 ? 'warn' : 'debug']({ id: first.id, attempt, err: err.message }, 'proxy registration not read; keeping the current upstreams')
    })
    return () => { watch.close(); client.close() }
  }
}

/** Test hooks besides serve()'s: the first retry delay of the registration watch. */
export interface ConsulProxyHooks extends RunHooks {
  readonly agentBackoffMs?: number
  /** Where --dry-run prints. */
  readonly out?: (line: string) => void
}

/** Run the proxy until a signal; resolves with the exit code. */
export async function runConsulProxy (f: ConsulProxyFlags, env: Env, hooks: ConsulProxyHooks = {}): Promise<number> {
  const mode = modeOf(f, env)
  const opts = await agentOptions(f, env)
  let config: Config
  let follower: ((sidecar: Sidecar, addrs: SidecarAddresses, logger: Logger) => () => void) | undefined
  let configured: Record<string, unknown> = { configuration: 'flags' }
  if (mode === 'flags') config = flagsConfig(f, env)
  else {
    const client = new ConsulClient(opts)
    let reg: { settings: ProxySettings, datacenter: string }
    try { reg = await readRegistration(client, mode) } catch (err) {
      if (errorCode(err) !== ERR.CONSUL_UNREACHABLE) throw err
      const given = f.httpAddr !== undefined ? '-http-addr' : env.CONSUL_HTTP_ADDR !== undefined && env.CONSUL_HTTP_ADDR !== '' ? 'CONSUL_HTTP_ADDR' : undefined
      const hint = given === undefined ? 'is the agent running? Give its HTTP address with -http-addr or CONSUL_HTTP_ADDR (default 127.0.0.1:8500)' : `is the agent running, and does ${given} name its HTTP address?`
      throw new ConsulError(`${toError(err).message}; ${hint}`, { cause: err, unreachable: true })
    } finally { client.close() }
    config = registrationConfig(f, env, reg.settings, reg.datacenter)
    follower = follow(opts, config, reg.settings, hooks.agentBackoffMs)
    configured = { configuration: 'agent registration', ...mode, proxyId: reg.settings.id }
  }
  if (f.dryRun === true) {
    (hooks.out ?? (l => process.stdout.write(l + '\n')))(JSON.stringify(publicConfig(config), null, 2))
    return 0
  }
  // As Consul's "Configuration mode: Agent API / Flags" lines, once it serves.
  const started = (sidecar: Sidecar, addrs: SidecarAddresses, logger: Logger): () => void => {
    logger.info(configured, 'consul-proxy configured')
    const stop = follower?.(sidecar, addrs, logger)
    const theirs = hooks.started?.(sidecar, addrs, logger)
    return () => { stop?.(); theirs?.() }
  }
  return await serve(config, { flags: {}, env }, { ...hooks, started })
}
