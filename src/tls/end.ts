/**
 * Did the TLS peer end its stream with close_notify, or did its TCP connection
 * just close (a killed sidecar, a dead host, a middlebox)? RFC 8446 §6.1: only
 * close_notify is an end of data; a bare TCP FIN is a truncation. Node emits
 * 'end' for both and has no API that tells them apart (TLSWrap::OnStreamRead
 * and ClearOut both emit UV_EOF; SSL_get_shutdown is not exposed), so this
 * module looks at the one moment they differ: when the EOF reaches the TLS
 * socket's onread callback.
 *
 * - close_notify is found by OpenSSL while decrypting bytes that arrived: the
 *   EOF is emitted during a read of positive length, while libuv is still
 *   reading the TCP socket (`readStart()` on it answers EALREADY), or while
 *   JS itself had paused reading (libuv reads nothing then, so no TCP EOF can
 *   have been seen).
 * - A bare TCP close is an EOF from libuv, which stops reading on EOF:
 *   `readStart()` succeeds (and is undone at once).
 * - Where the EOF comes after libuv stopped, one more tell: exactly one
 *   close_notify record of ciphertext arrived since the last plaintext.
 *
 * This holds on Node 20, 22 and 24 (test/tls/end.test.ts: close_notify in the
 * same segment as the last data with the FIN held back, a paused reader, TLS 1.2
 * and 1.3, openssl on the other side). What differs is a sender: a Node 20 or 22
 * server that end()s in the same tick as its handshake's end sends no
 * close_notify at all (Node 24 does), which an earlier probe took for a reader
 * that cannot tell. Our sidecars never end that early (the app is dialled after
 * the handshake). The probe (probe.ts) still checks the verdicts at start, and
 * where they come out wrong, tracking stays off: an EOF is then taken as clean,
 * as Node reports it; a reset is still an abort.
 *
 * The internals used (`_handle.onread`, `_handle._parent`: the TCP handle, its
 * `readStart`/`readStop`/`bytesRead`, `_handle.reading`) exist in Node 20, 22
 * and 24; `tls-probe.ts` checks at start that the verdicts come out right on the
 * running Node, and `trackTlsEnd` does nothing where they do not. Cost: one
 * closure call and one counter read per chunk read; nothing is copied.
 */
import type { Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { constants } from 'node:os'

/** libuv's answer to readStart on a stream that is already reading. */
const UV_EALREADY = -constants.errno.EALREADY

/** The TCP handle under a TLSWrap, as far as this module uses it. */
interface TcpHandle {
  readStart (): number
  readStop (): number
  readonly bytesRead: number
}
interface TlsHandle {
  onread: (ab?: ArrayBuffer) => unknown
  readonly reading?: boolean
  readonly _parent?: TcpHandle
}

/** Per tracked socket: the verdict (undefined until the EOF), and ciphertext read as of the last plaintext. */
interface EndState { clean: boolean | undefined, cipherAtData: number }

const states = new WeakMap<Socket, EndState>()
let enabled = false

/** Turn tracking on or off for sockets tracked from now on (tls-probe.ts decides, once per process). */
export function enableTlsEndTracking (on: boolean): void {
  enabled = on
}

/** Whether this process tells close_notify from a bare TCP close. */
export function tlsEndTracking (): boolean {
  return enabled
}

/** Bytes of one close_notify record for the connection's protocol and cipher; -1 when unknown. */
export function closeNotifyBytes (protocol: string | null, cipher: string | undefined): number {
  if (protocol === 'TLSv1.3') return cipher?.includes('CCM_8') === true ? 16 : 24 // header 5 + alert 2 + type 1 + tag
  if (protocol === 'TLSv1.2' && cipher !== undefined) {
    if (cipher.includes('GCM')) return 31 // header 5 + explicit nonce 8 + alert 2 + tag 16
    if (cipher.includes('CHACHA20')) return 23 // header 5 + alert 2 + tag 16
  }
  return -1
}

/**
 * Start watching how `sock` (an established TLS socket) ends. Call it before
 * any data is read. Returns false when this process does not track ends (the
 * probe failed, or the socket lacks the handles), and the EOF is then taken
 * as clean, as Node reports it.
 */
export function trackTlsEnd (sock: TLSSocket, force = false): boolean {
  if (!enabled && !force) return false
  const h = (sock as TLSSocket & { _handle?: TlsHandle })._handle
  const tcp = h?._parent
  if (h === undefined || typeof h.onread !== 'function' || tcp === undefined || typeof tcp.readStart !== 'function' || typeof tcp.readStop !== 'function' || typeof tcp.bytesRead !== 'number') return false
  const state: EndState = { clean: undefined, cipherAtData: tcp.bytesRead }
  states.set(sock, state)
  const onread = h.onread
  h.onread = function (this: unknown, ab?: ArrayBuffer) {
    // No buffer: an EOF or a read error (Node's onStreamRead). Only an 'end' consults the verdict.
    if (ab === undefined) {
      if (state.clean === undefined) state.clean = judge(sock, h, tcp, state.cipherAtData)
    } else {
      state.cipherAtData = tcp.bytesRead
    }
    return onread.call(this, ab)
  }
  return true
}

function judge (sock: TLSSocket, h: TlsHandle, tcp: TcpHandle, cipherAtData: number): boolean {
  if (h.reading === false) return true
  const r = tcp.readStart()
  if (r === UV_EALREADY) return true
  if (r === 0) tcp.readStop() // it had stopped at the TCP EOF: leave it so
  const tail = tcp.bytesRead - cipherAtData
  return tail > 0 && tail === closeNotifyBytes(sock.getProtocol(), sock.getCipher()?.standardName)
}

/**
 * After 'end' on `sock`: false when its TLS peer's TCP connection closed
 * without close_notify (a truncation). True for a close_notify, for sockets
 * that are not tracked, and for plain TCP sockets (a FIN is their clean end).
 */
export function endedCleanly (sock: Socket): boolean {
  return states.get(sock)?.clean !== false
}
