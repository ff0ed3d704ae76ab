/**
 * What this Node's TLS does, found out once per process at start by trying it
 * (never by version string): two connections over loopback between a probe
 * server and client, with throwaway certificates from a root through an
 * intermediate. No peer, file or setting of the sidecar is involved.
 *
 * - x509KeepsChain: after `getPeerX509Certificate()`, does
 *   `getPeerCertificate(true)` still report the issuer chain the peer sent?
 *   Node 24 does; Node 20 and 22 shorten it to the leaf, which made a valid
 *   chain through an intermediate look as if it did not reach our roots.
 *   Without it, peer.ts reads the detailed chain first on every new peer.
 * - endTracking: does tls-end.ts tell a close_notify from a bare TCP close in
 *   both directions? Without it, an EOF from a peer is taken as clean.
 *
 * The slower path is logged once at debug by the caller.
 */
import { createServer, connect, type TLSSocket, type DetailedPeerCertificate } from 'node:tls'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { PROBE_CHAIN, PROBE_KEY, PROBE_ROOT } from './probe-certs.js'
import { endedCleanly, enableTlsEndTracking, trackTlsEnd } from './end.js'

/** What the probe found. */
export interface TlsCapabilities {
  readonly x509KeepsChain: boolean
  readonly endTracking: boolean
}

/** Until a probe has run: the paths that are correct on every Node. */
let current: TlsCapabilities = { x509KeepsChain: false, endTracking: false }
let probing: Promise<TlsCapabilities> | undefined

/** The capabilities in force (the safe ones until probeTls has finished). */
export function tlsCapabilities (): TlsCapabilities {
  return current
}

/** Whether a probe has been started in this process. */
export function tlsProbed (): boolean {
  return probing !== undefined
}

/** A probe that has not finished by then counts as finding nothing (it normally takes a few ms). */
export const PROBE_TIMEOUT_MS = 5000

/** Probe once per process (later calls share the first); never rejects. */
export function probeTls (): Promise<TlsCapabilities> {
  const none: TlsCapabilities = { x509KeepsChain: false, endTracking: false }
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<TlsCapabilities>(resolve => { timer = setTimeout(() => resolve(none), PROBE_TIMEOUT_MS).unref() })
  probing ??= Promise.race([run(), timeout]).catch(() => none).then(c => {
    clearTimeout(timer)
    current = c
    enableTlsEndTracking(c.endTracking)
    return c
  })
  return probing
}

async function run (): Promise<TlsCapabilities> {
  const opts = { cert: PROBE_CHAIN, key: PROBE_KEY, ca: PROBE_ROOT }
  // Per connection, what the server saw and how each side judged the other's end.
  const seen: Array<{ chainLength: number, serverJudged: Promise<boolean> }> = []
  const server = createServer({ ...opts, requestCert: true, rejectUnauthorized: true, allowHalfOpen: true }, (s: TLSSocket) => {
    s.getPeerX509Certificate()
    let c: DetailedPeerCertificate | undefined = s.getPeerCertificate(true)
    let chainLength = 0
    for (; c !== undefined && chainLength < 5; chainLength++) c = c.issuerCertificate === c ? undefined : c.issuerCertificate
    trackTlsEnd(s, true)
    s.on('error', () => {})
    const serverJudged = once(s, 'end').then(() => endedCleanly(s))
    const n = seen.push({ chainLength, serverJudged })
    // First connection: a clean end (close_notify, then FIN). Second: the TCP connection closes bare.
    // Both only once the client has spoken: Node 20 and 22 send no close_notify for an end()
    // in the same tick as the handshake's end, and the probe must judge the reader, not that.
    s.once('data', () => {
      if (n === 1) s.end('x')
      else s.write('x', () => s.destroy())
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as AddressInfo).port
  try {
    const clientJudged: boolean[] = []
    for (let k = 0; k < 2; k++) {
      const c = connect({ ...opts, host: '127.0.0.1', port, checkServerIdentity: () => undefined })
      c.on('error', () => {})
      await once(c, 'secureConnect')
      trackTlsEnd(c, true)
      c.resume()
      c.write('x')
      await once(c, 'end')
      clientJudged.push(endedCleanly(c))
      c.end() // a clean end towards the server (Node may have ended it already: allowHalfOpen is off)
      if (c.closed !== true) await once(c, 'close')
    }
    const serverJudged = await seen[0]!.serverJudged
    return {
      x509KeepsChain: seen[0]!.chainLength >= 3,
      endTracking: clientJudged[0] === true && clientJudged[1] === false && serverJudged
    }
  } finally {
    server.close()
  }
}
