/**
 * TLS settings in one place. A secure context is built once per certificate
 * generation (never per connection); live connections keep the context they
 * were made with, new ones get the current one.
 */
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls'
import { randomBytes } from 'node:crypto'
import type { OwnSvid } from '../identity/svid.js'
import type { TrustBundle } from '../identity/bundle.js'
import { PeerVerifier } from './peer.js'

/** TLS 1.2 minimum, 1.3 preferred (OpenSSL negotiates the highest both sides allow). */
export const MIN_TLS_VERSION = 'TLSv1.2'

/** One generation of our TLS material: own SVID, trust bundle, contexts and verifier. */
export interface TlsState {
  readonly svid: OwnSvid
  readonly bundle: TrustBundle
  /** Options for tls.Server#setSecureContext and tls.createServer. */
  readonly serverOptions: SecureContextOptions
  /** Client-side context for outbound connections. */
  readonly clientContext: SecureContext
  readonly verifier: PeerVerifier
}

/** Build a TLS state from an SVID and bundle. */
export function buildTlsState (svid: OwnSvid, bundle: TrustBundle): TlsState {
  const serverOptions: SecureContextOptions = {
    cert: svid.certPem,
    key: svid.keyPem,
    ca: bundle.pem,
    minVersion: MIN_TLS_VERSION,
    // Session-ticket keys of this generation only (session-cache.ts): a new leaf or
    // bundle refuses every ticket issued before it. Explicit rather than relying on
    // Node giving each new secure context fresh keys.
    ticketKeys: randomBytes(48)
  }
  return {
    svid,
    bundle,
    serverOptions,
    clientContext: createSecureContext(serverOptions),
    verifier: new PeerVerifier(bundle)
  }
}
