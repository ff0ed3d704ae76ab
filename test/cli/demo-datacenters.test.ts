// Why: `mesh-proxy demo --datacenters 2` is the demo: web in dc1
// reaches db in dc2 through two mesh gateways that hold no key, and the
// terminal says what each side verified. It must say OK only when db
// answered, and refuse the options it cannot honour.
import t from 'tap'
import { runCli } from '../helpers/cli.js'

t.test('demo --datacenters 2: through both gateways, end to end mTLS', async t => {
  const r = await runCli(['demo', '--datacenters', '2'])
  t.equal(r.code, 0, r.err)
  t.match(r.out, /OK {3}web \(dc1\) -> gateway dc1 -> gateway dc2 -> db \(dc2\): db answered: db: got "hello from web in dc1"/)
  t.match(r.out, /db's sidecar verified spiffe:\/\/[^ ]+\/ns\/default\/dc\/dc1\/svc\/web, intention "web => db"/)
  t.match(r.out, /web's sidecar verified spiffe:\/\/[^ ]+\/ns\/default\/dc\/dc2\/svc\/db/)
})

t.test('demo --datacenters: what it does not take', async t => {
  const bad = await runCli(['demo', '--datacenters', '3'])
  t.equal(bad.code, 2)
  t.match(bad.err, /--datacenters: "3" is not 1 or 2/)
  const keep = await runCli(['demo', '--datacenters', '2', '--keep'])
  t.equal(keep.code, 2)
  t.match(keep.err, /does not take --keep/)
})
