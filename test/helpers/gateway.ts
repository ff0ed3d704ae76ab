// Gateways under test: a mesh gateway and a terminating gateway with captured
// logs and their own metrics,
// a second datacenter's mesh dir (the same CA and trust domain, as Consul's
// WAN-federated datacenters share the primary's CA), and a raw TCP client
// that sends exactly the bytes it is given.
import type { Test } from 'tap'
import { connect } from 'node:net'
import { copyFile, mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { existsSync } from 'node:fs'
import { MeshGateway, type MeshGatewayOptions } from '../../src/gateway/mesh.js'
import { MeshCatalog } from '../../src/meshdir/catalog.js'
import { TerminatingGateway } from '../../src/gateway/terminating.js'
import { RepresentedServices } from '../../src/gateway/represented.js'
import { resolveTerminatingGateway } from '../../src/gateway/options.js'
import { DEFAULT_TIMEOUTS } from '../../src/core/config/defaults.js'
import type { HostPort } from '../../src/core/config/types.js'
import { meshLayout, writeMeshSettings, type MeshLayout } from '../../src/meshdir/layout.js'
import { MetricsRegistry } from '../../src/metrics/metrics.js'
import { TD, captureLogger, type LogSink, type TestMesh } from './mesh.js'

export interface TestGateway {
  readonly gateway: MeshGateway
  readonly at: HostPort
  readonly sink: LogSink
  readonly metrics: MetricsRegistry
  /** Close gracefully and assert nothing leaked. */
  stop (): Promise<void>
}

/** A mesh gateway of `datacenter` over `catalogDir`; closed at teardown. */
export async function startMeshGateway (t: Test, o: { datacenter: string, catalogDir: string, remote?: Record<string, HostPort[]> } & Partial<MeshGatewayOptions>): Promise<TestGateway> {
  const { logger, sink } = captureLogger()
  const metrics = new MetricsRegistry()
  const resolver = new MeshCatalog(o.catalogDir, { cacheMs: 0 })
  const gateway = new MeshGateway({
    listen: { host: '127.0.0.1', port: 0 },
    trustDomain: TD,
    resolver,
    remoteGateways: new Map(Object.entries(o.remote ?? {})),
    timeouts: DEFAULT_TIMEOUTS,
    logger,
    metrics,
    ...o
  })
  const at = await gateway.start()
  t.teardown(() => gateway.destroy())
  const stop = async (): Promise<void> => {
    await gateway.close()
    t.equal(gateway.connections, 0, `gateway ${o.datacenter}: no live connections after close`)
    t.equal(metrics.get('mesh_proxy_connections_active', { direction: 'mesh_gateway' }), 0, `gateway ${o.datacenter}: active gauge back to 0`)
  }
  return { gateway, at, sink, metrics, stop }
}

/** The mesh dir of another datacenter: `mesh`'s CA, bundle and intentions, its own catalog. */
export async function otherDatacenter (t: Test, mesh: TestMesh, datacenter: string): Promise<MeshLayout> {
  // Beside the first one (a test has one testdir), removed with it.
  const layout = meshLayout(`${mesh.dir}-${datacenter}`)
  t.teardown(() => rm(layout.root, { recursive: true, force: true }))
  await mkdir(join(layout.root, 'ca'), { recursive: true })
  await writeMeshSettings(layout, { trustDomain: TD, datacenter })
  for (const f of ['caCert', 'caKey', 'bundle'] as const) await copyFile(mesh.layout[f], layout[f])
  if (existsSync(mesh.layout.intentions)) await copyFile(mesh.layout.intentions, layout.intentions)
  return layout
}

/** Send `bytes` to `port` as they are, read until the other side closes: what came back, and whether it was a reset. */
export async function rawTry (port: number, bytes: Buffer, opts: { end?: boolean } = {}): Promise<{ got: Buffer, reset: boolean }> {
  const s = connect({ host: '127.0.0.1', port, allowHalfOpen: true })
  const got: Buffer[] = []
  let reset = false
  s.on('data', (d: Buffer) => got.push(d))
  s.on('error', (e: Error & { code?: string }) => { if (e.code === 'ECONNRESET') reset = true })
  if (bytes.length > 0) s.write(bytes)
  if (opts.end === true) s.end()
  await new Promise(resolve => s.once('close', resolve))
  return { got: Buffer.concat(got), reset }
}

export interface TestTerminating {
  readonly gateway: TerminatingGateway
  readonly at: HostPort
  readonly sink: LogSink
  readonly metrics: MetricsRegistry
  stop (): Promise<void>
}

/** A terminating gateway from CLI-shaped flags (as `gateway terminating` resolves them), registered in its catalog; closed at teardown. */
export async function startTerminating (t: Test, flags: Record<string, unknown>): Promise<TestTerminating> {
  const config = resolveTerminatingGateway({ listen: '127.0.0.1:0', admin: 'off', ...flags }, {})
  const { logger, sink } = captureLogger()
  const metrics = new MetricsRegistry()
  const represented = new RepresentedServices(config.services, logger, metrics)
  t.teardown(() => represented.close())
  const gateway = new TerminatingGateway({ listen: config.listen, services: await represented.start(), identityForm: config.identityForm, timeouts: config.timeouts, logger, metrics })
  const at = await gateway.start()
  t.teardown(() => gateway.destroy())
  await represented.register(at)
  const stop = async (): Promise<void> => {
    await represented.close()
    await gateway.close()
    t.equal(gateway.connections, 0, 'terminating gateway: no live connections after close')
    t.equal(metrics.get('mesh_proxy_connections_active', { direction: 'terminating_gateway' }), 0, 'terminating gateway: active gauge back to 0')
  }
  return { gateway, at, sink, metrics, stop }
}
