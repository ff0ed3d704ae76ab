/**
 * The configuration as it may be shown: on the admin endpoint (GET /config),
 * by `run --dry-run`, in any log line. Secrets are replaced by `[redacted]`
 * where their field exists: today the Consul ACL token (from --consul-token or
 * CONSUL_HTTP_TOKEN; a token file is named by its path, never read here).
 * Pure: a copy, the Config itself is left as it is.
 */
import type { Config } from './types.js'

/** What a secret field shows (the same word as the log's, log.ts). */
export const REDACTED = '[redacted]'

/** `config` with every secret replaced by REDACTED. */
export function publicConfig (config: Config): Config {
  const p = config.plane
  if (p.kind !== 'consul' || p.token === null) return config
  return { ...config, plane: { ...p, token: REDACTED } }
}
