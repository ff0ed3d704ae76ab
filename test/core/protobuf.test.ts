// Why: the Workload API is read with our own protobuf and gRPC framing code (no
// gRPC library), so every malformed input must be a clear error and every valid
// one must decode, including what a generated encoder does that ours does not
// (fixed-width fields to skip, unknown fields, fields out of order).
import t from 'tap'
import { lenField, readFields, varint, varintField, ProtobufError } from '../../src/core/protobuf.js'
import { decodeGrpcMessage, describeGrpcStatus, grpcFrame, GrpcDeframer, MAX_GRPC_MESSAGE } from '../../src/core/grpc.js'

t.test('varints: table', async t => {
  const rows: Array<[number, number[]]> = [[0, [0]], [1, [1]], [127, [0x7f]], [128, [0x80, 0x01]], [300, [0xac, 0x02]], [2 ** 32, [0x80, 0x80, 0x80, 0x80, 0x10]], [Number.MAX_SAFE_INTEGER, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]]]
  for (const [n, bytes] of rows) {
    t.same([...varint(n)], bytes, `${n} encodes`)
    t.same(readFields(Buffer.concat([varint(8), varint(n)])), [{ number: 1, wireType: 0, value: n }], `${n} decodes`)
  }
  t.throws(() => varint(-1), RangeError)
})

t.test('fields: length-delimited views, skipped fixed widths, unknown fields kept in order', async t => {
  const msg = Buffer.concat([lenField(1, 'spiffe://a/b'), Buffer.from([0x11, 1, 2, 3, 4, 5, 6, 7, 8]), Buffer.from([0x1d, 1, 2, 3, 4]), varintField(9, 5), lenField(2, Buffer.from([1, 2]))])
  const f = readFields(msg)
  t.same(f.map(x => [x.number, x.wireType]), [[1, 2], [9, 0], [2, 2]], 'fixed64 (field 2) and fixed32 (field 3) skipped')
  t.equal(Buffer.from(f[0]!.bytes!).toString(), 'spiffe://a/b')
  t.equal(f[0]!.bytes!.buffer, msg.buffer, 'a view of the input, not a copy')
  t.same(readFields(new Uint8Array(0)), [], 'an empty message has no fields')
})

t.test('malformed messages: each a ProtobufError saying what', async t => {
  const rows: Array<[string, number[], RegExp]> = [
    ['truncated varint', [0x08, 0x80], /varint at byte 1 is truncated/],
    ['overlong varint', [0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01], /longer than 10 bytes/],
    ['length past the end', [0x0a, 0x05, 0x01], /claims 5 bytes, 1 remain/],
    ['field number 0', [0x02, 0x00], /field number 0/],
    ['group wire type', [0x0b], /wire type 3/],
    ['truncated fixed64', [0x09, 1, 2], /field 1 is truncated/]
  ]
  for (const [name, bytes, msg] of rows) t.throws(() => readFields(Uint8Array.from(bytes)), { name: 'ProtobufError', message: msg }, name)
  t.ok(new ProtobufError('x').message.startsWith('malformed protobuf message: '))
})

t.test('gRPC framing: messages cut anywhere by DATA frames come out whole', async t => {
  const a = Buffer.from('first message')
  const b = Buffer.alloc(70_000, 7)
  const wire = Buffer.concat([grpcFrame(a), grpcFrame(new Uint8Array(0)), grpcFrame(b)])
  for (const cut of [1, 3, 5, 6, 17, 18, 19, 1000, wire.length]) {
    const d = new GrpcDeframer()
    const out: Buffer[] = []
    for (let i = 0; i < wire.length; i += cut) out.push(...d.push(wire.subarray(i, i + cut)))
    t.same(out.map(m => m.length), [a.length, 0, b.length], `chunks of ${cut}`)
    t.equal(d.buffered, 0)
  }
  const d = new GrpcDeframer()
  d.push(grpcFrame(a).subarray(0, 8))
  t.equal(d.buffered, 8, 'a partial message is buffered, for the caller to call truncation')
  t.throws(() => new GrpcDeframer().push(Buffer.from([1, 0, 0, 0, 0])), /compressed gRPC message/)
  const big = Buffer.alloc(5); big.writeUInt32BE(MAX_GRPC_MESSAGE + 1, 1)
  t.throws(() => new GrpcDeframer().push(big), /over the 4194304-byte limit/)
})

t.test('gRPC status: the message is percent-decoded, the code named', async t => {
  t.equal(decodeGrpcMessage('no%20identity%20issued'), 'no identity issued')
  t.equal(decodeGrpcMessage('100%'), '100%', 'a bad escape is shown as sent')
  t.equal(decodeGrpcMessage(undefined), '')
  t.equal(describeGrpcStatus(7, 'no identity issued'), 'PERMISSION_DENIED (7): no identity issued')
  t.equal(describeGrpcStatus(99, ''), 'status (99)')
})
