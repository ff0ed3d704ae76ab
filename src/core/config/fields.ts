/**
 * The settings of `mesh-proxy run`, once. The command line builds its options
 * from this table, resolve() reads flags, environment and --config through it,
 * and docs/flags.md is generated from it (`npm run docs:flags`;
 * test/docs/flags-doc.test.ts fails when the page is stale), so a new setting
 * is one row here.
 * Pure data.
 */
import * as p from './parse.js'
import type { Parser } from './parse.js'
import { MESH_GATEWAY_MODES, upstreamDcs } from './upstream-dc.js'

/** The shortest leaf the mesh dir's CA issues (meshdir/ca-store.ts refuses less). */
export const MIN_LEAF_TTL_MS = 1_000

/** Upper bound of --workers: more processes than this on one sidecar is a mistake, not a setting. */
export const MAX_WORKERS = 64

/** What the command line needs of one option. */
export interface Flag {
  /** Commander's syntax with the value placeholder (`--listen <host:port>`); a switch has none. */
  readonly flag: string
  /** The one-line help text, as `mesh-proxy run --help` prints it. */
  readonly help: string
  /** The only values commander accepts (it lists them in the help). */
  readonly choices?: readonly string[]
  /** Given more than once, the values collect into an array (`--upstream a --upstream b`). */
  readonly repeatable?: true
}

/** One setting: a flag that may also come from the environment and the --config file. */
export interface Field<T> extends Flag {
  /** The environment variable, between the flag and the file in precedence. */
  readonly env?: string
  /**
   * The default in the words the help text uses after "default" (the help
   * states it; the typed default resolve() applies is in defaults.ts, and the
   * tests check the two agree). Absent when the help states none.
   */
  readonly default?: string
  /** Set when the setting has no default: what the error says it is for when none of flags, env and file gives it. */
  readonly required?: string
  /** Raw value (flag string, env string or JSON value) to the typed value; throws a ConfigError naming where it came from. */
  readonly parse: Parser<T>
}

/** Keeps each row's parser type (FIELDS.workers.parse returns number, not unknown). */
function field<T> (f: Field<T>): Field<T> { return f }

/**
 * Every setting, in the order `run --help` lists them. The key is the name in
 * the --config file and commander's camelCase of the flag (tested).
 */
