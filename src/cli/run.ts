/**
 * `mesh-proxy run`: flags (+ --config file) -> resolveConfig() -> Sidecar, with
 * signals: SIGTERM/SIGINT drain then exit 0 (a second one closes at once),
 * SIGHUP reloads the intentions.
 */
import { readFile } from 'node:fs/promises'
import type { Logger } from 'pino'
import { isLoopback, resolveConfig } from '../core/config/resolve.js'
import { publicConfig } from '../core/config/public.js'
import { startIdleGc } from '../runtime/idle-gc.js'
import { ConfigError, toError } from '../core/errors.js'
import { createLogger } from '../log.js'
import { Sidecar } from '../sidecar/sidecar.js'
import { MetricsRegistry } from '../metrics/metrics.js'
import { AdminServer, sidecarView } from '../admin/server.js'
import { runPrimary } from '../runtime/supervisor.js'
import { workerChannel, workerSlot, type WorkerChannel } from '../runtime/worker.js'
import type { SharedPsk } from '../tls/psk.js'
import type { Config } from '../core/config/types.js'

/** Read and parse --config; errors name the file. */
export async function readConfigFile (path: string | undefined): Promise<unknown> {
  if (path === undefined) return null
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new ConfigError('--config', `cannot read ${path}: ${toError(err).message}`)
  }
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new ConfigError('--config', `${path} is not valid JSON: ${toError(err).message}`)
  }
}

/** Options of {@link runSidecar} beyond the flags (tests inject these). */
export interface RunHooks {
  readonly logger?: Logger
  /** Resolves when the process should stop; default: signals. */
  readonly signals?: NodeJS.EventEmitter
}

/** Run a sidecar until a signal; resolves with the exit code. */
export async function runSidecar (flags: Record<string, unknown>, hooks: RunHooks = {}): Promise<number> {
  const configPath = flags.config as string | undefined
  const file = await readConfigFile(configPath)
  const config = resolveConfig({ flags, env: process.env, file, ...(configPath === undefined ? {} : { fileName: configPath }) })
  if (flags.dryRun === true) {
    process.stdout.write(JSON.stringify(publicConfig(config), null, 2) + '\n')
    return 0
  }
  const baseLogger = hooks.logger ?? createLogger({ level: config.logLevel })
  if (config.admin !== null && !isLoopback(config.admin.host)) {
    baseLogger.warn({ admin: `${config.admin.host}:${config.admin.port}` }, 'admin endpoint is not on loopback: anyone who reaches it reads the configuration, certificates and intentions (bind it to 127.0.0.1, or put it behind a firewall)')
  }
  const slot = workerSlot()
  if (slot === null && config.workers > 1) return await runPrimary(config, baseLogger, hooks.signals ?? process)
  const logger = slot === null ? baseLogger : baseLogger.child({ worker: slot })
  const metrics = new MetricsRegistry()
  // As a worker, only worker 0 renews our leaf and registers us, and PSKs are shared (runtime/supervisor.ts).
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
  try {
    if (admin !== null) await admin.start(config.admin!)
    await sidecar.start()
  } catch (err) {
    await admin?.close()
    channel?.close()
    throw err
  }
  channel?.started()
  const signals = channel?.signals ?? hooks.signals ?? process
  // After a peak of connections, give the JS heap back once the sidecar is idle (runtime/idle-gc.ts).
  const stopIdleGc = startIdleGc(() => sidecar.connections)
  const result = await serve(sidecar, admin, config, flags, configPath, logger, signals)
  stopIdleGc()
  channel?.close()
  return result
}

/** Until SIGTERM/SIGINT: drain, then resolve 0 (a second signal closes at once); SIGHUP reloads. */
async function serve (sidecar: Sidecar, admin: AdminServer | null, config: Config, flags: Record<string, unknown>, configPath: string | undefined, logger: Logger, signals: NodeJS.EventEmitter): Promise<number> {
  return await new Promise<number>(resolve => {
    let stopping = false
    const onStop = (sig: string) => (): void => {
      if (stopping) {
        logger.warn({ signal: sig }, 'second signal: closing live connections now')
        void sidecar.destroy()
        return
      }
      stopping = true
      logger.info({ signal: sig, drainTimeoutMs: config.timeouts.drainTimeoutMs }, 'shutting down: draining connections')
      sidecar.close().then(async () => {
        await admin?.close()
        signals.off('SIGTERM', onTerm)
        signals.off('SIGINT', onInt)
        signals.off('SIGHUP', onHup)
        logger.flush?.()
        resolve(0)
      }, () => resolve(1))
    }
    const onTerm = onStop('SIGTERM')
    const onInt = onStop('SIGINT')
    const onHup = (): void => {
      logger.info({ signal: 'SIGHUP' }, 'reloading intentions, certificates and config-file upstreams')
      void sidecar.reload()
      if (configPath !== undefined) {
        readConfigFile(configPath)
          .then(f => sidecar.setUpstreams(resolveConfig({ flags, env: process.env, file: f, fileName: configPath }).upstreams))
          .catch((err: unknown) => {
            const msg = err instanceof AggregateError ? err.errors.map(e => toError(e).message).join('; ') : toError(err).message
            logger.error({ file: configPath, err: msg }, 'config reload failed; keeping the current upstreams')
          })
      }
    }
    signals.on('SIGTERM', onTerm)
    signals.on('SIGINT', onInt)
    signals.on('SIGHUP', onHup)
  })
}

/** `config validate <file>`: resolve the file alone, as `run --config file` would. */
export async function validateConfigFile (path: string, say: (l: string) => void): Promise<number> {
  const file = await readConfigFile(path)
  resolveConfig({ flags: {}, env: {}, file, fileName: path })
  say(`${path}: valid`)
  return 0
}
