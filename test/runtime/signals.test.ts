// Why: one policy for every process: the first SIGTERM or SIGINT drains, any
// later one closes now, SIGHUP reloads; and a finished run leaves no listener
// behind on its source.
import t from 'tap'
import { EventEmitter } from 'node:events'
import { watchSignals } from '../../src/runtime/signals.js'

function recorder (): { calls: string[], policy: Parameters<typeof watchSignals>[1] } {
  const calls: string[] = []
  return { calls, policy: { drain: s => calls.push(`drain ${s}`), closeNow: s => calls.push(`closeNow ${s}`), reload: () => calls.push('reload') } }
}

t.test('first stop drains, later ones close now, SIGHUP reloads', async t => {
  const src = new EventEmitter()
  const { calls, policy } = recorder()
  const w = watchSignals(src, policy)
  src.emit('SIGHUP')
  t.equal(w.stops, 0, 'a reload is no stop')
  src.emit('SIGINT')
  src.emit('SIGHUP')
  src.emit('SIGTERM')
  src.emit('SIGINT')
  t.same(calls, ['reload', 'drain SIGINT', 'reload', 'closeNow SIGTERM', 'closeNow SIGINT'])
  t.equal(w.stops, 3)
  w.dispose()
})

t.test('SIGTERM first drains as SIGINT does', async t => {
  const src = new EventEmitter()
  const { calls, policy } = recorder()
  const w = watchSignals(src, policy)
  src.emit('SIGTERM')
  src.emit('SIGTERM')
  t.same(calls, ['drain SIGTERM', 'closeNow SIGTERM'])
  w.dispose()
})

t.test('dispose removes the listeners, and only its own; a second dispose does nothing', async t => {
  const src = new EventEmitter()
  const other = (): void => {}
  src.on('SIGTERM', other)
  const { calls, policy } = recorder()
  const w = watchSignals(src, policy)
  t.same(['SIGTERM', 'SIGINT', 'SIGHUP'].map(e => src.listenerCount(e)), [2, 1, 1])
  w.dispose()
  t.same(['SIGTERM', 'SIGINT', 'SIGHUP'].map(e => src.listenerCount(e)), [1, 0, 0], 'the others\' listener stays')
  w.dispose()
  t.same(['SIGTERM', 'SIGINT', 'SIGHUP'].map(e => src.listenerCount(e)), [1, 0, 0], 'idempotent')
  src.emit('SIGTERM')
  src.emit('SIGHUP')
  t.same(calls, [], 'nothing reaches the policy after dispose')
})

t.test('two watches on one source keep their own counts', async t => {
  const src = new EventEmitter()
  const a = recorder()
  const b = recorder()
  const wa = watchSignals(src, a.policy)
  src.emit('SIGTERM')
  const wb = watchSignals(src, b.policy)
  src.emit('SIGTERM')
  t.same(a.calls, ['drain SIGTERM', 'closeNow SIGTERM'])
  t.same(b.calls, ['drain SIGTERM'])
  wa.dispose()
  wb.dispose()
  t.equal(src.listenerCount('SIGTERM'), 0)
})
