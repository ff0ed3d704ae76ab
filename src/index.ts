/**
 * The library entry (package.json "main"): the stable public API. Everything
 * else under src/ is internal and may move between releases.
 *
 *   const config = resolveConfig({ flags, env: process.env, file: null })
 *   const sidecar = new Sidecar({ config, logger: createLogger(), metrics: new MetricsRegistry() })
 *   await sidecar.start()
 *
 * Errors carry a stable `code` (ERR; every code is described in docs/errors.md).
 */
export { Sidecar } from './sidecar/sidecar.js'
export type { SidecarOptions, SidecarState, SidecarAddresses } from './sidecar/sidecar.js'

export { resolveConfig } from './core/config/resolve.js'
export type { ConfigSources } from './core/config/resolve.js'
export type { Config, Endpoint, HostPort, PlaneConfig, Timeouts, UnixSocket, UpstreamConfig } from './core/config/types.js'

export {
  ERR,
  MeshProxyError,
  ConfigError,
  ListenError,
  CertificateError,
  SpiffeIdError,
  IntentionError,
  HandshakeTimeoutError,
  ConnectError,
  PeerIdentityError,
  ConsulError
} from './core/errors.js'
export type { ErrorCode } from './core/errors.js'

export { createLogger } from './log.js'
export type { Logger, LoggerOptions } from './log.js'

export { MetricsRegistry, METRICS } from './metrics/metrics.js'
export type { Metrics } from './metrics/metrics.js'
