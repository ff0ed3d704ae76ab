/**
 * Micro-benchmarks of the per-connection pure work: SPIFFE ID parsing, an
 * intention decision with 10, 10k and 100k intentions (compiled once per
 * table version; a decision is at most three Map lookups), and compiling a
 * 100k-intention table (what a reload costs).
 *
 *   npm run build && node dist/bench/micro.js
 */
import { cpus } from 'node:os'
import { parseSpiffeId } from '../src/core/identity/spiffe-id.js'
import { compileAuthorizer, validateIntentionsDoc, type Intention } from '../src/core/intentions/table.js'

function bench (name: string, fn: () => unknown, iterations = 1_000_000): { name: string, opsPerSec: number } {
  for (let i = 0; i < Math.min(iterations, 10_000); i++) fn() // warm-up
  const samples: number[] = []
  for (let s = 0; s < 5; s++) {
    const t0 = performance.now()
    for (let i = 0; i < iterations; i++) fn()
    samples.push(iterations / ((performance.now() - t0) / 1000))
  }
  samples.sort((a, b) => a - b)
  return { name, opsPerSec: samples[2]! }
}

function table (n: number): Intention[] {
  const out: Intention[] = [{ source: 'web', destination: 'db', action: 'allow' }, { source: '*', destination: 'db', action: 'deny' }]
  for (let i = 0; out.length < n; i++) out.push({ source: `svc-${i}`, destination: `dst-${i % 1000}`, action: i % 2 === 0 ? 'allow' : 'deny' })
  return out
}

const rows: Array<{ name: string, opsPerSec: number }> = []
const id = 'spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/web'
rows.push(bench('parse SPIFFE ID (Consul service form)', () => parseSpiffeId(id)))
for (const n of [10, 10_000, 100_000]) {
  const doc = validateIntentionsDoc({ index: 1, defaultPolicy: 'deny', intentions: table(n) }, 'bench')
  const authorize = compileAuthorizer(doc, { namespace: 'default', name: 'db' })
  const web = { namespace: 'default', name: 'web' }
  const billing = { namespace: 'default', name: 'billing' }
  rows.push(bench(`decide, ${n} intentions (exact match)`, () => authorize(web)))
  rows.push(bench(`decide, ${n} intentions (wildcard match)`, () => authorize(billing)))
}
const big = { index: 1, defaultPolicy: 'deny', intentions: table(100_000) }
rows.push(bench('validate + compile a 100k-intention table (reload)', () => compileAuthorizer(validateIntentionsDoc(big, 'bench'), { namespace: 'default', name: 'db' }), 3))

process.stdout.write(`micro, node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? '?'}, median of 5 samples\n\n| operation | ops/s |\n|---|---:|\n`)
for (const r of rows) process.stdout.write(`| ${r.name} | ${r.opsPerSec >= 100 ? Math.round(r.opsPerSec).toLocaleString('en-US') : r.opsPerSec.toFixed(2)} |\n`)
