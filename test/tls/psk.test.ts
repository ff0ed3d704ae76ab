// Why: a PSK stands in for a full handshake's certificates, so it must be the
// same secret on both ends of the handshake that verified them and on no other
// connection, must not outlive its expiry, and the server's table is bounded.
// And the server must pick a SHA-256 suite (Node's callbacks bind the PSK to
// SHA-256): with our suite list it does, with Node's default it ignores the PSK.
import t from 'tap'
import { createServer, connect, createSecureContext, type TLSSocket } from 'node:tls'
import { once } from 'node:events'
import { makeMesh, TD } from '../helpers/mesh.js'
import { adoptPsk, exportPsk, PskTable, sharedPsk, type SharedPsk, type ServerPsk } from '../../src/tls/psk.js'
import { TLS_CIPHERS } from '../../src/tls/context.js'
import { parseSpiffeId } from '../../src/core/identity/spiffe-id.js'

const peer = { id: parseSpiffeId(`spiffe://${TD}/ns/default/dc/dc1/svc/web`), service: null, serial: '01', notAfter: new Date(0) }
const entry = (expiresAt: number, fill = 1): ServerPsk => ({ psk: Buffer.alloc(32, fill), peer, expiresAt })

const cases: Array<{ name: string, run: (p: PskTable) => unknown, want: number | undefined }> = [
  { name: 'unknown identity: nothing', run: p => p.get('ab', 0), want: undefined },
  { name: 'known, before expiry: its key', run: p => { p.set('ab', entry(1000, 7)); return p.get('ab', 999) }, want: 7 },
  { name: 'at expiry: dropped', run: p => { p.set('ab', entry(1000, 7)); p.get('ab', 1000); return p.get('ab', 0) }, want: undefined },
  { name: 'another identity: nothing', run: p => { p.set('ab', entry(1000, 7)); return p.get('cd', 0) }, want: undefined }
]
for (const k of cases) {
  t.test(k.name, async t => {
    const got = k.run(new PskTable()) as ServerPsk | undefined
    t.equal(got?.psk[0], k.want)
  })
}

// --workers: a sibling's PSK is taken only under the same TLS generation, unexpired, and well formed.
const ID = '0123456789abcdef0123456789abcdef'
const made = (over: Partial<SharedPsk> = {}, peerOver: Partial<SharedPsk['peer']> = {}): SharedPsk => {
  const m = sharedPsk('gen-1', ID, { psk: Buffer.alloc(32, 9), peer: { ...peer, notAfter: new Date(5000) }, expiresAt: 4000 })
  return { ...m, ...over, peer: { ...m.peer, ...peerOver } }
}
const adoptCases: Array<{ name: string, m: SharedPsk, now?: number, want: string, kept: boolean }> = [
  { name: 'same generation, unexpired: adopted', m: made(), want: 'adopted', kept: true },
  { name: 'another generation (a sibling on another leaf or bundle)', m: made({ generation: 'gen-2' }), want: 'other_generation', kept: false },
  { name: 'at its expiry', m: made(), now: 4000, want: 'expired', kept: false },
  { name: 'the peer\'s leaf expired', m: made({ expiresAt: 9000 }), now: 5000, want: 'expired', kept: false },
  { name: 'a key of another length', m: made({ psk: Buffer.alloc(16).toString('base64') }), want: 'malformed', kept: false },
  { name: 'an identity of another form', m: made({ identity: 'zz' }), want: 'malformed', kept: false },
  { name: 'no peer', m: { ...made(), peer: undefined } as unknown as SharedPsk, want: 'malformed', kept: false },
  { name: 'a peer that is not a SPIFFE ID', m: made({}, { uri: 'https://web' }), want: 'malformed', kept: false },
  { name: 'not an object', m: null as unknown as SharedPsk, want: 'malformed', kept: false }
]
for (const k of adoptCases) {
  t.test(`adoptPsk: ${k.name}`, async t => {
    const table = new PskTable()
    t.equal(adoptPsk(table, 'gen-1', k.m, k.now ?? 1000), k.want)
    t.equal(table.size, k.kept ? 1 : 0)
  })
}

