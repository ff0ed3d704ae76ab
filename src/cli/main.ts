/**
 * The command line: commander wiring only. Each action parses, calls one
 * function, and returns an exit code; main() never calls process.exit.
 */
import { Argument, Command, CommanderError, Option } from 'commander'
import { ERR, MeshProxyError, USAGE_ERROR_CODES, toError } from '../core/errors.js'
import { runSidecar, validateConfigFile } from './run.js'
import { runConsulProxy } from '../runtime/consul-proxy.js'
import { runDemo } from './demo.js'
import { caBundle, caInit, caRetireOld, caRotate, certInspect, certIssue, certSign, genDevCerts } from './certs.js'
import { intentionCheck, intentionCreate, intentionDefaultPolicy, intentionDelete, intentionGet, intentionList, intentionMatch } from './intention.js'
import { CERTS_DEV_DIR } from '../meshdir/seed.js'
import { FIELDS, RUN_CLI_FLAGS, type Flag } from '../core/config/fields.js'
import { versionLine } from '../build.js'
import { completionScript } from './completion.js'
import { gatewayCommands } from './gateway.js'
import { CA_HELP, CONSUL_PROXY_HELP, INTENTION_HELP, ROOT_HELP } from './examples.js'

const RUN_HELP = `
Examples:
  # db's sidecar: mTLS on :21000, relays allowed peers to the app on :5432
  mesh-proxy run --service db --listen 127.0.0.1:21000 --to 127.0.0.1:5432 --mesh-dir ./mesh

  # web's sidecar: the app connects to 127.0.0.1:9191 to reach db (found in the mesh dir catalog)
  mesh-proxy run --service web --listen 127.0.0.1:21001 --to 127.0.0.1:8080 --upstream db:9191 --mesh-dir ./mesh

  # Consul as the control plane: leaf, roots, intentions and upstreams from the local agent
  CONSUL_HTTP_ADDR=127.0.0.1:8500 mesh-proxy run --service web --control-plane consul --upstream db:9191

  # no mesh dir: plain PEM files and explicit upstream instances
  mesh-proxy run --service web --cert web.pem --key web.key --ca bundle.pem --upstream db:9191=10.0.0.5:21000,10.0.0.6:21000

Precedence: flags > environment (MESH_DIR, MESH_PROXY_LOG_LEVEL) > --config file > defaults.
Durations: 500ms, 10s, 5m, 1h or a number of milliseconds.`

/** Consul's CLI spells flags with one dash (`-allow`); commander wants two. */
const CONSUL_FLAGS = /^-(allow|deny|replace|description|meta|audit|source|source-trust-domain|explain|json)(=.*)?$/

/** `consul connect proxy`'s flags are all single-dash words (`-sidecar-for web`, `-listen=:8443`). */
const CONSUL_PROXY_FLAG = /^-[a-z][a-z-]+(=.*)?$/

