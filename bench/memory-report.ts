/**
 * Preloaded into a sidecar by bench/memory-rounds.ts (NODE_OPTIONS=--import):
 * on SIGUSR2, process.memoryUsage() as one JSON line into the file named by
 * MESH_PROXY_MEMORY_REPORT, and the same after a full GC when the sidecar runs
 * with --expose-gc (`gc`). Bench only; never loaded by mesh-proxy itself.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { getHeapStatistics } from 'node:v8'

/** Resident KB by mapping: the brk heap (glibc's main arena), anonymous mappings (V8's heap, other arenas, big mallocs), files. */
function residentByMapping (): Record<string, number> {
  const out: Record<string, number> = { brkHeap: 0, anonymous: 0, files: 0 }
  let kind = 'files'
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line)
    if (head !== null) { const name = head[1]!; kind = name === '[heap]' ? 'brkHeap' : name === '' ? 'anonymous' : 'files'; continue }
    const rss = /^Rss:\s+(\d+) kB/.exec(line)
    if (rss !== null) out[kind]! += Number(rss[1])
  }
  return out
}

const file = process.env.MESH_PROXY_MEMORY_REPORT
const gc = (globalThis as { gc?: () => void }).gc
if (file !== undefined) {
  process.on('SIGUSR2', () => {
    const before = process.memoryUsage()
    gc?.()
    const afterGc = gc === undefined ? undefined : process.memoryUsage()
    writeFileSync(file, JSON.stringify({ ...before, afterGc, mappingsKB: residentByMapping(), v8CommittedKB: Math.round(getHeapStatistics().total_physical_size / 1024), mallocedKB: Math.round(getHeapStatistics().malloced_memory / 1024) }) + '\n')
  })
}
