// Deterministic bulk data and streaming hashes for byte-exact relay checks.
import { createHash, randomBytes } from 'node:crypto'
import type { Socket } from 'node:net'

/** Write `totalBytes` of pseudo-random data to `s` with backpressure, then end(); resolves with its sha256. */
export async function sendBulk (s: Socket, totalBytes: number, chunk = 64 * 1024): Promise<string> {
  const h = createHash('sha256')
  const block = randomBytes(1024 * 1024)
  let sent = 0
  while (sent < totalBytes) {
    const n = Math.min(chunk, totalBytes - sent)
    const off = sent % block.length
    const piece = off + n <= block.length ? block.subarray(off, off + n) : Buffer.concat([block.subarray(off), block.subarray(0, n - (block.length - off))])
    h.update(piece)
    sent += n
    if (!s.write(piece)) await new Promise<void>((resolve, reject) => { s.once('drain', resolve); s.once('close', () => reject(new Error('closed while sending'))) })
  }
  s.end()
  return h.digest('hex')
}

/** Read `s` to its end; resolves with byte count and sha256. */
export function receiveAll (s: Socket): Promise<{ bytes: number, sha256: string }> {
  const h = createHash('sha256')
  let bytes = 0
  return new Promise((resolve, reject) => {
    s.on('data', (d: Buffer) => { h.update(d); bytes += d.length })
    s.once('end', () => resolve({ bytes, sha256: h.digest('hex') }))
    s.once('error', reject)
  })
}
