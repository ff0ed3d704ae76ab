// Why: with --workers N the primary serves one /metrics for all workers; the
// result must still be valid Prometheus text (one HELP/TYPE per family, a
// family's samples together) with every sample attributed to its worker.
import t from 'tap'
import { mergeMetrics, withLabel } from '../../src/metrics/merge.js'

t.test('withLabel', async t => {
  const rows: Array<[string, string]> = [
    ['m 1', 'm{worker="0"} 1'],
    ['m{a="x"} 1', 'm{worker="0",a="x"} 1'],
    ['m_bucket{le="+Inf"} 3', 'm_bucket{worker="0",le="+Inf"} 3'],
    ['m{reason="two words"} 1', 'm{worker="0",reason="two words"} 1']
  ]
  for (const [inp, want] of rows) t.equal(withLabel(inp, 'worker', '0'), want, inp)
})

t.test('families merged, headers once, samples contiguous', async t => {
  const w0 = '# HELP a_total A.\n# TYPE a_total counter\na_total{d="in"} 1\n# HELP g G.\n# TYPE g gauge\ng 5\n'
  const w1 = '# HELP a_total A.\n# TYPE a_total counter\na_total{d="in"} 2\na_total{d="out"} 7\n# HELP h H.\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 0.5\nh_count 1\n'
  t.equal(mergeMetrics([{ worker: 0, text: w0 }, { worker: 1, text: w1 }]), [
    '# HELP a_total A.', '# TYPE a_total counter',
    'a_total{worker="0",d="in"} 1', 'a_total{worker="1",d="in"} 2', 'a_total{worker="1",d="out"} 7',
    '# HELP g G.', '# TYPE g gauge', 'g{worker="0"} 5',
    '# HELP h H.', '# TYPE h histogram', 'h_bucket{worker="1",le="1"} 1', 'h_sum{worker="1"} 0.5', 'h_count{worker="1"} 1'
  ].join('\n') + '\n')
})

t.test('nothing in, nothing out', async t => {
  t.equal(mergeMetrics([]), '')
  t.equal(mergeMetrics([{ worker: 0, text: '' }]), '')
})
