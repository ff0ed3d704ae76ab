/**
 * The one root logger. Connection code takes `logger.child({ conn, listener })`;
 * messages are constant strings and data goes in fields. Key material is redacted
 * by path so that a mistaken `log.info({ key })` cannot leak it.
 */
import { pino, type Logger, type DestinationStream, type LevelWithSilent } from 'pino'

export type { Logger }

/** Fields that must never reach a log line in clear. */
export const REDACT_PATHS = ['key', 'keyPem', '*.key', '*.keyPem', 'privateKey', '*.privateKey', 'config.keyFile']

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  level?: LevelWithSilent
  /** Where lines go; default stdout (fd 1), asynchronous-safe via pino's sonic-boom. */
  destination?: DestinationStream
}

/**
 * How stdout is written (the access log is one line per connection). Lines are
 * gathered into writes of at least MIN_WRITE bytes, and whatever is waiting goes
 * out every FLUSH_MS (Envoy buffers its access log likewise, flushing every
 * second), and at exit. A write per line cost ~145 us of CPU per line under
 * connection churn (bench/RESULTS.md). A write holds whole lines and, unless one
 * line alone is longer, at most MAX_WRITE (PIPE_BUF) bytes, so it is atomic on a
 * pipe: the lines of --workers processes sharing stdout do not interleave.
 */
export const LOG_WRITE = { MIN_WRITE: 2048, MAX_WRITE: 4096, FLUSH_MS: 200 } as const

/** Build the root logger. */
export function createLogger (opts: LoggerOptions = {}): Logger {
  return pino({
    level: opts.level ?? 'info',
    base: { name: 'mesh-proxy' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime
  }, opts.destination ?? pino.destination({ dest: 1, sync: false, minLength: LOG_WRITE.MIN_WRITE, maxWrite: LOG_WRITE.MAX_WRITE, periodicFlush: LOG_WRITE.FLUSH_MS }))
}

/** A logger that drops everything (library default, tests that do not look at logs). */
export function silentLogger (): Logger {
  return pino({ level: 'silent' })
}
