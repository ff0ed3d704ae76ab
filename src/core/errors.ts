/**
 * Typed errors with stable codes (the undici lib/core/errors.js habit): callers
 * branch on `code`, people read `message`, and `cause` keeps the underlying error.
 * Messages carry the facts (address, timeout, file) and, where there is one, the fix.
 * Every code and every error class lives here; docs/errors.md lists each code,
 * what it means and what to do (test/core/errors.test.ts keeps the two in step).
 */

/** Every code mesh-proxy's own errors carry. Stable: callers and scripts branch on them. */
export const ERR = {
  /** A flag, env var or config file field is missing or wrong (also: a listener cannot bind). */
  CONFIG: 'MP_ERR_CONFIG',
  /** A command was used wrongly in a way the option parser cannot see. */
  USAGE: 'MP_ERR_USAGE',
  /** A certificate, key or bundle could not be loaded or breaks the SVID rules. */
  CERTIFICATE: 'MP_ERR_CERTIFICATE',
  /** A SPIFFE ID or trust domain string is malformed. */
  SPIFFE_ID: 'MP_ERR_SPIFFE_ID',
  /** An intentions file or intention is invalid. */
  INTENTION: 'MP_ERR_INTENTION',
  /** A TLS handshake did not finish within handshakeTimeoutMs. */
  HANDSHAKE_TIMEOUT: 'MP_ERR_HANDSHAKE_TIMEOUT',
  /** A TCP connect to the app or an upstream instance failed or timed out. */
  UPSTREAM_CONNECT: 'MP_ERR_UPSTREAM_CONNECT',
  /** The peer's identity is not acceptable. */
  PEER_IDENTITY: 'MP_ERR_PEER_IDENTITY',
  /** A mesh dir file lock is held by another process. */
  LOCK: 'MP_ERR_LOCK',
  /** The Consul agent could not be reached or did not answer in time. */
  CONSUL_UNREACHABLE: 'MP_ERR_CONSUL_UNREACHABLE',
  /** The Consul agent answered, but with an error status or a response that fails validation. */
  CONSUL_RESPONSE: 'MP_ERR_CONSUL_RESPONSE',
  /** The SPIFFE Workload API (the SPIRE agent's socket) could not be reached, or ended the stream. */
  WORKLOAD_API_UNREACHABLE: 'MP_ERR_WORKLOAD_API_UNREACHABLE',
  /** The Workload API answered with an error status (no identity for this workload, say) or a response that fails validation. */
  WORKLOAD_API_RESPONSE: 'MP_ERR_WORKLOAD_API_RESPONSE'
} as const

/** One of {@link ERR}'s values. */
export type ErrorCode = typeof ERR[keyof typeof ERR]

/** Codes of errors that are the caller's to fix: the CLI exits 2 on them (1 on every other error). */
export const USAGE_ERROR_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([ERR.CONFIG, ERR.USAGE, ERR.INTENTION, ERR.LOCK])

/** Base class of every error mesh-proxy throws on purpose. */
export class MeshProxyError extends Error {
  /** Stable, documented code, e.g. `MP_ERR_HANDSHAKE_TIMEOUT` (see {@link ERR}). */
  readonly code: ErrorCode
  constructor (code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = new.target.name
  }
}

/** A configuration value (flag, env var, file field) is missing or wrong. */
export class ConfigError extends MeshProxyError {
  /** The flag or JSON path the problem is about, e.g. `--upstream` or `timeouts.idleTimeoutMs`. */
  readonly field: string
  constructor (field: string, message: string, options?: { cause?: unknown }) {
    super(ERR.CONFIG, `${field}: ${message}`, options)
    this.field = field
  }
}

/** A certificate, key or bundle could not be loaded or does not satisfy the SVID rules. */
export class CertificateError extends MeshProxyError {
  constructor (message: string, options?: { cause?: unknown }) {
    super(ERR.CERTIFICATE, message, options)
  }
}

