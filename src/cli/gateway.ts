/**
 * `mesh-proxy gateway mesh|terminating`: commander wiring only; the flags go
 * to gateway/options.ts, the gateway to runtime/gateway.ts.
 */
import type { Command } from 'commander'
import { publicGateway, resolveMeshGateway, resolveTerminatingGateway } from '../gateway/options.js'
import { serveMeshGateway, serveTerminatingGateway } from '../runtime/gateway.js'
import type { RunHooks } from '../runtime/serve.js'

const MESH_HELP = `
Examples:
  # dc1's gateway: services of dc1 from the mesh dir's catalog, dc2's through dc2's gateway
  mesh-proxy gateway mesh --listen 0.0.0.0:8443 --mesh-dir ./mesh-dc1 --remote-gateway dc2=10.2.0.5:8443

It reads the SNI of each ClientHello (<service>.<namespace>.<datacenter>.internal.<trust-domain>)
and relays the TLS bytes as they are: it holds no certificate and no key.`

const TERMINATING_HELP = `
Examples:
  # legacy-db (plain TCP) and billing-api (TLS, verified against a CA file) for the mesh's sidecars
  mesh-proxy gateway terminating --listen 0.0.0.0:8444 --mesh-dir ./mesh \\
    --service legacy-db=10.0.0.9:5432 --service billing-api=api.example.com:443,tls,ca=example-ca.pem

Sidecars reach each service as any upstream (--upstream legacy-db:5432); intentions source => legacy-db
decide. Only the services listed here can be reached through the gateway.`

/** The flags both gateways take. */
function common (c: Command): Command {
  return c
    .option('--handshake-timeout <duration>', 'the whole ClientHello (mesh) or TLS handshake (terminating) within this (default 10s)')
    .option('--connect-timeout <duration>', 'TCP connect to the next hop (default 5s)')
    .option('--idle-timeout <duration>', 'close after no bytes either way (default 1h, 0 = off)')
    .option('--close-timeout <duration>', 'after a half-close, how long the other direction may drain (default 30s)')
    .option('--max-conn-lifetime <duration>', 'hard cap on a connection (default 0 = off)')
    .option('--drain-timeout <duration>', 'on SIGTERM, how long live connections may finish (default 15s)')
    .option('--max-connections <n>', 'live connections at most, 0 = unlimited (default 0)')
    .option('--admin <host:port|off>', 'admin endpoint: /ready /healthz /metrics /config /certs (default 127.0.0.1:19000)')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent (env MESH_PROXY_LOG_LEVEL)')
    .option('--dry-run', 'print the effective configuration and exit (checks the flags and the mesh dir)')
}

/** Run a mesh gateway until a signal; resolves with the exit code. */
export async function runMeshGateway (flags: Record<string, unknown>, hooks: RunHooks = {}): Promise<number> {
  const reread = (): ReturnType<typeof resolveMeshGateway> => resolveMeshGateway(flags, process.env)
  const config = await reread()
  if (flags.dryRun === true) return dryRun(config)
  return await serveMeshGateway(config, hooks, reread)
}

/** Add `gateway mesh` (and `gateway terminating`) to `p`. */
export function gatewayCommands (p: Command, done: (code: Promise<number>) => Promise<void>): void {
  const gw = p.command('gateway').description('gateways: join datacenters (mesh), reach services outside the mesh (terminating)')
  common(gw.command('mesh').description('route sidecars\' TLS to other datacenters and into this one by SNI, without terminating it'))
    .option('--listen <host:port>', 'where sidecars and other gateways connect (default 0.0.0.0:8443)')
    .option('--mesh-dir <dir>', 'this datacenter\'s mesh dir: its catalog, trust domain and datacenter (env MESH_DIR)')
    .option('--datacenter <dc>', 'our datacenter (default: the mesh dir\'s)')
    .option('--trust-domain <td>', 'our trust domain; SNIs of another are refused (default: the mesh dir\'s)')
    .option('--remote-gateway <dc=host:port,...>', 'the mesh gateways of another datacenter (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .addHelpText('after', MESH_HELP)
    .action(async (o: Record<string, unknown>) => done(runMeshGateway(o)))
  const repeat = (v: string, prev: string[] = []): string[] => [...prev, v]
  common(gw.command('terminating').description('terminate sidecars\' mTLS for services outside the mesh and connect to them'))
    .option('--listen <host:port>', 'where sidecars connect (default 0.0.0.0:8444)')
    .option('--service <spec>', 'an external service: name=host:port[,tls][,ca=f][,sni=n][,client-cert=f,client-key=f][,cert=f,key=f] (repeatable; the only targets)', repeat)
    .option('--mesh-dir <dir>', 'the mesh dir: each service\'s SVID, the intentions, the catalog the services are registered in (env MESH_DIR)')
    .option('--ca <file>', 'trust bundle, with cert=/key= per service instead of the mesh dir\'s certificates')
    .option('--intentions <file>', 'intentions file (default: the mesh dir\'s)')
    .option('--control-plane <kind>', 'mesh (default), consul or spiffe, as for run')
    .option('--default-policy <policy>', 'allow|deny when no intention matches, as for run')
    .option('--consul-addr <addr>', 'as for run (env CONSUL_HTTP_ADDR)')
    .option('--consul-token <token>', 'as for run (env CONSUL_HTTP_TOKEN)')
    .option('--consul-token-file <file>', 'as for run (env CONSUL_HTTP_TOKEN_FILE)')
    .option('--consul-cacert <file>', 'as for run (env CONSUL_CACERT)')
    .option('--spiffe-endpoint-socket <addr>', 'as for run (env SPIFFE_ENDPOINT_SOCKET)')
    .option('--datacenter <dc>', 'datacenter of the represented services\' identities (default: the mesh dir\'s)')
    .option('--leaf-ttl <duration>', 'lifetime of the SVIDs issued from the mesh dir\'s CA, as for run')
    .option('--identity-form <form>', 'as for run (default consul)')
    .option('--namespace <ns>', 'namespace of the represented services (default: default)')
    .option('--federate <td=file>', 'as for run (repeatable)', repeat)
    .addHelpText('after', TERMINATING_HELP)
    .action(async (o: Record<string, unknown>) => done(runTerminatingGateway(o)))
}

/** Run a terminating gateway until a signal; resolves with the exit code. */
export async function runTerminatingGateway (flags: Record<string, unknown>, hooks: RunHooks = {}): Promise<number> {
  const config = resolveTerminatingGateway(flags, process.env)
  if (flags.dryRun === true) return dryRun(config)
  return await serveTerminatingGateway(config, hooks)
}

function dryRun (config: Parameters<typeof publicGateway>[0]): number {
  process.stdout.write(JSON.stringify(publicGateway(config), null, 2) + '\n')
  return 0
}
