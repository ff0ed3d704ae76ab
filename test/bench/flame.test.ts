// Why: bench/profile.ts's figures in RESULTS.md ("under our code", the shares by
// kind) come from this summary; a frame put in the wrong kind or time given to
// the wrong sample would move the argument for which gaps our code can close.
import t from 'tap'
import { kindOf, summarize, type CpuProfile } from '../../bench/flame.js'

t.test('each frame gets its kind', async t => {
  const cases: Array<[string, string, ReturnType<typeof kindOf>]> = [
    ['(idle)', '', 'idle'],
    ['(garbage collector)', '', 'gc'],
    ['(program)', '', 'native, outside JavaScript'],
    ['(root)', '', 'native, outside JavaScript'],
    ['writeBuffer', '', 'Node C++ bindings from JavaScript'],
    ['onStreamRead', 'node:internal/stream_base_commons', 'Node JavaScript'],
    ['write', 'file:///app/node_modules/pino/lib/proto.js', 'dependencies'],
    ['onData', 'file:///app/dist/src/dataplane/relay.js', 'ours'],
    ['', 'file:///app/bin/mesh-proxy.js', 'ours']
  ]
  for (const [functionName, url, kind] of cases) t.equal(kindOf({ functionName, url }), kind, `${functionName} ${url}`)
})

t.test('self time goes to the sampled frame; "under ours" to every stack holding one of our frames', async t => {
  const f = (functionName: string, url = ''): { functionName: string, url: string, lineNumber: number } => ({ functionName, url, lineNumber: 0 })
  // root -> relay (ours) -> write (Node JS) -> writeBuffer (binding); root -> (idle); root -> emit (Node JS)
  const p: CpuProfile = {
    nodes: [
      { id: 1, callFrame: f('(root)'), children: [2, 5, 6] },
      { id: 2, callFrame: f('onData', 'file:///x/dist/src/dataplane/relay.js'), children: [3] },
      { id: 3, callFrame: f('write', 'node:net'), children: [4] },
      { id: 4, callFrame: f('writeBuffer') },
      { id: 5, callFrame: f('(idle)') },
      { id: 6, callFrame: f('emit', 'node:events') }
    ],
    // sample i lasts timeDeltas[i + 1] µs; the last sample has no known length and counts 0
    samples: [4, 4, 3, 5, 6, 2],
    timeDeltas: [0, 1000, 2000, 3000, 4000, 5000]
  }
  const s = summarize(p)
  t.equal(s.totalMs, 1 + 2 + 3 + 4 + 5)
  t.equal(s.byKind.get('Node C++ bindings from JavaScript'), 3, 'writeBuffer: 1 + 2 ms')
  t.equal(s.byKind.get('idle'), 4)
  t.equal(s.byKind.get('Node JavaScript'), 3 + 5, 'write and emit')
  t.equal(s.byKind.get('ours'), undefined, 'the last sample (onData) has no length')
  t.equal(s.underOursMs, 1 + 2 + 3, 'writeBuffer and write run under onData; emit does not')
  t.same(s.top.map(x => [x.name, x.ms]), [['emit node:events:1', 5], ['(idle)', 4], ['writeBuffer', 3], ['write node:net:1', 3]], 'most self time first')
})
