/**
 * Typed errors with stable codes (the undici lib/core/errors.js habit): callers
 * branch on `code`, people read `message`, and `cause` keeps the underlying error.
 * Messages carry the facts (address, timeout, file) and, where there is one, the fix.
 */

/** Base class of every error mesh-proxy throws on purpose. */
export class MeshProxyError extends Error {
  /** Stable, documented code, e.g. `MP_ERR_HANDSHAKE_TIMEOUT`. */
  readonly code: string
  constructor (code: string, message: string, options?: { cause?: unknown }) {
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
    super('MP_ERR_CONFIG', `${field}: ${message}`, options)
    this.field = field
  }
}

/** A certificate, key or bundle could not be loaded or does not satisfy the SVID rules. */
export class CertificateError extends MeshProxyError {
  constructor (message: string, options?: { cause?: unknown }) {
    super('MP_ERR_CERTIFICATE', message, options)
  }
}

/** A SPIFFE ID or trust domain string is malformed (one message per rule, as go-spiffe). */
export class SpiffeIdError extends MeshProxyError {
  constructor (message: string) {
    super('MP_ERR_SPIFFE_ID', message)
  }
}

/** An intentions file or intention is invalid. */
export class IntentionError extends MeshProxyError {
  constructor (message: string, options?: { cause?: unknown }) {
    super('MP_ERR_INTENTION', message, options)
  }
}

/** The TLS handshake did not finish within handshakeTimeoutMs. */
export class HandshakeTimeoutError extends MeshProxyError {
  constructor (timeoutMs: number, peer: string) {
    super('MP_ERR_HANDSHAKE_TIMEOUT', `TLS handshake with ${peer} did not complete within handshakeTimeoutMs=${timeoutMs}`)
  }
}

/** A TCP connect to the app or an upstream instance failed or timed out. */
export class ConnectError extends MeshProxyError {
  constructor (message: string, options?: { cause?: unknown }) {
    super('MP_ERR_UPSTREAM_CONNECT', message, options)
  }
}

/** The peer's identity is not acceptable (SVID rules, trust domain, expected service). */
export class PeerIdentityError extends MeshProxyError {
  /** Short machine-readable reason, used as a metric label. */
  readonly reason: string
  constructor (reason: string, message: string) {
    super('MP_ERR_PEER_IDENTITY', message)
    this.reason = reason
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
