/**
 * TLS settings in one place. A secure context is built once per certificate
 * generation (never per connection); live connections keep the context they
 * were made with, new ones get the current one.
 */
import { createSecureContext, DEFAULT_CIPHERS, type SecureContext, type SecureContextOptions } from 'node:tls'
import { createHash, randomBytes } from 'node:crypto'
import type { OwnSvid } from '../core/identity/svid.js'
import type { TrustBundle } from '../core/identity/bundle.js'
import { PeerVerifier } from './peer.js'
import { PskTable } from './psk.js'

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
  /** The inbound's PSKs made under this generation (psk.ts). */
  readonly psks: PskTable
  /**
   * Names this generation's material (leaf and bundle) across processes: --workers
   * siblings on the same files have the same one, so they may share PSKs (psk.ts).
   */
  readonly generation: string
  /** Trust domains besides ours whose peers this generation accepts (their roots are in `bundle`): --federate, or the Workload API's federated bundles. */
  readonly federated: ReadonlySet<string>
}

/**
 * Node's default suites with the TLS 1.3 SHA-256 ones first: a PSK from Node's
 * callbacks is bound to SHA-256 (psk.ts), and the server's order decides. So
 * connections between sidecars run TLS_AES_128_GCM_SHA256, the suite Envoy
 * (BoringSSL) and Go prefer too. TLS 1.2 keeps Node's list and order.
 */
export const TLS_CIPHERS = ['TLS_AES_128_GCM_SHA256', 'TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_256_GCM_SHA384',
  ...DEFAULT_CIPHERS.split(':').filter(c => !c.startsWith('TLS_'))].join(':')

/** Build a TLS state from an SVID and bundle (holding the roots of the `federated` trust domains too). */
export function buildTlsState (svid: OwnSvid, bundle: TrustBundle, federated: Iterable<string> = []): TlsState {
  const serverOptions: SecureContextOptions = {
    cert: svid.certPem,
    key: svid.keyPem,
    ca: bundle.pem,
    minVersion: MIN_TLS_VERSION,
    // Session-ticket keys of this generation only (session-cache.ts): a new leaf or
    // bundle refuses every ticket issued before it. Explicit rather than relying on
    // Node giving each new secure context fresh keys.
    ticketKeys: randomBytes(48),
    ciphers: TLS_CIPHERS
  }
  return {
    svid,
    bundle,
    serverOptions,
    clientContext: createSecureContext(serverOptions),
    verifier: new PeerVerifier(bundle),
    psks: new PskTable(),
    generation: createHash('sha256').update(svid.certPem).update('\n').update(bundle.pem).digest('hex'),
    federated: new Set(federated)
  }
}