export const FIELDS = {
  service: field({
    flag: '--service <name>',
    help: 'the service this sidecar stands beside (required)',
    required: 'the name of the service this sidecar stands beside (e.g. --service web)',
    parse: p.serviceName
  }),
  listen: field({ flag: '--listen <host:port>', help: 'public mTLS listener (default 0.0.0.0:21000 when --to is given)', default: '0.0.0.0:21000 when --to is given', parse: p.hostPort }),
  to: field({ flag: '--to <host:port|unix:path>', help: 'the local app inbound connections go to: host:port (loopback unless --unsafe-target) or unix:/run/app.sock', parse: p.endpoint }),
  upstream: field({ flag: '--upstream <spec>', help: 'upstream: db:9191, db:127.0.0.2:9191, db:unix:/run/db.sock, or db:9191=host:port,host:port (repeatable)', repeatable: true, parse: p.upstreams }),
  upstreamTunnel: field({
    flag: '--upstream-tunnel <service>',
    help: 'carry this upstream\'s connections as streams of pooled mTLS tunnels to mesh-proxy sidecars (HTTP/2 CONNECT; * for every upstream; repeatable; default none)',
    default: 'none',
    repeatable: true,
    parse: p.tunnelUpstreams
  }),
  unixSocketMode: field({
    flag: '--unix-socket-mode <mode>',
    help: 'permission bits of the UNIX sockets upstream listeners create, in octal (default 0660)',
    default: '0660',
    parse: p.socketMode
  }),
  proxyProtocol: field({
    flag: '--proxy-protocol <version>',
    help: 'before the first byte of each inbound connection, send the app a PROXY protocol header: v2 (the peer\'s address, its SPIFFE ID in TLV 0xD0, verified TLS) or off (default off)',
    default: 'off',
    choices: ['off', 'v2'],
    parse: p.either('off', 'v2', '"v2" (a PROXY protocol v2 header to the app, docs/proxy-protocol.md) or "off"')
  }),
  meshDir: field({ flag: '--mesh-dir <dir>', env: 'MESH_DIR', help: 'the embedded control plane directory (env MESH_DIR)', parse: p.str }),
  cert: field({ flag: '--cert <file>', help: 'our SVID (PEM, leaf first) instead of the mesh dir', parse: p.str }),
  key: field({ flag: '--key <file>', help: 'the SVID private key (PEM)', parse: p.str }),
  ca: field({ flag: '--ca <file>', help: 'trust bundle (PEM roots)', parse: p.str }),
  intentions: field({ flag: '--intentions <file>', help: 'intentions file (default: the mesh dir\'s)', default: 'the mesh dir\'s', parse: p.str }),
  defaultPolicy: field({
    flag: '--default-policy <policy>',
    help: 'when no intention matches (default: the intentions file\'s, else deny)',
    default: 'the intentions file\'s, else deny',
    choices: ['allow', 'deny'],
    parse: p.either('allow', 'deny', '"allow" or "deny"')
  }),
  upstreamDc: field({ flag: '--upstream-dc <service=dc>', help: 'an upstream in another datacenter, reached through mesh gateways, e.g. db=dc2 (repeatable; default: ours)', default: 'ours', repeatable: true, parse: upstreamDcs }),
  meshGatewayMode: field({ flag: '--mesh-gateway-mode <mode>', help: 'an upstream of another datacenter goes to our datacenter\'s mesh gateway (local), to its own (remote), or straight to the instances listed with --upstream (none); default local', default: 'local', choices: MESH_GATEWAY_MODES, parse: p.oneOf(MESH_GATEWAY_MODES, '"local", "remote" or "none"') }),
  datacenter: field({ flag: '--datacenter <dc>', help: 'datacenter in expected upstream identities (default: our own certificate\'s)', default: 'our own certificate\'s', parse: p.str }),
  identityForm: field({ flag: '--identity-form <form>', help: 'how SPIFFE IDs name services: consul, kubernetes (ns/{namespace}/sa/{service}) or a template such as spiffe://{trustDomain}/workload/{service} (default consul)', default: 'consul', parse: p.identityForm }),
  federate: field({ flag: '--federate <td=file>', help: 'accept peers of another trust domain, verified against its bundle (SPIFFE bundle JSON or PEM), e.g. other.org=other.json (repeatable; default none)', default: 'none', repeatable: true, parse: p.federations }),
  upstreamTrustDomain: field({ flag: '--upstream-trust-domain <service=td>', help: 'an upstream in a federated trust domain: its server must be a SPIFFE ID of that trust domain, e.g. db=other.org (repeatable; needs --federate td=... or --control-plane spiffe)', repeatable: true, parse: p.upstreamTrustDomains }),
  namespace: field({ flag: '--namespace <ns>', help: 'namespace of this service and its upstreams (default: default)', default: 'default', parse: p.namespaceName }),
  logLevel: field({ flag: '--log-level <level>', env: 'MESH_PROXY_LOG_LEVEL', help: 'fatal|error|warn|info|debug|trace|silent (env MESH_PROXY_LOG_LEVEL)', parse: p.logLevel }),
  unsafeTarget: field({ flag: '--unsafe-target', help: 'allow a non-loopback --to', parse: p.bool }),
  enforceOnChange: field({
    flag: '--enforce-on-change',
    help: 'when intentions change, close live connections they now deny (default: only new connections are checked, as in Consul)',
    default: 'only new connections are checked, as in Consul',
    parse: p.bool
  }),
  handshakeTimeout: field({ flag: '--handshake-timeout <duration>', help: 'TLS handshake deadline (default 10s)', default: '10s', parse: p.duration }),
  connectTimeout: field({ flag: '--connect-timeout <duration>', help: 'TCP connect to app/upstream (default 5s)', default: '5s', parse: p.duration }),
  idleTimeout: field({ flag: '--idle-timeout <duration>', help: 'close after no bytes either way (default 1h, 0 = off)', default: '1h, 0 = off', parse: p.duration }),
  closeTimeout: field({ flag: '--close-timeout <duration>', help: 'after a half-close, how long the other direction may drain (default 30s)', default: '30s', parse: p.duration }),
  maxConnLifetime: field({ flag: '--max-conn-lifetime <duration>', help: 'hard cap on a connection (default 0 = off)', default: '0 = off', parse: p.duration }),
  drainTimeout: field({ flag: '--drain-timeout <duration>', help: 'on SIGTERM, how long live connections may finish (default 15s)', default: '15s', parse: p.duration }),
  admin: field({
    flag: '--admin <host:port|off>',
    env: 'MESH_PROXY_ADMIN',
    help: 'admin HTTP server: /ready /healthz /metrics /config /certs /intentions (default 127.0.0.1:19000, env MESH_PROXY_ADMIN)',
    default: '127.0.0.1:19000',
    parse: p.hostPortOrOff
  }),
  sourceRateLimit: field({ flag: '--source-rate-limit <rate>', help: 'new inbound connections per source address, e.g. 20/s or 600/m (default off)', default: 'off', parse: p.rateLimit }),
  maxConnections: field({
    flag: '--max-connections <n>',
    help: 'per listener; over it new connections are refused and counted (default 0 = unlimited)',
    default: '0 = unlimited',
    parse: p.wholeNumber(0, Infinity, 'a whole number (0 = unlimited)')
  }),
  workers: field({
    flag: '--workers <n>',
    env: 'MESH_PROXY_WORKERS',
    help: 'worker processes sharing the listeners, like Envoy --concurrency (default 1; env MESH_PROXY_WORKERS)',
    default: '1',
    parse: p.wholeNumber(1, MAX_WORKERS, `a whole number from 1 to ${MAX_WORKERS} (processes sharing the listeners; 1 = no cluster)`)
  }),
  controlPlane: field({
    flag: '--control-plane <kind>',
    help: 'mesh (mesh dir or --cert/--key/--ca), consul (the local agent) or spiffe (the SPIFFE Workload API: a SPIRE agent)',
    choices: ['mesh', 'consul', 'spiffe'],
    parse: p.oneOf(['mesh', 'consul', 'spiffe'] as const, '"mesh" (mesh dir or --cert/--key/--ca), "consul" or "spiffe"')
  }),
  spiffeEndpointSocket: field({
    flag: '--spiffe-endpoint-socket <addr>',
    env: 'SPIFFE_ENDPOINT_SOCKET',
    help: 'the Workload API with --control-plane spiffe: unix:///path or tcp://<ip>:<port> (env SPIFFE_ENDPOINT_SOCKET)',
    parse: p.workloadEndpoint
  }),
  consulAddr: field({
    flag: '--consul-addr <addr>',
    env: 'CONSUL_HTTP_ADDR',
    help: 'Consul agent: host:port, http(s)://host:port or unix:///path (env CONSUL_HTTP_ADDR, default 127.0.0.1:8500)',
    default: '127.0.0.1:8500',
    parse: p.consulAddress
  }),
  consulToken: field({ flag: '--consul-token <token>', env: 'CONSUL_HTTP_TOKEN', help: 'ACL token sent as X-Consul-Token (env CONSUL_HTTP_TOKEN)', parse: p.str }),
  consulTokenFile: field({ flag: '--consul-token-file <file>', env: 'CONSUL_HTTP_TOKEN_FILE', help: 'file holding the ACL token (env CONSUL_HTTP_TOKEN_FILE)', parse: p.str }),
  consulCacert: field({ flag: '--consul-cacert <file>', env: 'CONSUL_CACERT', help: 'CA certificate of an HTTPS agent (env CONSUL_CACERT)', parse: p.str }),
  consulRegister: field({ flag: '--consul-register', help: 'with --control-plane consul and --listen: register this sidecar with the agent as <service>-proxy (a TCP check on --listen), deregister on shutdown', parse: p.bool }),
  consulRegisterId: field({ flag: '--consul-register-id <suffix>', help: 'with --consul-register: the registration ID is <service>-proxy-<suffix> (tells proxies of one service apart)', parse: p.serviceName }),
  authorizeViaAgent: field({
    flag: '--authorize-via-agent',
    help: 'with --control-plane consul: ask the agent (/v1/agent/connect/authorize) about each new inbound connection, fail closed if it does not answer within 1s (default: the local intentions table)',
    default: 'the local intentions table',
    parse: p.bool
  }),
  leafTtl: field({
    flag: '--leaf-ttl <duration>',
    help: 'lifetime of leaves this sidecar issues itself when the mesh dir holds the CA (default 72h)',
    default: '72h',
    parse: p.durationAtLeast(MIN_LEAF_TTL_MS, `leaves live at least ${MIN_LEAF_TTL_MS / 1000}s (e.g. 1h, 72h)`)
  })
}

export type FieldKey = keyof typeof FIELDS

/** The keys in table order (Object.keys keeps it; the cast is what TypeScript cannot see). */
export const FIELD_KEYS = Object.keys(FIELDS) as readonly FieldKey[]

/** What each setting parses to. */
export type FieldValue<K extends FieldKey> = ReturnType<typeof FIELDS[K]['parse']>

/** The settings that were given (by flag, environment or file) and parsed without error. */
export type Values = { readonly [K in FieldKey]?: FieldValue<K> }

/** Options of `run` that are not settings: no environment variable, no file key. */
export const RUN_CLI_FLAGS = {
  config: { flag: '--config <file>', help: 'JSON config file; keys are these flags in camelCase' },
  dryRun: { flag: '--dry-run', help: 'print the effective configuration and exit (checks flags and --config)' }
} as const satisfies Record<string, Flag>

/** `--listen` for `--listen <host:port>`: what error messages name. */
export function flagName (f: Flag): string {
  return f.flag.split(' ', 1)[0] ?? f.flag
}
