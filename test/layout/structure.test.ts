// The layout is part of the design (docs/architecture.md): dependencies point
// down only, files stay small, functions stay short. This test reads src/ as
// text (TypeScript's parser, no build output) and fails on the first breach.
import t from 'tap'
import { readFileSync, readdirSync } from 'node:fs'
import { join, relative, resolve, dirname } from 'node:path'
import ts from 'typescript'
import { ROOT as repoRoot } from '../helpers/paths.js'

const SRC = join(repoRoot, 'src')

/**
 * Each top-level part of src/ and its rank: a module may import its own part
 * or a part of lower rank, never one of equal or higher rank.
 */
export const RANKS: Readonly<Record<string, number>> = {
  core: 0,
  fsutil: 1,
  log: 1,
  build: 1,
  metrics: 2,
  ca: 2,
  net: 2,
  tls: 3,
  meshdir: 4,
  consul: 4,
  spiffe: 4,
  dataplane: 5,
  plane: 5,
  sidecar: 6,
  gateway: 6,
  admin: 7,
  runtime: 8,
  cli: 9,
  index: 10
}
const MAX_FILE_LINES = 300
const MAX_FUNCTION_LINES = 60

function sources (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap(e => {
    const p = join(dir, e.name)
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') ? [p] : []
  })
}

/** `core` for src/core/identity/x509.ts, `log` for src/log.ts. */
function partOf (file: string): string {
  return relative(SRC, file).split('/')[0]!.replace(/\.[jt]s$/, '')
}

const files = sources(SRC)

t.test('every part of src/ has a rank', async t => {
  const unknown = [...new Set(files.map(partOf))].filter(p => RANKS[p] === undefined)
  t.same(unknown, [], 'parts without a rank (add them to RANKS and docs/architecture.md)')
})

t.test('imports point down only', async t => {
  const upward: string[] = []
  for (const f of files) {
    const from = partOf(f)
    const text = readFileSync(f, 'utf8')
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.\.?\/[^']+)'/g)) {
      const target = resolve(dirname(f), m[1]!)
      const to = partOf(target)
      if (to === from) continue
      if ((RANKS[to] ?? Infinity) >= (RANKS[from] ?? -1)) upward.push(`${relative(repoRoot, f)} imports ${relative(repoRoot, target)} (${from} ${RANKS[from]} -> ${to} ${RANKS[to]})`)
    }
  }
  t.same(upward, [], 'imports of a part of equal or higher rank')
})

t.test(`no file in src/ over ${MAX_FILE_LINES} lines`, async t => {
  const long = files.map(f => ({ f: relative(repoRoot, f), n: readFileSync(f, 'utf8').split('\n').length })).filter(x => x.n > MAX_FILE_LINES)
  t.same(long, [], 'files to split')
})

t.test(`no function in src/ over ${MAX_FUNCTION_LINES} lines`, async t => {
  const long: string[] = []
  for (const f of files) {
    const sf = ts.createSourceFile(f, readFileSync(f, 'utf8'), ts.ScriptTarget.Latest, true)
    const visit = (n: ts.Node): void => {
      if (ts.isFunctionLike(n) && 'body' in n && n.body !== undefined) {
        const body = n.body as ts.Node
        const lines = sf.getLineAndCharacterOfPosition(body.getEnd()).line - sf.getLineAndCharacterOfPosition(body.getStart()).line + 1
        const name = (n as { name?: ts.Node }).name?.getText() ?? '(anonymous)'
        if (lines > MAX_FUNCTION_LINES) long.push(`${relative(repoRoot, f)}:${sf.getLineAndCharacterOfPosition(n.getStart()).line + 1} ${name} (${lines} lines)`)
      }
      ts.forEachChild(n, visit)
    }
    visit(sf)
  }
  t.same(long, [], 'functions to split')
})
