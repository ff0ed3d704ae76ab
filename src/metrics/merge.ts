/**
 * Merge the Prometheus text of several worker processes into one exposition:
 * each family once (its HELP and TYPE lines from the first worker that has
 * it, then every worker's samples, contiguous as the format requires), each
 * sample labelled worker="N". Summing would be wrong for gauges such as
 * cert_expiry_timestamp_seconds; `sum without (worker)` is one PromQL away.
 * Pure: text in, text out.
 */

/** `worker` is each text's worker number. */
export function mergeMetrics (texts: ReadonlyArray<{ readonly worker: number, readonly text: string }>): string {
  const families = new Map<string, { head: string[], samples: string[] }>()
  for (const { worker, text } of texts) {
    let fam: { head: string[], samples: string[] } | undefined
    for (const line of text.split('\n')) {
      if (line === '') continue
      const m = /^# (HELP|TYPE) (\S+) /.exec(line)
      if (m !== null) {
        fam = families.get(m[2]!)
        if (fam === undefined) { fam = { head: [], samples: [] }; families.set(m[2]!, fam) }
        if (!fam.head.some(h => h.startsWith(`# ${m[1]!} `))) fam.head.push(line)
        continue
      }
      if (line.startsWith('#') || fam === undefined) continue
      fam.samples.push(withLabel(line, 'worker', String(worker)))
    }
  }
  const out = [...families.values()].flatMap(f => [...f.head, ...f.samples])
  return out.length === 0 ? '' : out.join('\n') + '\n'
}

/** Add `name="value"` as the first label of one sample line. */
export function withLabel (sample: string, name: string, value: string): string {
  const brace = sample.indexOf('{')
  const space = sample.indexOf(' ')
  if (brace >= 0 && brace < space) return `${sample.slice(0, brace + 1)}${name}="${value}",${sample.slice(brace + 1)}`
  return `${sample.slice(0, space)}{${name}="${value}"}${sample.slice(space)}`
}
