// Why: a misspelt config-file key is the commonest config mistake, and the
// full list of ~30 keys hides the one meant. As commander does for flags, the
// error names the closest key when one is close, and only then.
import t from 'tap'
import { resolveConfig } from '../../../src/core/config/resolve.js'
import { closest, editDistance } from '../../../src/core/suggest.js'

/** The error about `key` in a config file that is otherwise fine. */
function errorFor (key: string): string {
  try {
    resolveConfig({ flags: {}, env: {}, file: { service: 'web', meshDir: '/m', upstream: ['db:1'], [key]: 1 }, fileName: 'sidecar.json' })
  } catch (err) {
    return (err as AggregateError).errors.map((e: Error) => e.message).join('\n')
  }
  return ''
}

t.test('unknown config-file keys: did you mean', async t => {
  const rows: Array<[string, string | null]> = [
    ['listn', 'listen'], // a letter left out
    ['lsiten', 'listen'], // two letters swapped
    ['servicee', 'service'], // one too many
    ['upstreams', 'upstream'], // the plural
    ['max-connections', 'maxConnections'], // the flag's spelling
    ['idle_timeout', 'idleTimeout'],
    ['MeshDir', 'meshDir'],
    ['logLvl', 'logLevel'], // two edits in a long word
    ['consulTokenFle', 'consulTokenFile'],
    ['colour', null], // nothing close: the whole list
    ['tp', null], // a short word is not guessed at
    ['x', null]
  ]
  for (const [key, want] of rows) {
    const msg = errorFor(key)
    if (want === null) {
      t.match(msg, new RegExp(`^sidecar\\.json: ${key}: unknown field; known fields: service, listen, to, `), `${key}: the known fields`)
      t.notMatch(msg, /did you mean/, `${key}: no guess`)
    } else {
      t.equal(msg, `sidecar.json: ${key}: unknown field; did you mean "${want}"?`, `${key} -> ${want}`)
    }
  }
})

t.test('closest and editDistance', async t => {
  t.equal(editDistance('listen', 'listen'), 0)
  t.equal(editDistance('listn', 'listen'), 1)
  t.equal(editDistance('lsiten', 'listen'), 1, 'a swap is one edit')
  t.equal(editDistance('', 'abc'), 3)
  t.equal(closest('cret', ['ca', 'cert', 'key']), 'cert')
  t.equal(closest('ky', ['ca', 'cert', 'key']), 'key')
  t.equal(closest('cx', ['ca', 'cert', 'key']), undefined, 'one edit in two letters is too much')
  t.equal(closest('abcd', ['abce', 'abcf']), 'abce', 'a tie: the first')
  t.equal(closest('anything', []), undefined)
})
