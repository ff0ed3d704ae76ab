// The A/B driver's variant syntax (bench/ab.ts): table-driven, pure.
import t from 'tap'
import { parseVariant } from '../../bench/ab.js'

t.test('variants parse into target, node flags, environment and mesh-proxy flags', async t => {
  const cases = [
    { spec: 'now=.', want: { label: 'now', target: '.', nodeFlags: [], env: {}, flags: [] } },
    { spec: 'base=/tmp/before', want: { label: 'base', target: '/tmp/before', nodeFlags: [], env: {}, flags: [] } },
    { spec: 'ref=haproxy', want: { label: 'ref', target: 'haproxy', nodeFlags: [], env: {}, flags: [] } },
    { spec: 'y16=.|--min-semi-space-size=16 --max-semi-space-size=16', want: { label: 'y16', target: '.', nodeFlags: ['--min-semi-space-size=16', '--max-semi-space-size=16'], env: {}, flags: [] } },
    { spec: 'e=.||A=1,B=x=y', want: { label: 'e', target: '.', nodeFlags: [], env: { A: '1', B: 'x=y' }, flags: [] } },
    { spec: 'warn=.|||--log-level warn', want: { label: 'warn', target: '.', nodeFlags: [], env: {}, flags: ['--log-level', 'warn'] } }
  ]
  for (const c of cases) t.same(parseVariant(c.spec), c.want, c.spec)
})

t.test('a wrong variant names what is wrong', async t => {
  const cases = [
    { spec: 'now', err: /a variant is label=target/ },
    { spec: '=.', err: /a variant is label=target/ },
    { spec: 'x=', err: /give a target/ },
    { spec: 'x=.|a|b|c|d', err: /give a target, and at most/ },
    { spec: 'x=.||NOVALUE', err: /"NOVALUE" is not ENV=value/ }
  ]
  for (const c of cases) t.throws(() => parseVariant(c.spec), c.err, c.spec)
})
