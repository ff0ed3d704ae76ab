/**
 * A flame summary of one V8 .cpuprofile (node --cpu-prof), pure: used by
 * bench/profile.ts, tested in test/bench/flame.test.ts.
 */

/** The parts of a V8 .cpuprofile this summary reads. */
export interface CpuProfile {
  nodes: Array<{ id: number, callFrame: { functionName: string, url: string, lineNumber: number }, children?: number[] }>
  samples: number[]
  timeDeltas: number[]
}

export type Kind = 'idle' | 'gc' | 'native, outside JavaScript' | 'Node C++ bindings from JavaScript' | 'Node JavaScript' | 'dependencies' | 'ours'

/** The kind of one frame. */
export function kindOf (frame: { functionName: string, url: string }): Kind {
  const { functionName: f, url } = frame
  if (f === '(idle)') return 'idle'
  if (f === '(garbage collector)') return 'gc'
  if (f === '(program)' || f === '(root)') return 'native, outside JavaScript'
  if (url === '') return 'Node C++ bindings from JavaScript'
  if (url.includes('/node_modules/')) return 'dependencies'
  if (url.includes('/dist/src/') || url.includes('/bin/mesh-proxy')) return 'ours'
  return 'Node JavaScript'
}

export interface Summary {
  /** Sampled milliseconds in all. */
  totalMs: number
  /** Self time per kind, ms. */
  byKind: Map<Kind, number>
  /** Time in stacks that hold at least one of our frames, ms. */
  underOursMs: number
  /** Functions by self time, ms, most first. */
  top: Array<{ name: string, kind: Kind, ms: number }>
}

/** Self and "under ours" times of one profile. */
export function summarize (p: CpuProfile, topN = 12): Summary {
  const byId = new Map(p.nodes.map(n => [n.id, n]))
  const self = new Map<number, number>()
  // timeDeltas[i] is the time before sample i: it belongs to the sample before it.
  for (let i = 0; i + 1 < p.samples.length; i++) self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + p.timeDeltas[i + 1]! / 1000)
  const ours = new Set<number>()
  const mark = (id: number, inOurs: boolean): void => {
    const n = byId.get(id)!
    const here = inOurs || kindOf(n.callFrame) === 'ours'
    if (here) ours.add(id)
    for (const c of n.children ?? []) mark(c, here)
  }
  mark(p.nodes[0]!.id, false)
  const byKind = new Map<Kind, number>()
  const byName = new Map<string, { name: string, kind: Kind, ms: number }>()
  let totalMs = 0
  let underOursMs = 0
  for (const [id, ms] of self) {
    const f = byId.get(id)!.callFrame
    const kind = kindOf(f)
    totalMs += ms
    if (ours.has(id)) underOursMs += ms
    byKind.set(kind, (byKind.get(kind) ?? 0) + ms)
    const where = f.url === '' ? '' : ` ${f.url.replace(/^.*\/(dist|node_modules)\//, '$1/').replace(/^file:\/\//, '')}:${f.lineNumber + 1}`
    const name = `${f.functionName === '' ? '(anonymous)' : f.functionName}${where}`
    const e = byName.get(name) ?? { name, kind, ms: 0 }
    e.ms += ms
    byName.set(name, e)
  }
  const top = [...byName.values()].sort((a, b) => b.ms - a.ms).slice(0, topN)
  return { totalMs, byKind, underOursMs, top }
}

/** One sidecar's summary as markdown; shares of the busy (non-idle) time. */
export function summaryTable (title: string, s: Summary): string {
  const busy = s.totalMs - (s.byKind.get('idle') ?? 0)
  const pct = (ms: number): string => `${(100 * ms / busy).toFixed(1)} %`
  const kinds: Kind[] = ['native, outside JavaScript', 'Node C++ bindings from JavaScript', 'Node JavaScript', 'gc', 'dependencies', 'ours']
  const lines = [
    `${title}: ${(busy / 1000).toFixed(1)} s busy of ${(s.totalMs / 1000).toFixed(1)} s sampled; under our code (any of our frames on the stack): **${pct(s.underOursMs)}**`, '',
    '| self time by kind | share of busy |', '|---|---:|',
    ...kinds.map(k => `| ${k} | ${pct(s.byKind.get(k) ?? 0)} |`), '',
    '| function (self time) | kind | share of busy |', '|---|---|---:|',
    ...s.top.filter(t => t.kind !== 'idle').map(t => `| \`${t.name}\` | ${t.kind} | ${pct(t.ms)} |`)
  ]
  return lines.join('\n') + '\n'
}

