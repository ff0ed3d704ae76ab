/**
 * Which raw value each setting takes, and where it came from. Precedence,
 * highest first: command-line flags, environment, config file; a setting none
 * of them gives is absent (resolve() applies the default). `where` is what an
 * error about the value names: the flag, the variable, or `file: key`.
 * Pure: the CLI reads the file and passes its parsed JSON in.
 */
import { ConfigError } from '../errors.js'
import { closest } from '../suggest.js'
import { FIELDS, FIELD_KEYS, flagName, type Field, type FieldKey } from './fields.js'

/** What resolve() reads. Flag keys are commander's camelCase option names. */
export interface ConfigSources {
  readonly flags: Readonly<Record<string, unknown>>
  readonly env: Readonly<Record<string, string | undefined>>
  /** Parsed JSON of --config, or null. */
  readonly file: unknown
  readonly fileName?: string
}

/** One setting's winning raw value. */
export interface Raw {
  readonly value: unknown
  readonly where: string
}

export type RawValues = ReadonlyMap<FieldKey, Raw>

/** The winning raw value of every setting that is given; problems with the file's shape go to `errors`. */
export function pickSources (src: ConfigSources, errors: ConfigError[]): RawValues {
  const file = fileObject(src, errors)
  const fileName = src.fileName ?? 'config file'
  const raw = new Map<FieldKey, Raw>()
  for (const key of FIELD_KEYS) {
    const f: Field<unknown> = FIELDS[key]
    const flag = src.flags[key]
    const env = f.env === undefined ? undefined : src.env[f.env]
    // An empty list among the flags is no flag, so the environment or the file still counts.
    if (flag !== undefined && !(Array.isArray(flag) && flag.length === 0)) raw.set(key, { value: flag, where: flagName(f) })
    else if (f.env !== undefined && env !== undefined && env !== '') raw.set(key, { value: env, where: f.env })
    else if (file !== null && file[key] !== undefined) raw.set(key, { value: file[key], where: `${fileName}: ${key}` })
  }
  return raw
}

/** The --config JSON as an object of known keys, or null when there is none (or it is not an object). */
function fileObject (src: ConfigSources, errors: ConfigError[]): Record<string, unknown> | null {
  if (src.file === null || src.file === undefined) return null
  const name = src.fileName ?? 'config file'
  if (typeof src.file !== 'object' || Array.isArray(src.file)) {
    errors.push(new ConfigError(name, 'must be a JSON object whose keys are the flag names in camelCase (e.g. {"service": "web", "listen": "127.0.0.1:21001"})'))
    return null
  }
  const obj = src.file as Record<string, unknown>
  for (const k of Object.keys(obj)) {
    if (!Object.hasOwn(FIELDS, k)) errors.push(new ConfigError(`${name}: ${k}`, unknownField(k)))
  }
  return obj
}

/** `unknown field; did you mean "listen"?` for `listn`; the whole list when nothing is close. */
export function unknownField (key: string): string {
  const near = closest(key, FIELD_KEYS)
  return near === undefined ? `unknown field; known fields: ${FIELD_KEYS.join(', ')}` : `unknown field; did you mean ${JSON.stringify(near)}?`
}
