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

/** Build the root logger. */
export function createLogger (opts: LoggerOptions = {}): Logger {
  return pino({
    level: opts.level ?? 'info',
    base: { name: 'mesh-proxy' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime
  }, opts.destination ?? pino.destination({ dest: 1, sync: false }))
}

/** A logger that drops everything (library default, tests that do not look at logs). */
export function silentLogger (): Logger {
  return pino({ level: 'silent' })
}
