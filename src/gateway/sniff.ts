/**
 * Wait for a client's whole ClientHello on a plain TCP socket and read its
 * SNI (core/client-hello.ts), under the handshake deadline. The bytes are
 * kept as they came, to be relayed unmodified: the gateway terminates
 * nothing. Afterwards the socket is paused with any later bytes left unread
 * for the relay.
 */
import type { Socket } from 'node:net'
import { parseClientHello, type HelloReason } from '../core/client-hello.js'

/** Why no ClientHello was read (the gateway's refusal reasons besides the parser's). */
export type SniffReason = HelloReason | 'handshake_timeout' | 'closed_before_client_hello'

/** The outcome: the bytes read so far and the SNI, or why not. */
export type Sniffed =
  | { readonly ok: true, readonly bytes: Buffer, readonly sni: string | null }
  | { readonly ok: false, readonly reason: SniffReason, readonly detail: string }

/** Read `sock` until its ClientHello is whole, invalid, or `timeoutMs` after now; never rejects. */
export function sniffClientHello (sock: Socket, timeoutMs: number): Promise<Sniffed> {
  return new Promise(resolve => {
    const chunks: Buffer[] = []
    let have = 0
    let needBytes = 1
    const done = (r: Sniffed): void => {
      clearTimeout(timer)
      sock.off('data', onData)
      sock.off('end', onEnd)
      sock.off('close', onEnd)
      sock.pause()
      resolve(r)
    }
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk)
      have += chunk.length
      // Parsed again only once enough has come to change the verdict (not per byte of a dribbling client).
      if (have < needBytes) return
      const bytes = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, have)
      chunks.length = 0
      chunks.push(bytes)
      const r = parseClientHello(bytes)
      if (r.state === 'incomplete') needBytes = r.needBytes
      else if (r.state === 'invalid') done({ ok: false, reason: r.reason, detail: r.detail })
      else done({ ok: true, bytes, sni: r.sni })
    }
    const onEnd = (): void => { done({ ok: false, reason: 'closed_before_client_hello', detail: `the client closed after ${have} bytes, before a whole ClientHello` }) }
    const timer = setTimeout(() => {
      done({ ok: false, reason: 'handshake_timeout', detail: `no whole ClientHello within handshakeTimeoutMs=${timeoutMs} (${have} bytes came)` })
    }, timeoutMs)
    sock.on('data', onData)
    sock.once('end', onEnd)
    sock.once('close', onEnd)
  })
}
