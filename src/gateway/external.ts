/**
 * A terminating gateway's external targets: `--service name=host:port[,tls][,ca=file][,sni=name]`
 * parsed (pure), and one connection to a target, in plain TCP or in TLS
 * verified against the operator's CA file (or the system roots) with the
 * name they gave. Only these targets exist: the gateway has no way to
 * connect anywhere else (no open relay).
 */
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import { isIP, type Socket } from 'node:net'
import type { HostPort } from '../core/config/types.js'
import { ConfigError, PeerIdentityError, ignoreError, toError } from '../core/errors.js'
import { parseHostPort } from '../core/config/parse.js'
import { MIN_TLS_VERSION } from '../tls/context.js'
import { dial } from '../net/dial.js'
import { handshakeDeadline } from '../dataplane/handshake.js'

/** One external service a terminating gateway represents. */
export interface ExternalSpec {
  readonly service: string
  readonly target: HostPort
  /** null: plain TCP. `caFile` null: the system roots; `client` the certificate presented to the external service, if it asks for one. */
  readonly tls: { readonly caFile: string | null, readonly servername: string, readonly client: { readonly certFile: string, readonly keyFile: string } | null } | null
  /** The represented service's SVID files, instead of the control plane's (both or neither). */
  readonly certFile: string | null
  readonly keyFile: string | null
}

const NAME = /^[a-zA-Z0-9]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?$/
const FORM = '<service>=<host:port>[,tls][,ca=<file>][,sni=<name>][,client-cert=<file>,client-key=<file>][,cert=<file>,key=<file>]'

/** Parse one `--service` value; a ConfigError names the flag and the form. */
export function parseExternal (spec: string, flag = '--service'): ExternalSpec {
  const [head, ...opts] = spec.split(',')
  const m = /^([^=]+)=(.+)$/.exec(head ?? '')
  if (m === null) throw new ConfigError(flag, `${JSON.stringify(spec)} is not ${FORM} (e.g. legacy-db=10.0.0.9:5432)`)
  const service = m[1]!
  if (!NAME.test(service)) throw new ConfigError(flag, `${JSON.stringify(service)} is not a valid service name (letters, digits, '-' and '_', at most 63)`)
  const target = parseHostPort(m[2]!, `${flag} ${service}`)
  if (target.host === '0.0.0.0' || target.port === 0) throw new ConfigError(flag, `${service}: ${m[2]!} is not an address to connect to; give the external service's host and port`)
  let tls = false
  const kv = new Map<string, string>()
  for (const o of opts) {
    if (o === 'tls') { tls = true; continue }
    const p = /^(ca|sni|cert|key|client-cert|client-key)=(.+)$/.exec(o)
    if (p === null) throw new ConfigError(flag, `${service}: unknown option ${JSON.stringify(o)}; the form is ${FORM}`)
    if (kv.has(p[1]!)) throw new ConfigError(flag, `${service}: ${p[1]!}= given twice`)
    kv.set(p[1]!, p[2]!)
  }
  if (!tls && ['ca', 'sni', 'client-cert', 'client-key'].some(k => kv.has(k))) throw new ConfigError(flag, `${service}: ca=, sni= and client-cert=/client-key= are for a TLS target; add ",tls" (or drop them for plain TCP)`)
  if (kv.has('client-cert') !== kv.has('client-key')) throw new ConfigError(flag, `${service}: client-cert= and client-key= go together (the certificate the gateway presents to ${target.host})`)
  if (kv.has('cert') !== kv.has('key')) throw new ConfigError(flag, `${service}: cert= and key= go together (the SVID ${service} presents to sidecars)`)
  const servername = kv.get('sni') ?? (isIP(target.host) === 0 ? target.host : undefined)
  if (tls && servername === undefined) throw new ConfigError(flag, `${service}: ${target.host} is an IP address; give the name its certificate carries with sni=<name>`)
  const client = kv.has('client-cert') ? { certFile: kv.get('client-cert')!, keyFile: kv.get('client-key')! } : null
  return { service, target, tls: tls ? { caFile: kv.get('ca') ?? null, servername: servername!, client } : null, certFile: kv.get('cert') ?? null, keyFile: kv.get('key') ?? null }
}

/** What connecting to a TLS target needs, the CA file read once at start. */
export interface ExternalTarget {
  readonly spec: ExternalSpec
  /** PEM of `spec.tls.caFile`, undefined for the system roots. */
  readonly caPem: string | undefined
  /** PEM of `spec.tls.client`, when given. */
  readonly client?: { readonly certPem: string, readonly keyPem: string }
}

/** `host:port (tls servername)` for log lines. */
export function describe (t: ExternalSpec): string {
  return `${t.target.host}:${t.target.port}${t.tls === null ? '' : ` (tls ${t.tls.servername})`}`
}

/**
 * Connect to `t`: TCP within connectTimeoutMs, then for a TLS target the
 * handshake within handshakeTimeoutMs, the certificate verified (chain and
 * name, Node's checks, never switched off). Rejects with ConnectError or
 * PeerIdentityError (reason `external_tls_failed`).
 */
export async function connectExternal (t: ExternalTarget, timeouts: { connectTimeoutMs: number, handshakeTimeoutMs: number }, signal?: AbortSignal): Promise<Socket> {
  const tls = t.spec.tls
  if (tls === null) return await dial(t.spec.target, timeouts.connectTimeoutMs, undefined, signal)
  const open = (to: HostPort): TLSSocket => tlsConnect({
    host: to.host,
    port: to.port,
    servername: tls.servername,
    minVersion: MIN_TLS_VERSION,
    ...(t.caPem === undefined ? {} : { ca: t.caPem }),
    ...(t.client === undefined ? {} : { cert: t.client.certPem, key: t.client.keyPem })
  })
  const sock = await dial(t.spec.target, timeouts.connectTimeoutMs, open, signal)
  return await new Promise<Socket>((resolve, reject) => {
    const cancel = handshakeDeadline(sock, timeouts.handshakeTimeoutMs, describe(t.spec), signal)
    const onError = (err: Error): void => {
      cancel()
      sock.destroy()
      reject(new PeerIdentityError('external_tls_failed', `TLS with ${t.spec.service} at ${describe(t.spec)} failed: ${toError(err).message}`))
    }
    sock.once('error', onError)
    sock.once('secureConnect', () => {
      cancel()
      sock.off('error', onError)
      sock.on('error', ignoreError) // the relay reports what follows
      sock.allowHalfOpen = true
      resolve(sock)
    })
  })
}
