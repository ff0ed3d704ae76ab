/**
 * A gateway served until a signal (`mesh-proxy gateway mesh|terminating`):
 * the admin endpoint (/ready, /healthz, /metrics, /config; /certs says what
 * the gateway holds), the gateway's listener, then the signal policy of
 * signals.ts: SIGTERM/SIGINT drain then exit 0, a second one closes now,
 * SIGHUP reloads what the gateway reloads (a terminating gateway's planes).
 */
import type { Logger } from 'pino'
import type { HostPort } from '../core/config/types.js'
import { createLogger } from '../log.js'
import { toError } from '../core/errors.js'
import { MetricsRegistry } from '../metrics/metrics.js'
import { AdminServer, type AdminView } from '../admin/server.js'
import { MeshCatalog } from '../meshdir/catalog.js'
import { MeshGateway } from '../gateway/mesh.js'
import { publicGateway, type MeshGatewayConfig, type TerminatingGatewayConfig } from '../gateway/options.js'
import { TerminatingGateway } from '../gateway/terminating.js'
import { RepresentedServices } from '../gateway/represented.js'
import { describe } from '../gateway/external.js'
import { watchSignals } from './signals.js'
import type { RunHooks } from './serve.js'

/** What the serving loop needs of a gateway. */
export interface ServedGateway {
  start (): Promise<HostPort>
  close (): Promise<void>
  destroy (): Promise<void>
  reload? (): Promise<void>
}

/** Serve `gateway` until a signal; resolves with the exit code. `certs` is what /certs shows. */
export async function serveGateway (kind: string, config: MeshGatewayConfig | TerminatingGatewayConfig, gateway: ServedGateway, o: { logger: Logger, metrics: MetricsRegistry, certs: () => Promise<unknown>, signals?: NodeJS.EventEmitter, started: (at: HostPort) => Record<string, unknown> }): Promise<number> {
  let ready = false
  const view: AdminView = {
    ready: async () => ({ ready, body: { state: ready ? 'ready' : 'starting', gateway: kind } }),
    metrics: async () => o.metrics.render(),
    config: async () => publicGateway(config),
    certs: o.certs,
    intentions: async () => undefined
  }
  const admin = config.admin === null ? null : new AdminServer({ view, logger: o.logger })
  try {
    if (admin !== null) await admin.start(config.admin!)
    const at = await gateway.start()
    ready = true
    o.logger.info({ gateway: kind, listen: `${at.host}:${at.port}`, ...o.started(at) }, 'gateway started')
  } catch (err) {
    await gateway.destroy()
    await admin?.close()
    throw err
  }
  return await new Promise<number>(resolve => {
    const watch = watchSignals(o.signals ?? process, {
      drain: signal => {
        o.logger.info({ signal, drainTimeoutMs: config.timeouts.drainTimeoutMs }, 'shutting down: draining connections')
        gateway.close().then(async () => {
          await admin?.close()
          watch.dispose()
          o.logger.info({ gateway: kind }, 'gateway stopped')
          o.logger.flush?.()
          resolve(0)
        }, () => resolve(1))
      },
      closeNow: signal => {
        o.logger.warn({ signal }, 'second signal: closing live connections now')
        void gateway.destroy()
      },
      reload: () => { void gateway.reload?.() }
    })
  })
}

/** Where the routes come from again on SIGHUP (the flags and the mesh dir's gateways.json, read anew). */
export type Reread<C> = () => Promise<C>

/** `remoteGateways` as log fields: dc -> ["host:port", ...]. */
function gatewaysField (m: ReadonlyMap<string, readonly HostPort[]>): Record<string, string[]> {
  return Object.fromEntries([...m].map(([dc, gws]) => [dc, gws.map(g => `${g.host}:${g.port}`)]))
}

/** `gateway mesh`: route by SNI with no key at all; SIGHUP re-reads the other datacenters' gateways. */
export async function serveMeshGateway (config: MeshGatewayConfig, hooks: RunHooks = {}, reread?: Reread<MeshGatewayConfig>): Promise<number> {
  const logger = hooks.logger ?? createLogger({ level: config.logLevel })
  const metrics = new MetricsRegistry()
  const resolver = new MeshCatalog(config.catalogDir)
  const gateway = new MeshGateway({ ...config, resolver, logger, metrics })
  const served: ServedGateway = {
    start: () => gateway.start(),
    close: () => gateway.close(),
    destroy: () => gateway.destroy(),
    reload: async () => {
      if (reread === undefined) return
      try {
        const next = (await reread()).remoteGateways
        gateway.setRemoteGateways(next)
        logger.info({ signal: 'SIGHUP', remoteGateways: gatewaysField(next) }, 'remote gateways reloaded')
      } catch (err) {
        const msg = err instanceof AggregateError ? err.errors.map(e => toError(e).message).join('; ') : toError(err).message
        logger.error({ signal: 'SIGHUP', err: msg }, 'remote gateways reload failed; keeping the current ones')
      }
    }
  }
  try {
    return await serveGateway('mesh', config, served, {
      logger,
      metrics,
      // The proof, on the admin endpoint too: nothing to show.
      certs: async () => ({ certificates: [], note: 'a mesh gateway holds no certificate and no key: it routes TLS by SNI without terminating it' }),
      ...(hooks.signals === undefined ? {} : { signals: hooks.signals }),
      started: () => ({ datacenter: config.datacenter, trustDomain: config.trustDomain, remoteGateways: gatewaysField(config.remoteGateways) })
    })
  } finally {
    resolver.close()
  }
}

/** `gateway terminating`: one plane per represented service, their SVIDs picked by SNI. */
export async function serveTerminatingGateway (config: TerminatingGatewayConfig, hooks: RunHooks = {}): Promise<number> {
  const logger = hooks.logger ?? createLogger({ level: config.logLevel })
  const metrics = new MetricsRegistry()
  const represented = new RepresentedServices(config.services, logger, metrics)
  let gateway: TerminatingGateway | undefined
  const served: ServedGateway = {
    start: async () => {
      gateway = new TerminatingGateway({ listen: config.listen, services: await represented.start(), identityForm: config.identityForm, timeouts: config.timeouts, maxConnections: config.maxConnections, logger, metrics })
      const at = await gateway.start()
      await represented.register(at)
      return at
    },
    close: async () => { await represented.close(); await gateway?.close() },
    destroy: async () => { await represented.close(); await gateway?.destroy() },
    reload: async () => { await represented.reload() }
  }
  const certs = async (): Promise<unknown> => ({
    certificates: config.services.map(s => ({ service: s.spec.service, external: describe(s.spec) }))
  })
  return await serveGateway('terminating', config, served, {
    logger,
    metrics,
    certs,
    ...(hooks.signals === undefined ? {} : { signals: hooks.signals }),
    started: () => ({ services: Object.fromEntries(config.services.map(s => [s.spec.service, describe(s.spec)])) })
  })
}
