/**
 * gRPC's length-prefixed message framing over HTTP/2 (grpc/doc/PROTOCOL-HTTP2.md):
 * each message is a 1-byte compressed flag, a 4-byte big-endian length and the
 * message; HTTP/2 DATA frames cut that stream anywhere. Status codes by name
 * for messages people read. Pure.
 */

/** gRPC status codes (grpc/doc/statuscodes.md), for log lines and errors. */
export const GRPC_STATUS: Readonly<Record<number, string>> = {
  0: 'OK', 1: 'CANCELLED', 2: 'UNKNOWN', 3: 'INVALID_ARGUMENT', 4: 'DEADLINE_EXCEEDED', 5: 'NOT_FOUND',
  6: 'ALREADY_EXISTS', 7: 'PERMISSION_DENIED', 8: 'RESOURCE_EXHAUSTED', 9: 'FAILED_PRECONDITION', 10: 'ABORTED',
  11: 'OUT_OF_RANGE', 12: 'UNIMPLEMENTED', 13: 'INTERNAL', 14: 'UNAVAILABLE', 15: 'DATA_LOSS', 16: 'UNAUTHENTICATED'
}

/** The largest message accepted (gRPC's default receive limit is 4 MiB). */
export const MAX_GRPC_MESSAGE = 4 * 1024 * 1024

/** `msg` framed as one uncompressed gRPC message. */
export function grpcFrame (msg: Uint8Array): Buffer {
  const head = Buffer.alloc(5)
  head.writeUInt32BE(msg.length, 1)
  return Buffer.concat([head, msg])
}

/** Collects DATA chunks and yields whole messages; a compressed or oversized message is a thrown Error. */
export class GrpcDeframer {
  #pending: Buffer = Buffer.alloc(0)

  /** The messages completed by `chunk`, in order. */
  push (chunk: Uint8Array): Buffer[] {
    this.#pending = this.#pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.#pending, chunk])
    const out: Buffer[] = []
    while (this.#pending.length >= 5) {
      if (this.#pending[0] !== 0) throw new Error('a compressed gRPC message, though none was asked for (grpc-encoding identity)')
      const length = this.#pending.readUInt32BE(1)
      if (length > MAX_GRPC_MESSAGE) throw new Error(`a gRPC message of ${length} bytes, over the ${MAX_GRPC_MESSAGE}-byte limit`)
      if (this.#pending.length < 5 + length) break
      out.push(this.#pending.subarray(5, 5 + length))
      this.#pending = this.#pending.subarray(5 + length)
    }
    return out
  }

  /** Bytes of a message not yet complete (a stream that ends with some is truncated). */
  get buffered (): number { return this.#pending.length }
}

/** `grpc-message` is percent-encoded (PROTOCOL-HTTP2.md, "Status-Message"). */
export function decodeGrpcMessage (v: string | undefined): string {
  if (v === undefined) return ''
  try {
    return decodeURIComponent(v)
  } catch {
    return v
  }
}

/** "PERMISSION_DENIED (7): no identity issued" */
export function describeGrpcStatus (code: number, message: string): string {
  return `${GRPC_STATUS[code] ?? 'status'} (${code})${message === '' ? '' : `: ${message}`}`
}