/** `option '--sidecar-for <service-id>' argument missing` as `option '-sidecar-for <service-id>' argument missing`: our two dashes were added by normalise(). */
export function consulSpelling (message: string): string {
  return message.replace(/(^|[\s'(])--([a-z][a-z-]+)/g, '$1-$2')
}

function normalise (argv: readonly string[]): string[] {
  const p = argv.indexOf('consul-proxy')
  if (p >= 0) return argv.map((a, n) => n > p && CONSUL_PROXY_FLAG.test(a) ? '-' + a : a)
  const i = argv.indexOf('intention')
  if (i < 0) return [...argv]
  return argv.map((a, n) => n > i && CONSUL_FLAGS.test(a) ? '-' + a : a)
}

/** What every command's action needs: where output goes, and how to hand back its exit code. */
interface Ctx {
  readonly out: (l: string) => void
  readonly done: (p: Promise<number>) => Promise<void>
}

function program (out: (l: string) => void, result: { code: number }): Command {
  const p = new Command('mesh-proxy')
    .description('An L4 mutual-TLS sidecar proxy for a service mesh (Consul Connect style)')
    .exitOverride()
    .configureOutput({ writeOut: s => out(s.replace(/\n$/, '')), writeErr: s => process.stderr.write(s) })
    // As envoy --version: the version, then what it runs on (Node, and the OpenSSL every handshake uses).
    .version(versionLine(), '-v, --version', 'print the version, and the Node and OpenSSL it runs on')
    .addHelpText('after', ROOT_HELP)
  const ctx: Ctx = { out, done: (p: Promise<number>): Promise<void> => p.then(code => { result.code = code }) }
  for (const add of [runCommand, consulProxyCommand, configCommands, demoCommand, caCommands, certCommands, intentionCommands, devCommands, shellCommands]) add(p, ctx)
  gatewayCommands(p, ctx.done)
  return p
}

/** A commander option from a row of the field table: its choices, or its collector when it repeats. */
function optionOf (f: Flag): Option {
  const o = new Option(f.flag, f.help)
  if (f.choices !== undefined) o.choices(f.choices)
  if (f.repeatable === true) o.argParser((v: string, prev: string[] = []) => [...prev, v])
  return o
}

/** `run`: every option comes from src/core/config/fields.ts, where resolve() reads them too. */
function runCommand (p: Command, { done }: Ctx): void {
  const run = p.command('run').description('run a sidecar beside one service')
  for (const f of [...Object.values(FIELDS), ...Object.values(RUN_CLI_FLAGS)]) run.addOption(optionOf(f))
  run.addHelpText('after', RUN_HELP)
    .action(async (opts: Record<string, unknown>) => done(runSidecar(opts)))
}

/** Consul flags we do not take, and why (given, they are an error that says so). */
const CONSUL_UNSUPPORTED: ReadonlyArray<readonly [string, string, string]> = [
  ['pprofAddr', '--pprof-addr <addr>', 'there is no Go runtime to profile; use the admin endpoint (--admin) for /metrics, or node --inspect'],
  ['caPath', '--ca-path <dir>', 'give the agent\'s CA as one file with -ca-file (CONSUL_CACERT)'],
  ['clientCert', '--client-cert <file>', 'client certificates towards the agent (verify_incoming on the HTTPS API) are not implemented; use the agent\'s HTTP port on loopback, or its unix socket'],
  ['clientKey', '--client-key <file>', 'client certificates towards the agent are not implemented; see -client-cert'],
  ['tlsServerName', '--tls-server-name <name>', 'the agent\'s certificate is checked against the -http-addr host name'],
  ['datacenter', '--datacenter <dc>', 'the datacenter is the local agent\'s (/v1/agent/self); an upstream in another one says so in its registration (Datacenter)'],
  ['namespace', '--namespace <ns>', 'the namespace is the registration\'s'],
  ['partition', '--partition <ap>', 'the partition is the agent\'s']
]

/** `consul-proxy`: `consul connect proxy`'s flags (one dash, as Consul spells them), runtime/consul-proxy.ts. */
function consulProxyCommand (p: Command, { out, done }: Ctx): void {
  const c = p.command('consul-proxy').description('a drop-in for `consul connect proxy`: configured by the agent\'s proxy registration (-sidecar-for, -proxy-id) or by Consul\'s flags')
    .option('--sidecar-for <service-id>', 'the ID of the service whose connect-proxy registration configures us (env CONNECT_SIDECAR_FOR)')
    .option('--proxy-id <id>', 'the ID of the connect-proxy registration that configures us (env CONNECT_PROXY_ID)')
    .option('--service <name>', 'without a registration: the service this proxy represents')
    .option('--service-addr <host:port>', 'with -listen: the local app inbound connections go to')
    .option('--listen <host:port>', 'with -service: the public mTLS listener')
    .option('--upstream <name:port>', 'with -service: an upstream, name:port or name:host:port (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--register', 'with -service and -listen: register with the agent as <service>-proxy (a TCP check), deregister on shutdown')
    .option('--register-id <suffix>', 'with -register: the ID is <service>-proxy-<suffix>')
    .option('--log-level <level>', 'TRACE, DEBUG, INFO, WARN, ERR (default INFO)')
    .option('--log-json', 'logs as JSON (they always are)')
    .option('--http-addr <addr>', 'the agent: host:port, http(s)://host:port or unix:///path (env CONSUL_HTTP_ADDR, default 127.0.0.1:8500)')
    .option('--token <token>', 'ACL token (env CONSUL_HTTP_TOKEN)')
    .option('--token-file <file>', 'file holding the ACL token (env CONSUL_HTTP_TOKEN_FILE)')
    .option('--ca-file <file>', 'CA certificate of an HTTPS agent (env CONSUL_CACERT)')
    .option('--authorize-via-agent', 'ask the agent (/v1/agent/connect/authorize) about each new inbound connection, fail closed after 1s (default: the local intentions table)')
    .option('--admin <host:port|off>', 'admin HTTP server (default 127.0.0.1:19000)')
    .option('--unsafe-target', 'allow a non-loopback local app (Proxy.LocalServiceAddress, -service-addr)')
    .option('--dry-run', 'print the configuration the registration or flags give, and exit')
  for (const [, flag, why] of CONSUL_UNSUPPORTED) c.addOption(new Option(flag, `not supported: ${why}`).hideHelp())
  // commander's own errors (a missing value, an unknown flag) in Consul's spelling, one dash.
  c.configureOutput({ outputError: (str, write) => write(consulSpelling(str)) })
  c.addHelpText('after', CONSUL_PROXY_HELP)
    .action(async (o: Record<string, unknown>) => {
      const unsupported = CONSUL_UNSUPPORTED.filter(([k]) => o[k] !== undefined).map(([, flag, why]) => [`-${flag.split(' ')[0]!.slice(2)}`, why] as const)
      await done(runConsulProxy({ ...o, unsupported }, process.env, { out }))
    })
}

function configCommands (p: Command, { out, done }: Ctx): void {
  p.command('config').description('configuration files').command('validate <file>')
    .description('check a --config file without running (exit 0 valid, 2 invalid)')
    .action(async (file: string) => done(validateConfigFile(file, out)))
}

function demoCommand (p: Command, { out, done }: Ctx): void {
  p.command('demo')
    .description('start a demo mesh on loopback (db, web, billing) and show allow and deny')
    .option('--keep', 'keep the mesh running until Ctrl-C')
    .option('--mesh-dir <dir>', 'seed and keep this mesh dir instead of a temporary one')
    .option('--seed-only', 'only seed the mesh dir from certs-dev/, start nothing')
    .option('--force', 'seed --mesh-dir even if it holds a CA or keys (they are replaced by the dev CA)')
    .option('--verbose', 'also print the sidecars\' JSON logs to stderr')
    .option('--admin-port <port>', 'with --keep: db\'s admin port, web and billing take the next two; 0 = any free port (default 19000)')
    .option('--datacenters <n>', '2: web in dc1 reaches db in dc2 through two mesh gateways (default 1)')
    .action(async (o: { keep?: boolean, meshDir?: string, seedOnly?: boolean, force?: boolean, verbose?: boolean, adminPort?: string, datacenters?: string }) => done(runDemo({ ...o, out })))
}

function caCommands (p: Command, { out, done }: Ctx): void {
  const ca = p.command('ca').description('the mesh dir\'s certificate authority').addHelpText('after', CA_HELP)
  ca.command('init')
    .description('create a root CA (ECDSA P-256) in the mesh dir')
    .requiredOption('--mesh-dir <dir>', 'mesh dir', process.env.MESH_DIR)
    .option('--trust-domain <td>', 'trust domain (default: <random uuid>.consul)')
    .option('--datacenter <dc>', 'datacenter for issued identities', 'dc1')
    .option('--force', 'replace a CA already in the mesh dir')
    .action(async (o: { meshDir: string, trustDomain?: string, datacenter?: string, force?: boolean }) => done(caInit(o, out)))

  ca.command('rotate').description('new root, cross-signed by the old one; both trusted during the transition')
    .requiredOption('--mesh-dir <dir>', 'mesh dir', process.env.MESH_DIR)
    .action(async (o: { meshDir: string }) => done(caRotate(o, out)))
  ca.command('retire-old').description('drop replaced roots from the bundle (after every leaf has rotated)')
    .requiredOption('--mesh-dir <dir>', 'mesh dir', process.env.MESH_DIR)
    .action(async (o: { meshDir: string }) => done(caRetireOld(o, out)))
  ca.command('bundle').description('print the trust bundle')
    .requiredOption('--mesh-dir <dir>', 'mesh dir', process.env.MESH_DIR)
    .addOption(new Option('--format <format>', 'spiffe (JWKS, SPIFFE bundle format) or pem').choices(['spiffe', 'pem']).default('pem'))
    .action(async (o: { meshDir: string, format?: string }) => done(caBundle(o, out)))
}

function certCommands (p: Command, { out, done }: Ctx): void {
  const cert = p.command('cert').description('leaf certificates')
  cert.command('issue <service>')
    .description('issue a leaf SVID (and key, 0600) for a service from the mesh dir\'s CA')
    .requiredOption('--mesh-dir <dir>', 'mesh dir', process.env.MESH_DIR)
    .option('--ttl <duration>', 'lifetime', '72h')
    .option('--force', 'replace the service\'s key and certificate if it has them')
    .action(async (service: string, o: { meshDir: string, ttl?: string, force?: boolean }) => done(certIssue(service, o, out)))
  cert.command('sign')
    .description('sign a CSR for a service: the private key never leaves the workload')
    .requiredOption('--csr <file>', 'PKCS#10 request (PEM)')
    .option('--service <name>', 'the service the leaf is for (default: from the CSR\'s SPIFFE ID or CN)')
    .requiredOption('--mesh-dir <dir>', 'mesh dir', process.env.MESH_DIR)
    .option('--ttl <duration>', 'lifetime', '72h')
    .option('--out <file>', 'write the certificate here instead of stdout')
    .action(async (o: { meshDir: string, csr: string, service?: string, ttl?: string, out?: string }) => done(certSign(o, out)))
  cert.command('inspect <file>')
    .description('SPIFFE ID, serial, validity, issuer and every SVID check (exit 1 if one fails)')
    .option('--ca <bundle>', 'check the chain against these roots (PEM, or a SPIFFE bundle JSON)')
    .option('--mesh-dir <dir>', 'check the chain against this mesh dir\'s bundle.pem')
    .action(async (file: string, o: { ca?: string, meshDir?: string }) => done(certInspect(file, out, o)))
}

function intentionCommands (p: Command, { out, done }: Ctx): void {
  const ixn = p.command('intention').description('intentions: who may connect to whom (Consul words: -allow, -deny)').addHelpText('after', INTENTION_HELP)
  const meshDirOpt = (): Option => new Option('--mesh-dir <dir>', 'mesh dir (env MESH_DIR)').default(process.env.MESH_DIR ?? './mesh')
  ixn.command('create <source> <destination>')
    .description('create an intention, e.g. intention create -allow web db')
    .option('--allow', 'allow the connection').option('--deny', 'deny the connection')
    .option('--replace', 'replace an existing intention for the same pair')
    .option('--description <text>', 'free text')
    .option('--meta <key=value>', 'metadata (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--audit', 'with -deny: log and count "would deny" but allow (dry run)')
    .option('--source-trust-domain <td>', 'the source is a service of this federated trust domain (--federate), not ours')
    .addOption(meshDirOpt())
    .addHelpText('after', '\nExamples:\n  mesh-proxy intention create -allow web db\n  mesh-proxy intention create -allow web db -source-trust-domain other.org\n  mesh-proxy intention create -deny web \'*\'\n  mesh-proxy intention create -deny \'*\' db -description "lock down db"\n  mesh-proxy intention create -replace -allow billing db')
    .action(async (s: string, d: string, o: { allow?: boolean, deny?: boolean, replace?: boolean, description?: string, meta?: string[], audit?: boolean, sourceTrustDomain?: string, meshDir: string }) => {
      if (o.allow === o.deny) throw new MeshProxyError(ERR.USAGE, 'give exactly one of -allow or -deny')
      await done(intentionCreate(s, d, { ...o, action: o.allow === true ? 'allow' : 'deny' }, out))
    })
  ixn.command('delete <source> <destination>').description('delete an intention').addOption(meshDirOpt())
    .action(async (s: string, d: string, o: { meshDir: string }) => done(intentionDelete(s, d, o, out)))
  ixn.command('get <source> <destination>').description('show one intention').option('--json', 'as JSON').addOption(meshDirOpt())
    .action(async (s: string, d: string, o: { meshDir: string, json?: boolean }) => done(intentionGet(s, d, o, out)))
  ixn.command('list').description('list intentions').option('--json', 'as JSON').addOption(meshDirOpt())
    .action(async (o: { meshDir: string, json?: boolean }) => done(intentionList(o, out)))
  ixn.command('match <name>').description('intentions that apply to a destination (or -source), in precedence order')
    .option('--source', 'match by source instead of destination').option('--json', 'as JSON').addOption(meshDirOpt())
    .action(async (n: string, o: { meshDir: string, source?: boolean, json?: boolean }) => done(intentionMatch(n, o, out)))
  ixn.command('check <source> <destination>').description('Allowed (exit 0) or Denied (exit 1)').option('--explain', 'say which intention decided').addOption(meshDirOpt())
    .action(async (s: string, d: string, o: { meshDir: string, explain?: boolean }) => done(intentionCheck(s, d, o, out)))
  ixn.command('default-policy [policy]').description('show or set (allow|deny) the policy when no intention matches').addOption(meshDirOpt())
    .action(async (policy: string | undefined, o: { meshDir: string }) => done(intentionDefaultPolicy(policy, o, out)))
}

function devCommands (p: Command, { out, done }: Ctx): void {
  p.command('dev').description('development helpers').command('gen-certs [dir]')
    .description('regenerate the development CA, leaves and intentions (certs-dev/)')
    .option('--force', 'replace a CA and keys already in the dir')
    .action(async (dir: string | undefined, o: { force?: boolean }) => done(genDevCerts(dir ?? CERTS_DEV_DIR, out, o)))
}

/** `version` (as `consul version`) and `completion bash|zsh`, generated from the program `p` itself. */
function shellCommands (p: Command, { out }: Ctx): void {
  p.command('version').description('print the version, and the Node and OpenSSL it runs on')
    .action(() => { out(versionLine()) })
  p.command('completion').description('print a shell completion script: source <(mesh-proxy completion bash)')
    .addArgument(new Argument('<shell>', 'bash or zsh').choices(['bash', 'zsh']))
    .action((shell: 'bash' | 'zsh') => { out(completionScript(p, shell).replace(/\n$/, '')) })
}

/**
 * Run the CLI with `argv` (process.argv shape). Returns the exit code:
 * 0 ok, 1 failure (or Denied for `intention check`), 2 usage or configuration error.
 */
export async function main (argv: readonly string[], out: (l: string) => void = l => { process.stdout.write(l + '\n') }): Promise<number> {
  const result = { code: 0 }
  try {
    await program(out, result).parseAsync(normalise(argv))
    return result.code
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2
    const e = toError(err)
    const lines = err instanceof AggregateError ? err.errors.map(x => toError(x).message) : [e.message]
    for (const l of lines) process.stderr.write(`mesh-proxy: error: ${l}\n`)
    const usage = err instanceof AggregateError || (err instanceof MeshProxyError && USAGE_ERROR_CODES.has(err.code))
    return usage ? 2 : 1
  }
}
