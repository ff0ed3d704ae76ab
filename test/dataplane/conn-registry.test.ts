// Why: the registry holds no promise per connection any more; drain() must
// still wait for live connections to finish, abort the ones left when the
// drain timeout passes and then wait for those to close, and return at once
// when nothing is live. Connections here are plain objects whose owner
// deletes them, as the listeners do.
import t from 'tap'
import { ConnRegistry, type TrackedConn } from '../../src/dataplane/conn-registry.js'

t.test('drain with nothing live returns at once', async t => {
  const reg = new ConnRegistry()
  await reg.drain(60_000)
  t.equal(reg.size, 0)
})

t.test('drain waits for live connections to finish on their own', async t => {
  const reg = new ConnRegistry()
  const aborted: number[] = []
  const conns: TrackedConn[] = [0, 1].map(i => ({ abort: () => { aborted.push(i) } }))
  for (const c of conns) reg.add(c)
  let drained = false
  const d = reg.drain(60_000).then(() => { drained = true })
  reg.delete(conns[0]!)
  await Promise.resolve()
  t.equal(drained, false, 'one still live')
  setImmediate(() => reg.delete(conns[1]!))
  await d
  t.same(aborted, [], 'nothing aborted')
  t.equal(reg.size, 0)
})

t.test('after the drain timeout the rest is aborted, and drain waits until they are closed', async t => {
  const reg = new ConnRegistry()
  const c: TrackedConn = { abort: () => { setImmediate(() => reg.delete(c)) } } // closes a little after its abort
  reg.add(c)
  await reg.drain(10)
  t.equal(reg.size, 0, 'closed before drain resolved')
})

t.test('delete is idempotent and abortAll reaches every connection', async t => {
  const reg = new ConnRegistry()
  let n = 0
  const cs: TrackedConn[] = []
  for (let i = 0; i < 3; i++) {
    const c: TrackedConn = { abort: () => { n++; reg.delete(c) } }
    cs.push(c)
    reg.add(c)
  }
  reg.delete(cs[0]!)
  reg.delete(cs[0]!)
  reg.abortAll()
  t.equal(n, 2, 'the two live ones aborted (deleting themselves while iterated)')
  t.equal(reg.size, 0)
})
