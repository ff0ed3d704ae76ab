// A PROXY protocol v2 reader written from haproxy's proxy-protocol.txt (§2.2),
// independent of src/core/proxy-protocol.ts: the tests check the encoder's
// bytes against the spec with it, not against the encoder's own idea of them.
import type { Socket } from 'node:net'

const SIG = Buffer.from('0d0a0d0a000d0a515549540a', 'hex')

/** One TLV as it came on the wire. */
export interface Tlv { type: number, value: Buffer }

/** A parsed header; addresses in text, TLVs in order. */
export interface ParsedProxyV2 {
  command: 'LOCAL' | 'PROXY'
  family: 'UNSPEC' | 'TCP4' | 'TCP6'
  source?: { address: string, port: number }
  destination?: { address: string, port: number }
  tlvs: Tlv[]
  /** Bytes the header took (16 + its length field). */
  length: number
}

function ip6 (b: Buffer): string {
  const w: string[] = []
  for (let i = 0; i < 16; i += 2) w.push(b.readUInt16BE(i).toString(16))
  return w.join(':') // not compressed: tests compare with this form
}

/** TLVs of `b` (type, 16-bit length, value); throws when one runs past the end. */
export function parseTlvs (b: Buffer): Tlv[] {
  const out: Tlv[] = []
  let i = 0
  while (i < b.length) {
    if (i + 3 > b.length) throw new Error(`TLV header cut at ${i}`)
    const len = b.readUInt16BE(i + 1)
    if (i + 3 + len > b.length) throw new Error(`TLV 0x${b[i]!.toString(16)} of ${len} bytes runs past the header`)
    out.push({ type: b[i]!, value: b.subarray(i + 3, i + 3 + len) })
    i += 3 + len
  }
  return out
}

/** Parse one header at the start of `b`; throws on anything the spec does not allow. */
export function parseProxyV2 (b: Buffer): ParsedProxyV2 {
  if (b.length < 16 || !b.subarray(0, 12).equals(SIG)) throw new Error('no PROXY v2 signature')
  if (b[12]! >> 4 !== 2) throw new Error(`version ${b[12]! >> 4}, not 2`)
  const cmd = b[12]! & 0x0f
  if (cmd > 1) throw new Error(`command ${cmd}`)
  const len = b.readUInt16BE(14)
  if (b.length < 16 + len) throw new Error(`header says ${len} bytes, have ${b.length - 16}`)
  const body = b.subarray(16, 16 + len)
  const fam = b[13]!
  const base = { command: cmd === 1 ? 'PROXY' as const : 'LOCAL' as const, length: 16 + len }
  if (fam === 0x00) return { ...base, family: 'UNSPEC', tlvs: parseTlvs(body) }
  if (fam === 0x11) {
    if (len < 12) throw new Error('TCP4 block too short')
    const a = (o: number): string => [...body.subarray(o, o + 4)].join('.')
    return { ...base, family: 'TCP4', source: { address: a(0), port: body.readUInt16BE(8) }, destination: { address: a(4), port: body.readUInt16BE(10) }, tlvs: parseTlvs(body.subarray(12)) }
  }
  if (fam === 0x21) {
    if (len < 36) throw new Error('TCP6 block too short')
    return { ...base, family: 'TCP6', source: { address: ip6(body.subarray(0, 16)), port: body.readUInt16BE(32) }, destination: { address: ip6(body.subarray(16, 32)), port: body.readUInt16BE(34) }, tlvs: parseTlvs(body.subarray(36)) }
  }
  throw new Error(`family/protocol byte 0x${fam.toString(16)}`)
}

/** PP2_TYPE_SSL's value: client bits, verify, and its sub-TLVs. */
export function parseSslTlv (v: Buffer): { client: number, verify: number, sub: Tlv[] } {
  if (v.length < 5) throw new Error('PP2_TYPE_SSL shorter than 5 bytes')
  return { client: v[0]!, verify: v.readUInt32BE(1), sub: parseTlvs(v.subarray(5)) }
}

/**
 * Read one header off `s` before any other byte is consumed: resolves with it
 * and whatever came after it in the same reads (the first app bytes).
 */
export function readProxyV2 (s: Socket): Promise<{ header: ParsedProxyV2, rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0)
    let done = false
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d])
      if (buf.length < 16) return
      const need = 16 + buf.readUInt16BE(14)
      if (buf.length < need) return
      done = true
      s.off('data', onData)
      s.pause()
      try { resolve({ header: parseProxyV2(buf), rest: buf.subarray(need) }) } catch (err) { reject(err) }
    }
    s.on('data', onData)
    s.once('end', () => { if (!done) reject(new Error(`ended after ${buf.length} bytes, before a whole PROXY header`)) })
  })
}
