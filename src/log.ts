/**
 * The one root logger. Connection code logs plain field objects (no child
 * logger per connection); messages are constant strings and data goes in
 * fields. Key material is censored by field name so that a mistaken
 * `log.info({ key })` cannot leak it.
 */
import { pino, type Logger, type DestinationStream, type LevelWithSilent } from 'pino'

export type { Logger }

/** What a censored field shows. */
export { REDACTED } from './core/config/public.js'
import { REDACTED } from './core/config/public.js'

/** Field names that never reach a log line in clear, at the top level and one level down. */
const SECRET_FIELDS = new Set(['key', 'keyPem', 'privateKey', 'token', 'consulToken'])

/** A field one level down that is censored under this parent only. */
const SECRET_NESTED: Readonly<Record<string, string>> = { config: 'keyFile' }

/**
 * The log object with secrets censored: `key`, `keyPem`, `privateKey`, `token` and `consulToken`
 * at the top level and in any object one level down, and `config.keyFile`
 * (a child logger's bindings: the top-level names only).
 * Censoring copies (the caller's object is left as it is); when nothing
 * matches, `obj` itself is returned and nothing is allocated. That is the
 * common case, once per connection for the access log: pino's own path-based
 * redaction copied every logged object, and with wildcard paths every nested
 * one, which made it a fifth of all JavaScript allocation under connection
 * churn (bench/RESULTS.md).
 */
export function redactSecrets (obj: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined
  for (const k in obj) {
    if (SECRET_FIELDS.has(k)) {
      (out ??= { ...obj })[k] = REDACTED
      continue
    }
    const v = obj[k]
    if (v === null || typeof v !== 'object' || Array.isArray(v) || ArrayBuffer.isView(v)) continue
    const inner = redactNested(v as Record<string, unknown>, SECRET_NESTED[k])
    if (inner !== v) (out ??= { ...obj })[k] = inner
  }
  return out ?? obj
}

/** For the top-level secret fields, in log objects and child bindings alike. */
const SECRET_SERIALIZERS: Record<string, () => string> = Object.fromEntries([...SECRET_FIELDS].map(k => [k, () => REDACTED]))

function redactNested (obj: Record<string, unknown>, alsoSecret: string | undefined): Record<string, unknown> {
  let out: Record<string, unknown> | undefined
  for (const k in obj) {
    if (SECRET_FIELDS.has(k) || k === alsoSecret) (out ??= { ...obj })[k] = REDACTED
  }
  return out ?? obj
}

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
    formatters: { log: redactSecrets },
    // Child bindings bypass formatters.log (pino resets the bindings formatter for
    // children); serializers apply to them too, so a secret top-level field of a
    // child's bindings is censored as well.
    serializers: SECRET_SERIALIZERS,
    timestamp: pino.stdTimeFunctions.isoTime
  }, opts.destination ?? pino.destination({ dest: 1, sync: false, minLength: LOG_WRITE.MIN_WRITE, maxWrite: LOG_WRITE.MAX_WRITE, periodicFlush: LOG_WRITE.FLUSH_MS }))
}

/** A logger that drops everything (library default, tests that do not look at logs). */
export function silentLogger (): Logger {
  return pino({ level: 'silent' })
}
