/**
 * The configuration as it may be shown: on the admin endpoint (GET /config),
 * by `run --dry-run`, in any log line. Secrets are replaced by `[redacted]`
 * where their field exists: today the Consul ACL token (from --consul-token or
 * CONSUL_HTTP_TOKEN; a token file is named by its path, never read here).
 * Pure: a copy, the Config itself is left as it is.
 */
import type { Config } from './types.js'

/** The Config as shown: the identity form by its name (consul, kubernetes or the template), the socket mode in octal (`0660`). */
export type PublicConfig = Omit<Config, 'identityForm' | 'unixSocketMode'> & { readonly identityForm: string, readonly unixSocketMode: string }

/** What a secret field shows (the same word as the log's, log.ts). */
export const REDACTED = '[redacted]'

/** `config` with every secret replaced by REDACTED. */
export function publicConfig (config: Config): PublicConfig {
  const p = config.plane
  const shown = { ...config, identityForm: config.identityForm.name, unixSocketMode: config.unixSocketMode.toString(8).padStart(4, '0') }
  if (p.kind !== 'consul' || p.token === null) return shown
  return { ...shown, plane: { ...p, token: REDACTED } }
}
