/** Every default in one table; units are in the names. */
import type { Timeouts } from './types.js'

/** Default timeouts (ms). idle 1 h and lifetime 0 (off) follow Envoy's tcp_proxy defaults. */
export const DEFAULT_TIMEOUTS: Timeouts = Object.freeze({
  handshakeTimeoutMs: 10_000,
  connectTimeoutMs: 5_000,
  idleTimeoutMs: 3_600_000,
  closeTimeoutMs: 30_000,
  maxConnLifetimeMs: 0,
  drainTimeoutMs: 15_000
})

/** Public listener when only --to is given: Consul's default sidecar port, on every interface. */
export const DEFAULT_LISTEN = '0.0.0.0:21000'
/** Where an upstream's local listener binds when only a port is given. */
export const DEFAULT_UPSTREAM_BIND_HOST = '127.0.0.1'
export const DEFAULT_NAMESPACE = 'default'
export const DEFAULT_DATACENTER = 'dc1'
export const DEFAULT_LOG_LEVEL = 'info'
/** Trust domain of certs-dev/ and of `demo`. */
export const DEV_TRUST_DOMAIN = '11111111-2222-3333-4444-555555555555.consul'
/** Admin listener: loopback only by default (Envoy's admin is 127.0.0.1 too). */
export const DEFAULT_ADMIN = '127.0.0.1:19000'
