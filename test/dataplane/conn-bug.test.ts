// Why: a bug in our own per-connection flow must cost that one connection, not
// the process (an unhandled rejection would end it): one 'conn failed' line at
// error level with the connection's fields, then the connection is closed.
import t from 'tap'
import { connBug } from '../../src/dataplane/finish.js'
import { captureLogger } from '../helpers/mesh.js'

t.test('a bug closes its connection and says so once', async t => {
  const { logger, sink } = captureLogger()
  let closed = 0
  await Promise.reject(new TypeError('boom')).catch(connBug(logger, { conn: 'in-7', listener: 'inbound' }, () => { closed++ }))
  t.equal(closed, 1, 'the connection was closed')
  const line = await sink.waitFor(l => l.msg === 'conn failed')
  t.match(line, { level: 50, conn: 'in-7', listener: 'inbound', err: 'boom' })
  t.equal(sink.msgs('conn failed').length, 1)
})
