/**
 * Did-you-mean for a misspelt name, as commander offers for flags: the known
 * name closest to what was written, or undefined when none is close. Pure.
 */

/** Case, dashes and underscores do not count: `max-connections` and `MAX_CONNECTIONS` are `maxConnections`. */
function fold (s: string): string {
  return s.toLowerCase().replace(/[-_]/g, '')
}

/** Edits (insert, delete, substitute, swap two neighbours) from `a` to `b` (optimal string alignment). */
export function editDistance (a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)])
  for (let j = 1; j <= b.length; j++) d[0]![j] = j
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1)
      d[i]![j] = v
    }
  }
  return d[a.length]![b.length]!
}

/**
 * The closest of `known` to `word`: at most 2 edits and fewer than half of
 * its letters (commander's bounds), after folding case, `-` and `_`; on a
 * tie, the first in `known`.
 */
export function closest (word: string, known: readonly string[]): string | undefined {
  const w = fold(word)
  let best: string | undefined
  let bestDistance = Infinity
  for (const k of known) {
    const f = fold(k)
    const dist = editDistance(w, f)
    if (dist <= 2 && dist < Math.max(w.length, f.length) / 2 && dist < bestDistance) {
      best = k
      bestDistance = dist
    }
  }
  return best
}
