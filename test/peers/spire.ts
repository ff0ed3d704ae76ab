// spire-server and spire-agent (from test/peers/install.sh) as a test runs them:
// on loopback, in a short temporary dir, stopped at teardown.
import type { Test } from 'tap'
import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { freePort, spawnPeer } from './peers.js'

const run = promisify(execFile)
/** SVID lifetime of every entry: the agent renews at half-life, a rotation every ~10 s. */
export const SVID_TTL_S = 20

/** A running SPIRE: its dir, the agent's Workload API socket, spire-server's CLI on its socket. */
export interface Spire {
  readonly dir: string
  readonly agentSocket: string
  cli (...args: string[]): Promise<string>
}

/**
 * spire-server and spire-agent on loopback, the agent attested by a join token;
 * one entry per `entries` for this process's uid (the unix workload attestor),
 * told apart by hint. SVIDs live SVID_TTL_S; the agent renews at half-life.
 */
export async function startSpire (t: Test, env: Record<string, string>, td: string, entries: ReadonlyArray<{ id: string, hint: string }>): Promise<Spire> {
  // Short: UNIX socket paths are limited to 108 bytes, tap's fixture dirs are longer.
  const dir = await mkdtemp(join(tmpdir(), 'mp-spire-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const serverSocket = join(dir, 'server.sock')
  const agentSocket = join(dir, 'agent.sock')
  const port = await freePort()
  await writeFile(join(dir, 'server.conf'), `
server {
  bind_address = "127.0.0.1"
  bind_port = "${port}"
  socket_path = "${serverSocket}"
  trust_domain = "${td}"
  data_dir = "${join(dir, 'server-data')}"
  log_level = "INFO"
  ca_key_type = "ec-p256"
  default_x509_svid_ttl = "${SVID_TTL_S}s"
}
plugins {
  DataStore "sql" { plugin_data { database_type = "sqlite3" connection_string = "${join(dir, 'datastore.sqlite3')}" } }
  KeyManager "memory" { plugin_data {} }
  NodeAttestor "join_token" { plugin_data {} }
}
`)
  const server = spawnPeer(t, env.SPIRE_SERVER_BIN!, ['run', '-config', join(dir, 'server.conf')])
  await server.waitFor(/Starting Server APIs.*network=tcp|network=tcp.*Starting Server APIs/)
  await server.waitFor(/Starting Server APIs.*network=unix|network=unix.*Starting Server APIs/)
  const cli = async (...args: string[]): Promise<string> => (await run(env.SPIRE_SERVER_BIN!, [...args, '-socketPath', serverSocket])).stdout
  await writeFile(join(dir, 'bootstrap-bundle.pem'), await cli('bundle', 'show'))
  const token = (await cli('token', 'generate', '-spiffeID', `spiffe://${td}/host/agent`)).match(/Token: (\S+)/)![1]!
  for (const e of entries) {
    await cli('entry', 'create', '-parentID', `spiffe://${td}/host/agent`, '-spiffeID', e.id, '-selector', `unix:uid:${process.getuid!()}`, '-x509SVIDTTL', String(SVID_TTL_S), '-hint', e.hint)
  }
  await writeFile(join(dir, 'agent.conf'), `
agent {
  data_dir = "${join(dir, 'agent-data')}"
  log_level = "INFO"
  server_address = "127.0.0.1"
  server_port = "${port}"
  socket_path = "${agentSocket}"
  trust_bundle_path = "${join(dir, 'bootstrap-bundle.pem')}"
  trust_domain = "${td}"
}
plugins {
  NodeAttestor "join_token" { plugin_data {} }
  KeyManager "memory" { plugin_data {} }
  WorkloadAttestor "unix" { plugin_data {} }
}
`)
  const agent = spawnPeer(t, env.SPIRE_AGENT_BIN!, ['run', '-config', join(dir, 'agent.conf'), '-joinToken', token])
  await agent.waitFor(/Starting Workload and SDS APIs/)
  return { dir, agentSocket, cli }
}

