// Envoy as a Consul Connect sidecar in the interop tests: the bootstraps (shaped
// like the ones `consul connect envoy` produces: mTLS both ways, SPIFFE URI SANs
// matched, SNI, TLS 1.3 only, every port 0) are built by bench/envoy.ts, which
// the benchmark's Envoy pairs use too; here Envoy is started under tap, its
// bound ports read back from the admin API.
import type { Test } from 'tap'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnPeer, type Peer } from './peers.js'
import { adminGet, adminPortFrom, bootstrapText, listenerPort } from '../../bench/envoy.js'

// The bootstrap builders are shared with the benchmark's Envoy pairs.
export { outboundBootstrap, inboundBootstrap, type EnvoyTls } from '../../bench/envoy.js'

/** A running Envoy: its one listener's bound port and its admin API. */
export interface RunningEnvoy {
  readonly peer: Peer
  readonly port: number
  readonly adminPort: number
  /** GET an admin path (e.g. `/stats?format=json`), the body as text. */
  admin (path: string): Promise<string>
  /** One counter from /stats, 0 when absent. */
  stat (name: string): Promise<number>
}

/** Start Envoy on `bootstrap` (admin on 127.0.0.1:0); resolves once its listener is bound. Killed at teardown. */
export async function startEnvoy (t: Test, bin: string, bootstrap: Record<string, unknown>): Promise<RunningEnvoy> {
  // Not t.testdir(): that is the test's one fixture dir, and makeMesh already holds it.
  const dir = await mkdtemp(join(tmpdir(), 'mesh-proxy-envoy-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const config = join(dir, 'bootstrap.yaml')
  const adminPath = join(dir, 'admin-address')
  await writeFile(config, bootstrapText(bootstrap))
  const peer = spawnPeer(t, bin, ['-c', config, '--admin-address-path', adminPath, '--disable-hot-restart', '--concurrency', '1', '--log-level', 'info'])
  await peer.waitFor(/starting main dispatch loop/)
  const adminPort = await adminPortFrom(adminPath)
  const port = await listenerPort(adminPort)
  const admin = async (path: string): Promise<string> => (await adminGet(adminPort, path)).body
  const stat = async (name: string): Promise<number> => {
    const body = await admin(`/stats?filter=${encodeURIComponent('^' + name.replace(/\./g, '\\.') + '$')}`)
    const m = body.match(/: (\d+)\s*$/m)
    return m === null ? 0 : Number(m[1])
  }
  return { peer, port, adminPort, admin, stat }
}