/** A SPIFFE ID or trust domain string is malformed (one message per rule, as go-spiffe). */
export class SpiffeIdError extends MeshProxyError {
  constructor (message: string) {
    super(ERR.SPIFFE_ID, message)
  }
}

/** An intentions file or intention is invalid. */
export class IntentionError extends MeshProxyError {
  constructor (message: string, options?: { cause?: unknown }) {
    super(ERR.INTENTION, message, options)
  }
}

/** The TLS handshake did not finish within handshakeTimeoutMs. */
export class HandshakeTimeoutError extends MeshProxyError {
  constructor (timeoutMs: number, peer: string) {
    super(ERR.HANDSHAKE_TIMEOUT, `TLS handshake with ${peer} did not complete within handshakeTimeoutMs=${timeoutMs}`)
  }
}

/** A TCP connect to the app or an upstream instance failed or timed out. */
export class ConnectError extends MeshProxyError {
  constructor (message: string, options?: { cause?: unknown }) {
    super(ERR.UPSTREAM_CONNECT, message, options)
  }
}

/** The peer's identity is not acceptable (SVID rules, trust domain, expected service). */
export class PeerIdentityError extends MeshProxyError {
  /** Short machine-readable reason, used as a metric label. */
  readonly reason: string
  constructor (reason: string, message: string) {
    super(ERR.PEER_IDENTITY, message)
    this.reason = reason
  }
}

/** A listener could not bind (its field is the listener's flag). */
export class ListenError extends ConfigError {
  constructor (flag: string, why: string, cause: unknown) {
    super(flag, `cannot listen: ${why}`, { cause })
  }
}

/**
 * Errors from the Consul agent or on the way to it. The code says which:
 * `MP_ERR_CONSUL_UNREACHABLE` (no connection, or no answer in time: the
 * control plane serves from its cache) or `MP_ERR_CONSUL_RESPONSE` (the agent
 * answered, wrongly: the previous good state stays).
 */
export class ConsulError extends MeshProxyError {
  constructor (message: string, options?: { cause?: unknown, unreachable?: boolean }) {
    const { unreachable, ...errorOptions } = options ?? {}
    super(unreachable === true ? ERR.CONSUL_UNREACHABLE : ERR.CONSUL_RESPONSE, message, options === undefined ? undefined : errorOptions)
  }
}

/**
 * Errors from the SPIFFE Workload API or on the way to it, as for Consul:
 * `MP_ERR_WORKLOAD_API_UNREACHABLE` (no connection, or the stream ended: the
 * sidecar keeps its current SVID and reconnects) or
 * `MP_ERR_WORKLOAD_API_RESPONSE` (an error status or a bad response: the
 * previous good state stays).
 */
export class WorkloadApiError extends MeshProxyError {
  constructor (message: string, options?: { cause?: unknown, unreachable?: boolean }) {
    const { unreachable, ...errorOptions } = options ?? {}
    super(unreachable === true ? ERR.WORKLOAD_API_UNREACHABLE : ERR.WORKLOAD_API_RESPONSE, message, options === undefined ? undefined : errorOptions)
  }
}

/** Narrow an unknown thrown value to an Error. */
export function toError (err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err))
}

/** The errno-style code of an unknown error, if it has one. */
export function errorCode (err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code
    return typeof code === 'string' ? code : undefined
  }
  return undefined
}

const ROUTINE_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED', 'ERR_SOCKET_CLOSED'])

/**
 * Peers hang up: resets and broken pipes are routine on a proxy (ghostunnel
 * isClosedConnectionError). Callers count them and log at debug, not warn.
 */
export function isRoutineCloseError (err: unknown): boolean {
  const code = errorCode(err)
  return code !== undefined && ROUTINE_CODES.has(code)
}

/**
 * An 'error' listener for a socket whose errors are reported another way (by
 * the relay, or by the refusal that follows): without one, a peer's reset
 * would be an uncaught 'error' and end the process.
 */
export function ignoreError (): void {}
