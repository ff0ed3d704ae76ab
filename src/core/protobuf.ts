/**
 * The least of the protobuf wire format (protobuf.dev/programming-guides/encoding)
 * that the few SPIFFE Workload API messages need: read the fields of a
 * message (varint and length-delimited values; fixed 32/64-bit values are
 * skipped), and write length-delimited fields. Values are views of the input,
 * never copies. Pure; a malformed message is a thrown ProtobufError.
 */

/** A message that is not valid protobuf: truncated, an overlong varint, a wire type we cannot skip. */
export class ProtobufError extends Error {
  constructor (message: string) {
    super(`malformed protobuf message: ${message}`)
    this.name = 'ProtobufError'
  }
}

/** Wire types (encoding guide, "Message Structure"). */
export const WIRE = { varint: 0, i64: 1, len: 2, i32: 5 } as const

/** One field as it appears on the wire; `bytes` is set for length-delimited fields, `value` for varints. */
export interface WireField {
  readonly number: number
  readonly wireType: number
  readonly bytes?: Uint8Array
  readonly value?: number
}

/** Every field of `msg`, in order (a repeated field appears once per element). */
export function readFields (msg: Uint8Array): WireField[] {
  const fields: WireField[] = []
  let at = 0
  while (at < msg.length) {
    const [key, afterKey] = readVarint(msg, at)
    const number = Math.floor(key / 8)
    const wireType = key % 8
    if (number === 0) throw new ProtobufError(`field number 0 at byte ${at}`)
    at = afterKey
    if (wireType === WIRE.varint) {
      const [value, next] = readVarint(msg, at)
      fields.push({ number, wireType, value })
      at = next
    } else if (wireType === WIRE.len) {
      const [length, start] = readVarint(msg, at)
      if (start + length > msg.length) throw new ProtobufError(`field ${number} claims ${length} bytes, ${msg.length - start} remain`)
      fields.push({ number, wireType, bytes: msg.subarray(start, start + length) })
      at = start + length
    } else if (wireType === WIRE.i64 || wireType === WIRE.i32) {
      at += wireType === WIRE.i64 ? 8 : 4
      if (at > msg.length) throw new ProtobufError(`field ${number} is truncated`)
    } else {
      throw new ProtobufError(`field ${number} has wire type ${wireType} (groups and unknown types are not supported)`)
    }
  }
  return fields
}

/** A varint at `at`: its value (up to 2^53) and the offset after it. */
function readVarint (buf: Uint8Array, at: number): [number, number] {
  let value = 0
  let scale = 1
  for (let i = at; i < buf.length && i < at + 10; i++) {
    const b = buf[i]!
    value += (b & 0x7f) * scale
    if (b < 0x80) {
      if (value > Number.MAX_SAFE_INTEGER) throw new ProtobufError(`varint at byte ${at} exceeds 2^53`)
      return [value, i + 1]
    }
    scale *= 128
  }
  throw new ProtobufError(at + 10 > buf.length ? `varint at byte ${at} is truncated` : `varint at byte ${at} is longer than 10 bytes`)
}

/** A varint's bytes. */
export function varint (n: number): Uint8Array {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`varint of ${n}`)
  const out: number[] = []
  let v = n
  while (v >= 0x80) {
    out.push((v % 128) | 0x80)
    v = Math.floor(v / 128)
  }
  out.push(v)
  return Uint8Array.from(out)
}

/** A length-delimited field (string, bytes or embedded message), key and length included. */
export function lenField (number: number, value: Uint8Array | string): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value
  return Buffer.concat([varint(number * 8 + WIRE.len), varint(bytes.length), bytes])
}

/** A varint field. */
export function varintField (number: number, value: number): Buffer {
  return Buffer.concat([varint(number * 8 + WIRE.varint), varint(value)])
}
