// Why: the flag reference (docs/flags.md) used to be a table written by hand
// beside the field table the CLI reads (src/core/config/fields.ts), and the two
// drifted. Now scripts/docs-flags.ts writes it from the field table; this test
// fails (and so `npm test` fails) when the page is not what the script would
// write, when its rows do not list the table's flags, file keys and env vars,
// and when `run --help` (the CLI, built from the same table) leaves one out.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { FIELDS, RUN_CLI_FLAGS, flagName, type Field, type Flag } from '../../src/core/config/fields.js'
import { FLAGS_DOC, generatedPart, renderFlagsTable, withTable } from '../../scripts/docs-flags.js'
import { runCli } from '../helpers/cli.js'

const fields = Object.entries(FIELDS) as Array<[string, Field<unknown>]>
const cliOnly = Object.entries(RUN_CLI_FLAGS) as Array<[string, Flag]>
const doc = readFileSync(FLAGS_DOC, 'utf8')

t.test('docs/flags.md holds the table generated from the field table (npm run docs:flags)', async t => {
  const part = generatedPart(doc)
  t.not(part, null, 'docs/flags.md has the BEGIN and END markers of the generated table')
  t.equal(part, renderFlagsTable(), 'docs/flags.md is out of date with src/core/config/fields.ts: run npm run docs:flags')
  t.equal(withTable(doc), doc, 'regenerating changes nothing')
})

interface Row { readonly flag: string, readonly fileKey: string, readonly env: string }

/** The rows of the page's table as a reader sees them: | `--flag <v>` | `fileKey` | `ENV` or — | ... */
function docRows (): Row[] {
  const rows: Row[] = []
  for (const line of (generatedPart(doc) ?? '').split('\n')) {
    if (!line.startsWith('| `--')) continue
    const cells = line.slice(1, -1).split(/ (?<!\\)\| /).map(c => c.trim().replace(/^`|`$/g, '').replace(/\\\|/g, '|'))
    rows.push({ flag: (cells[0] ?? '').split(' ', 1)[0] ?? '', fileKey: cells[1] ?? '', env: cells[2] ?? '' })
  }
  return rows
}

t.test('the page and the field table list the same flags, file keys and env vars', async t => {
  const rows = docRows()
  const want: Row[] = [
    ...fields.map(([key, f]) => ({ flag: flagName(f), fileKey: key, env: f.env ?? '—' })),
    ...cliOnly.map(([, f]) => ({ flag: flagName(f), fileKey: '—', env: '—' }))
  ]
  const byFlag = (l: readonly Row[]): Row[] => [...l].sort((a, b) => a.flag.localeCompare(b.flag))
  t.same(byFlag(rows), byFlag(want), 'docs/flags.md rows: | `--flag` | `fileKey` | `ENV` or — | ...')
  t.equal(new Set(rows.map(r => r.flag)).size, rows.length, 'each flag once on the page')
})

t.test('run --help lists every flag of the table, and nothing the table does not have', async t => {
  const { code, out } = await runCli(['run', '--help'])
  t.equal(code, 0)
  for (const [, f] of [...fields, ...cliOnly]) t.ok(out.includes(f.flag), `run --help shows ${f.flag}`)
  const shown = new Set([...out.matchAll(/^\s+(--[a-z-]+)/gm)].map(m => m[1]))
  shown.delete('--help')
  t.same([...shown].sort(), [...fields, ...cliOnly].map(([, f]) => flagName(f)).sort(), 'the options of run are the table\'s')
})
