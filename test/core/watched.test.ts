// Why: Cell is how every TLS generation and intention table reaches the data
// plane; a subscriber that is missed or called twice is a listener on stale
// certificates or an unenforced table.
import t from 'tap'
import { Cell } from '../../src/core/watched.js'

t.test('read before set names the value', async t => {
  const c = new Cell<number>('certificates')
  t.equal(c.isSet, false)
  t.throws(() => c.current, { message: 'certificates not loaded yet' })
})

t.test('set, subscribe, unsubscribe', async t => {
  const c = new Cell<number>('x')
  const seen: Array<[string, number]> = []
  c.set(1)
  t.equal(c.current, 1)
  const offA = c.onChange(v => seen.push(['a', v]))
  const fn = (v: number): void => { seen.push(['b', v]) }
  const offB1 = c.onChange(fn)
  c.onChange(fn)
  c.set(2)
  t.same(seen, [['a', 2], ['b', 2], ['b', 2]], 'later values only, in order; the same function twice is two subscriptions')
  offA()
  offA()
  offB1()
  seen.length = 0
  c.set(3)
  t.same(seen, [['b', 3]], 'unsubscribed (idempotently); the other subscription of fn stays')
  t.equal(c.current, 3)
})

t.test('a subscriber that unsubscribes another during set does not skip the rest of this round', async t => {
  const c = new Cell<number>('x')
  const seen: string[] = []
  let offB = (): void => {}
  c.onChange(() => { seen.push('a'); offB() })
  offB = c.onChange(() => seen.push('b'))
  c.set(1)
  c.set(2)
  t.same(seen, ['a', 'b', 'a'])
})
