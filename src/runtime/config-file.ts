/**
 * Where a sidecar's configuration comes from: flags, the environment and the
 * --config file. Read once at start (cli/run.ts) and the file again on every
 * SIGHUP (serve.ts), through the same {@link loadConfig}.
 */
import { readFile } from 'node:fs/promises'
import { resolveConfig } from '../core/config/resolve.js'
import type { Config } from '../core/config/types.js'
import { ConfigError, toError } from '../core/errors.js'

/** The sources of one configuration: commander's flags, an environment, the --config path. */
export interface ConfigSource {
  readonly flags: Readonly<Record<string, unknown>>
  readonly env: Readonly<Record<string, string | undefined>>
  /** --config, when given. */
  readonly path?: string
}

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

/** Read the file (if any) and resolve it with the flags and the environment. */
export async function loadConfig (src: ConfigSource): Promise<Config> {
  const file = await readConfigFile(src.path)
  return resolveConfig({ flags: src.flags, env: src.env, file, ...(src.path === undefined ? {} : { fileName: src.path }) })
}