t.test('a shared PSK comes back as the entry it was made from', async t => {
  const table = new PskTable()
  const e: ServerPsk = { psk: Buffer.alloc(32, 3), peer: { ...peer, notAfter: new Date(5000) }, expiresAt: 4000 }
  // Through JSON, as the cluster IPC channel carries it.
  t.equal(adoptPsk(table, 'gen-1', JSON.parse(JSON.stringify(sharedPsk('gen-1', ID, e))) as SharedPsk, 1000), 'adopted')
  const back = table.get(ID, 1000)!
  t.same(back.psk, e.psk)
  t.same(back.peer, { ...e.peer, service: { trustDomain: TD, namespace: 'default', datacenter: 'dc1', service: 'web', uri: peer.id.uri } }, 'the same peer, with its Consul service form')
  t.equal(back.expiresAt, 4000)
})

t.test('the table keeps at most 10 000 PSKs, dropping the oldest', async t => {
  const p = new PskTable()
  for (let i = 0; i < 10_001; i++) p.set(`id-${i}`, entry(1000))
  t.equal(p.size, 10_000)
  t.equal(p.get('id-0', 0), undefined)
  t.ok(p.get('id-10000', 0))
})

t.test('both ends export the same PSK; another connection gets another; our suite list lets it resume', async t => {
  const mesh = await makeMesh(t)
  const [server, client] = [await mesh.leaf('db'), await mesh.leaf('web')]
  const serverSide: Array<ReturnType<typeof exportPsk>> = []
  let known: { identity: string, psk: Buffer } | undefined
  /** A server with `ciphers` (Node's default when undefined) that knows the PSK in `known`. */
  const serve = async (ciphers?: string): Promise<number> => {
    const srv = createServer({ cert: server.certPem, key: server.keyPem, ca: mesh.ca.certPem, requestCert: true, rejectUnauthorized: true, ...(ciphers === undefined ? {} : { ciphers }), pskCallback: (_s: TLSSocket, id: string) => id === known?.identity ? known.psk : null }, s => {
      serverSide.push(s.isSessionReused() ? undefined : exportPsk(s))
      s.end('x')
    })
    srv.listen(0, '127.0.0.1')
    await once(srv, 'listening')
    t.teardown(() => srv.close())
    return (srv.address() as { port: number }).port
  }
  const open = async (port: number): Promise<{ psk: ReturnType<typeof exportPsk>, resumed: boolean, cipher: string }> => {
    const secureContext = createSecureContext({ cert: client.certPem, key: client.keyPem, ca: mesh.ca.certPem })
    const c = connect({ port, host: '127.0.0.1', secureContext, checkServerIdentity: () => undefined, ...(known === undefined ? {} : { pskCallback: () => known ?? null }) })
    await once(c, 'secureConnect')
    const out = { psk: exportPsk(c), resumed: c.isSessionReused(), cipher: c.getCipher().name }
    c.resume()
    await once(c, 'end')
    c.end()
    await once(c, 'close')
    return out
  }
  const ours = await serve(TLS_CIPHERS)
  const nodeDefault = await serve()
  const a = await open(ours)
  const b = await open(ours)
  t.same(a.psk, serverSide[0], 'client and server hold the same PSK and identity')
  t.notSame(a.psk, b.psk, 'each handshake has its own')
  t.equal(a.psk!.psk.length, 32)
  t.match(a.psk!.identity, /^[0-9a-f]{32}$/)
  t.equal(a.cipher, 'TLS_AES_128_GCM_SHA256', 'our suite list: AES-128-GCM on a full handshake too')
  known = a.psk
  t.match(await open(ours), { resumed: true, cipher: 'TLS_AES_128_GCM_SHA256' }, 'a client with Node\'s default order resumes with the PSK')
  t.equal((await open(nodeDefault)).resumed, false, 'a server with Node\'s default order (AES-256-GCM-SHA384 first) ignores it')
})
