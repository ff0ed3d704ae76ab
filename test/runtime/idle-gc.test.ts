// Why: after a peak of connections the JS heap is garbage that V8 leaves in
// place while a sidecar is quiet; one full GC then gives it back. It must run
// only when idle for a whole interval, only when there is something to gain,
// and once per idle period.
import t from 'tap'
import { IdleGcPolicy, IDLE_GC_MIN_HEAP_BYTES, startIdleGc } from '../../src/runtime/idle-gc.js'

const MB = 1024 * 1024
const base = 10 * MB
const big = base + IDLE_GC_MIN_HEAP_BYTES + MB

t.test('the policy, check by check', async t => {
  const rows: Array<{ name: string, checks: Array<[number, number]>, want: boolean[] }> = [
    { name: 'idle for one check only: nothing yet', checks: [[5, big], [0, big]], want: [false, false] },
    { name: 'idle for a whole interval after a peak: one GC', checks: [[5, big], [0, big], [0, big]], want: [false, false, true] },
    { name: 'and only once per idle period', checks: [[0, big], [0, big], [0, big], [0, big]], want: [false, true, false, false] },
    { name: 'a new peak, a new idle period: one more', checks: [[0, big], [0, big], [3, big], [0, big], [0, big]], want: [false, true, false, false, true] },
    { name: 'idle, but little to gain: none', checks: [[0, base + MB], [0, base + MB], [0, base + MB]], want: [false, false, false] },
    { name: 'busy: never', checks: [[1, big], [1, big], [1, big]], want: [false, false, false] }
  ]
  for (const r of rows) {
    const p = new IdleGcPolicy(base)
    t.same(r.checks.map(([c, h]) => p.check(c, h)), r.want, r.name)
  }
})

/** Resolves once `cond` holds, checked on every tick of a 1 ms interval, at most `max` ticks. */
async function within (max: number, cond: () => boolean): Promise<boolean> {
  for (let k = 0; k < max; k++) {
    if (cond()) return true
    await new Promise(resolve => setTimeout(resolve, 1))
  }
  return cond()
}

t.test('the timer: the baseline is the heap at start; grown and idle, one GC; stop is idempotent', async t => {
  let heap = base
  let gcs = 0
  let checks = 0
  const stop = startIdleGc(() => { checks++; return 0 }, { heapUsed: () => heap, gc: () => { gcs++; heap = base } }, 2)
  t.ok(await within(5000, () => checks >= 3), 'checked on its interval')
  t.equal(gcs, 0, 'not grown since start: no GC')
  heap = big
  t.ok(await within(5000, () => gcs === 1), 'grown and idle: one GC')
  const at = checks
  t.ok(await within(5000, () => checks >= at + 3))
  t.equal(gcs, 1, 'and no second one in the same idle period')
  stop()
  stop()
  const after = checks
  await new Promise(resolve => setTimeout(resolve, 10))
  t.equal(checks, after, 'stopped: no more checks')
})

t.test('V8\'s own gc is reachable without any flag from the user', async t => {
  const stop = startIdleGc(() => 0, {}, 1_000_000)
  stop()
  t.equal(typeof (await import('node:vm')).runInNewContext('typeof gc'), 'string')
  t.equal((await import('node:vm')).runInNewContext('typeof gc'), 'function', 'gc is exposed at run time')
})
