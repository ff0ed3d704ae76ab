/**
 * `mesh-proxy run`: flags (+ --config file) -> resolveConfig() -> the runtime
 * (runtime/serve.ts), which serves it until a signal. `--dry-run` prints the
 * resolved configuration instead.
 */
import { publicConfig } from '../core/config/public.js'
import { resolveConfig } from '../core/config/resolve.js'
import { loadConfig, readConfigFile, type ConfigSource } from '../runtime/config-file.js'
import { serve, type RunHooks } from '../runtime/serve.js'

export type { RunHooks }

/** Run a sidecar until a signal; resolves with the exit code. */
export async function runSidecar (flags: Record<string, unknown>, hooks: RunHooks = {}): Promise<number> {
  const path = flags.config as string | undefined
  const source: ConfigSource = { flags, env: process.env, ...(path === undefined ? {} : { path }) }
  const config = await loadConfig(source)
  if (flags.dryRun === true) {
    process.stdout.write(JSON.stringify(publicConfig(config), null, 2) + '\n')
    return 0
  }
  return await serve(config, source, hooks)
}

/** `config validate <file>`: resolve the file alone, as `run --config file` would. */
export async function validateConfigFile (path: string, say: (l: string) => void): Promise<number> {
  const file = await readConfigFile(path)
  resolveConfig({ flags: {}, env: {}, file, fileName: path })
  say(`${path}: valid`)
  return 0
}
