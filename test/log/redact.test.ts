// Key material never reaches a log line in clear (src/log.ts): table-driven over
// redactSecrets, then through a real logger, including a child's bindings.
import t from 'tap'
import { createLogger, redactSecrets, REDACTED } from '../../src/log.js'

t.test('secret fields are censored at the top level and one level down', async t => {
  const cases: Array<{ name: string, in: Record<string, unknown>, want: Record<string, unknown> }> = [
    { name: 'top-level key', in: { key: 'PEM', conn: 'in-1' }, want: { key: REDACTED, conn: 'in-1' } },
    { name: 'top-level keyPem and privateKey', in: { keyPem: 'a', privateKey: 'b' }, want: { keyPem: REDACTED, privateKey: REDACTED } },
    { name: 'one level down', in: { svid: { key: 'PEM', id: 'spiffe://td/x' } }, want: { svid: { key: REDACTED, id: 'spiffe://td/x' } } },
    { name: 'config.keyFile, only under config', in: { config: { keyFile: '/k', certFile: '/c' }, other: { keyFile: '/k' } }, want: { config: { keyFile: REDACTED, certFile: '/c' }, other: { keyFile: '/k' } } },
    { name: 'two levels down is not looked at (as the paths *.key did not)', in: { a: { b: { key: 'x' } } }, want: { a: { b: { key: 'x' } } } },
    { name: 'arrays and buffers are left alone', in: { list: [{ key: 'x' }], buf: Buffer.from('key') }, want: { list: [{ key: 'x' }], buf: Buffer.from('key') } },
    { name: 'null and primitives', in: { n: null, s: 'key', b: true }, want: { n: null, s: 'key', b: true } }
  ]
  for (const c of cases) {
    const before = structuredClone(c.in)
    t.same(redactSecrets(c.in), c.want, c.name)
    t.same(c.in, before, `${c.name}: the caller's object is left as it was`)
  }
})

t.test('nothing to censor: the same object comes back (no copy per access-log line)', async t => {
  const access = { conn: 'in-1', listener: 'inbound', peer: 'spiffe://td/ns/default/dc/dc1/svc/web', bytesToApp: 3 }
  t.equal(redactSecrets(access), access)
})

t.test('through the logger: message fields and child bindings', async t => {
  const lines: Array<Record<string, unknown>> = []
  const log = createLogger({ destination: { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>) } } })
  log.info({ key: 'PEM', svid: { keyPem: 'PEM', serial: '01' } }, 'one')
  log.child({ privateKey: 'PEM', worker: 0 }).info({ config: { keyFile: '/k' } }, 'two')
  t.match(lines[0], { msg: 'one', key: REDACTED, svid: { keyPem: REDACTED, serial: '01' } })
  t.match(lines[1], { msg: 'two', privateKey: REDACTED, worker: 0, config: { keyFile: REDACTED } })
  t.notMatch(JSON.stringify(lines), /PEM/, 'no key material in any line')
})
