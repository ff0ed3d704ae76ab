// Why: the primary and its workers trust nothing that arrives on the IPC
// channel: a message of another shape is ignored (and said at debug), never
// cast into a handler that would throw on it or act on half of it.
import t from 'tap'
import { isToPrimary, isToWorker, parseMessage, receive } from '../../src/runtime/ipc.js'

const psk = { generation: 'g1', identity: 'id-1', psk: 'AAAA', peer: { uri: 'spiffe://mesh.local/ns/default/svc/web', serial: '01', notAfter: 2 }, expiresAt: 1 }

t.test('well-formed messages of every kind parse as themselves', async t => {
  for (const m of [
    { kind: 'mesh-proxy/ask', id: 1, what: 'ready' },
    { kind: 'mesh-proxy/answer', id: 1, value: { ready: true } },
    { kind: 'mesh-proxy/answer', id: 2, error: 'worker starting' },
    { kind: 'mesh-proxy/signal', signal: 'SIGTERM' },
    { kind: 'mesh-proxy/signal', signal: 'SIGHUP' },
    { kind: 'mesh-proxy/started' },
    { kind: 'mesh-proxy/psk', psk }
  ]) t.same(parseMessage(m), { ok: true, msg: m }, m.kind)
})

t.test('malformed messages are refused with the reason', async t => {
  const cases: Array<[unknown, { kind?: string, why: RegExp }]> = [
    [null, { why: /not an object/ }],
    ['mesh-proxy/started', { why: /not an object/ }],
    [[{ kind: 'mesh-proxy/started' }], { why: /not an object/ }],
    [{}, { why: /no kind/ }],
    [{ kind: 7 }, { why: /no kind/ }],
    [{ kind: 'mesh-proxy/hello' }, { kind: 'mesh-proxy/hello', why: /unknown kind/ }],
    [{ kind: 'toString' }, { kind: 'toString', why: /unknown kind/ }],
    [{ kind: 'mesh-proxy/ask', what: 'ready' }, { kind: 'mesh-proxy/ask', why: /id/ }],
    [{ kind: 'mesh-proxy/ask', id: '1', what: 'ready' }, { kind: 'mesh-proxy/ask', why: /id/ }],
    [{ kind: 'mesh-proxy/ask', id: 1.5, what: 'ready' }, { kind: 'mesh-proxy/ask', why: /id/ }],
    [{ kind: 'mesh-proxy/ask', id: 1, what: 'constructor' }, { kind: 'mesh-proxy/ask', why: /question/ }],
    [{ kind: 'mesh-proxy/answer', id: 0 }, { kind: 'mesh-proxy/answer', why: /id/ }],
    [{ kind: 'mesh-proxy/answer', id: 1, error: { message: 'x' } }, { kind: 'mesh-proxy/answer', why: /error/ }],
    [{ kind: 'mesh-proxy/signal', signal: 'SIGKILL' }, { kind: 'mesh-proxy/signal', why: /signal/ }],
    [{ kind: 'mesh-proxy/signal' }, { kind: 'mesh-proxy/signal', why: /signal/ }],
    [{ kind: 'mesh-proxy/psk' }, { kind: 'mesh-proxy/psk', why: /psk/ }],
    [{ kind: 'mesh-proxy/psk', psk: { ...psk, peer: null } }, { kind: 'mesh-proxy/psk', why: /psk/ }],
    [{ kind: 'mesh-proxy/psk', psk: { ...psk, expiresAt: '1' } }, { kind: 'mesh-proxy/psk', why: /psk/ }]
  ]
  for (const [m, want] of cases) {
    const p = parseMessage(m)
    t.equal(p.ok, false, JSON.stringify(m))
    t.match(p, want)
    if (want.kind === undefined) t.notOk('kind' in p, 'no kind to name')
  }
})

t.test('receive: a side acts only on its own messages, and is told of the rest', async t => {
  const ignored: Array<{ kind?: string, why: string }> = []
  const note = (f: { kind?: string, why: string }): void => { ignored.push(f) }
  t.same(receive({ kind: 'mesh-proxy/signal', signal: 'SIGHUP' }, isToWorker, note), { kind: 'mesh-proxy/signal', signal: 'SIGHUP' })
  t.same(receive({ kind: 'mesh-proxy/started' }, isToPrimary, note), { kind: 'mesh-proxy/started' })
  t.equal(receive({ kind: 'mesh-proxy/started' }, isToWorker, note), undefined)
  t.equal(receive({ kind: 'mesh-proxy/ask', id: 1, what: 'metrics' }, isToPrimary, note), undefined)
  t.equal(receive({ kind: 'mesh-proxy/psk', psk: 'secret-bytes' }, isToWorker, note), undefined)
  t.equal(receive(undefined, isToWorker, note), undefined)
  t.same(ignored, [
    { kind: 'mesh-proxy/started', why: 'not for this side' },
    { kind: 'mesh-proxy/ask', why: 'not for this side' },
    { kind: 'mesh-proxy/psk', why: 'psk is not a shared PSK' },
    { why: 'not an object' }
  ], 'what is said names the kind and the reason, never the content')
  t.same([isToWorker({ kind: 'mesh-proxy/psk', psk }), isToPrimary({ kind: 'mesh-proxy/psk', psk })], [true, true], 'PSKs go both ways')
})
