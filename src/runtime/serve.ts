/**
 * A resolved configuration, served until a signal: as one sidecar process,
 * as the primary of `--workers N` (supervisor.ts), or as one of its workers
 * (worker.ts). The signals (signals.ts): SIGTERM/SIGINT drain then exit 0 (a
 * second one closes at once), SIGHUP reloads the intentions, the
 * certificates and the config file's upstreams.
 */
import type { Logger } from 'pino'
import { isLoopback } from '../core/config/resolve.js'
import type { Config } from '../core/config/types.js'
import { toError } from '../core/errors.js'
import { createLogger } from '../log.js'
import { Sidecar, type SidecarAddresses } from '../sidecar/sidecar.js'
import { MetricsRegistry } from '../metrics/metrics.js'
import { AdminServer, sidecarView } from '../admin/server.js'
import type { SharedPsk } from '../tls/psk.js'
import { loadConfig, type ConfigSource } from './config-file.js'
import { startIdleGc } from './idle-gc.js'
import { watchSignals } from './signals.js'
import { runPrimary } from './supervisor.js'
import { workerChannel, workerSlot, type WorkerChannel } from './worker.js'

/** What {@link serve} takes besides the configuration (tests inject these). */
export interface RunHooks {
  readonly logger?: Logger
  /** Where SIGTERM, SIGINT and SIGHUP come from; default: the process. */
  readonly signals?: NodeJS.EventEmitter
  /**
   * Called once the sidecar has started (one process, not --workers): what
   * follows a source of upstreams besides the config file (a Consul proxy
   * registration) starts here; the function it returns is called at shutdown.
   */
  readonly started?: (sidecar: Sidecar, addrs: SidecarAddresses, logger: Logger) => (() => void) | undefined
}

/** Serve `config` (resolved from `source`, re-read on SIGHUP) until a signal; resolves with the exit code. */
export async function serve (config: Config, source: ConfigSource, hooks: RunHooks = {}): Promise<number> {
  const baseLogger = hooks.logger ?? createLogger({ level: config.logLevel })
  if (config.admin !== null && !isLoopback(config.admin.host)) {
    baseLogger.warn({ admin: `${config.admin.host}:${config.admin.port}` }, 'admin endpoint is not on loopback: anyone who reaches it reads the configuration, certificates and intentions (bind it to 127.0.0.1, or put it behind a firewall)')
  }
  const slot = workerSlot()
  if (slot === null && config.workers > 1) return await runPrimary(config, baseLogger, hooks.signals ?? process)
  return await serveSidecar(config, source, slot, slot === null ? baseLogger : baseLogger.child({ worker: slot }), hooks)
}

/** One sidecar in this process (`slot`: as a worker of a primary, null: on its own) until a signal. */
async function serveSidecar (config: Config, source: ConfigSource, slot: number | null, logger: Logger, hooks: RunHooks): Promise<number> {
  const metrics = new MetricsRegistry()
  // As a worker, only worker 0 renews our leaf and registers us, and PSKs are shared (supervisor.ts).
  let channel: WorkerChannel | null = null
  const sidecar = new Sidecar({ config, logger, metrics, leader: slot === null || slot === 0, sharePsk: slot === null ? undefined : (m: SharedPsk) => channel?.sharePsk(m) })
  const view = sidecarView(sidecar, metrics)
  if (slot !== null) {
    channel = workerChannel(() => view, m => {
      const result = sidecar.adoptPsk(m)
      // Once per full handshake of a sibling (a PSK lives minutes), not per connection.
      logger.debug({ result }, 'sibling psk')
    }, logger)
  }
  // Admin first, so that /ready answers 503 "starting" while the rest comes up. Workers have none: the primary serves it.
  const admin = config.admin === null || channel !== null ? null : new AdminServer({ view, logger })
  let addrs: SidecarAddresses
  try {
    if (admin !== null) await admin.start(config.admin!)
    addrs = await sidecar.start()
  } catch (err) {
    await admin?.close()
    channel?.close()
    throw err
  }
  channel?.started()
  // After a peak of connections, give the JS heap back once the sidecar is idle (idle-gc.ts).
  const stopIdleGc = startIdleGc(() => sidecar.connections)
  const unfollow = hooks.started?.(sidecar, addrs, logger)
  const result = await untilStopped({ sidecar, admin, config, source, logger, unfollow }, channel?.signals ?? hooks.signals ?? process)
  stopIdleGc()
  channel?.close()
  return result
}

interface Running {
  readonly sidecar: Sidecar
  readonly admin: AdminServer | null
  readonly config: Config
  readonly source: ConfigSource
  readonly logger: Logger
  /** Stops what RunHooks.started began, before the drain. */
  readonly unfollow: (() => void) | undefined
}

/** Until SIGTERM/SIGINT: drain, then resolve 0 (a second signal closes at once); SIGHUP reloads. */
async function untilStopped (r: Running, signals: NodeJS.EventEmitter): Promise<number> {
  const { sidecar, admin, logger } = r
  return await new Promise<number>(resolve => {
    const watch = watchSignals(signals, {
      drain: signal => {
        logger.info({ signal, drainTimeoutMs: r.config.timeouts.drainTimeoutMs }, 'shutting down: draining connections')
        r.unfollow?.()
        sidecar.close().then(async () => {
          await admin?.close()
          watch.dispose()
          logger.flush?.()
          resolve(0)
        }, () => resolve(1))
      },
      closeNow: signal => {
        logger.warn({ signal }, 'second signal: closing live connections now')
        void sidecar.destroy()
      },
      reload: () => { reload(r) }
    })
  })
}

/** SIGHUP: the sidecar's own reload, and the upstreams of the config file read again. */
function reload ({ sidecar, source, logger }: Running): void {
  logger.info({ signal: 'SIGHUP' }, 'reloading intentions, certificates and config-file upstreams')
  void sidecar.reload()
  if (source.path === undefined) return
  loadConfig(source)
    .then(c => sidecar.setUpstreams(c.upstreams))
    .catch((err: unknown) => {
      const msg = err instanceof AggregateError ? err.errors.map(e => toError(e).message).join('; ') : toError(err).message
      logger.error({ file: source.path, err: msg }, 'config reload failed; keeping the current upstreams')
    })
}
