// Why: Node reports a TLS peer's close_notify and its bare TCP close (a killed
// sidecar, a dead host) alike, as 'end'; src/tls/end.ts tells them apart, and
// the relay turns a bare close into a reset of the app instead of a shorter
// stream. This holds the verdict to every way the two reach a reader: data and
// close_notify in one TCP segment with the FIN held back, a reader paused by
// backpressure, TLS 1.2 and 1.3, either side reading, and peers that are not Node
// (openssl s_client sends close_notify; s_server never does; kill -9 sends none).
// The first rows are the ones an earlier probe took to fail on Node 20 and 22.
import t, { type Test } from 'tap'
import { connect, createServer, type TLSSocket, type SecureVersion } from 'node:tls'
import { connect as tcpConnect, createServer as tcpServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { endedCleanly, trackTlsEnd } from '../../src/tls/end.js'
import { probeTls } from '../../src/tls/probe.js'
import { ROOT } from '../helpers/paths.js'
import { freePort } from '../helpers/ports.js'
import { opensslMissing } from '../helpers/openssl-pki.js'

const dev = (f: string): string => join(ROOT, 'certs-dev', f)
const key = readFileSync(dev('db.key'))
const cert = readFileSync(dev('db.pem'))
const ca = readFileSync(dev('ca.pem'))
const KiB = 1024

/** How the sending side ends. */
type Ending = 'close_notify' | 'bare'

interface Row {
  readonly why: string
  readonly ending: Ending
  readonly size: number
  /** The reader is the TLS client (the server sends), or the server (the client sends). */
  readonly reader: 'client' | 'server'
  /** Deliver the last data, close_notify included, in one TCP write, and the FIN only after the reader has all the data. */
  readonly coalesce?: boolean
  /** The reader does not read until the sender is done (backpressure). */
  readonly paused?: boolean
  readonly maxVersion?: SecureVersion
}

const rows: Row[] = [
  { why: 'data and close_notify in one segment, FIN held back', ending: 'close_notify', size: 100, reader: 'client', coalesce: true },
  { why: '1 MiB, its last data and close_notify in one segment, FIN held back', ending: 'close_notify', size: 1024 * KiB, reader: 'client', coalesce: true },
  { why: 'a bare close, FIN held back after the data', ending: 'bare', size: 100, reader: 'client', coalesce: true },
  { why: 'close_notify then FIN', ending: 'close_notify', size: 100, reader: 'client' },
  { why: 'a bare close', ending: 'bare', size: 100, reader: 'client' },
  { why: '1 MiB then close_notify', ending: 'close_notify', size: 1024 * KiB, reader: 'client' },
  { why: '1 MiB then a bare close', ending: 'bare', size: 1024 * KiB, reader: 'client' },
  { why: 'close_notify while the reader is paused', ending: 'close_notify', size: 256 * KiB, reader: 'client', paused: true },
  { why: 'a bare close while the reader is paused', ending: 'bare', size: 256 * KiB, reader: 'client', paused: true },
  { why: 'TLS 1.2: close_notify', ending: 'close_notify', size: 100, reader: 'client', maxVersion: 'TLSv1.2' },
  { why: 'TLS 1.2: a bare close', ending: 'bare', size: 100, reader: 'client', maxVersion: 'TLSv1.2' },
  { why: 'TLS 1.2: data and close_notify in one segment, FIN held back', ending: 'close_notify', size: 100, reader: 'client', coalesce: true, maxVersion: 'TLSv1.2' },
  { why: 'the server reads: close_notify', ending: 'close_notify', size: 100, reader: 'server' },
  { why: 'the server reads: a bare close', ending: 'bare', size: 100, reader: 'server' },
  { why: 'the server reads 1 MiB then close_notify', ending: 'close_notify', size: 1024 * KiB, reader: 'server' },
  { why: 'the server reads 1 MiB then a bare close', ending: 'bare', size: 1024 * KiB, reader: 'server' }
]

t.test('the probe turns tracking on, on this Node', async t => {
  t.equal((await probeTls()).endTracking, true, `${process.version} tells a bare TCP close from close_notify`)
})

for (const row of rows) {
  t.test(`${row.why}: ${row.ending === 'bare' ? 'a truncation' : 'a clean end'}`, async t => {
    const got = await run(t, row)
    t.equal(got.bytes, row.size, 'every byte sent before the end arrived')
    t.equal(got.clean, row.ending === 'close_notify', 'the verdict')
  })
}

/** One connection as the row says; the reader's byte count and verdict. */
async function run (t: Test, row: Row): Promise<{ bytes: number, clean: boolean }> {
  const payload = Buffer.alloc(row.size, 0x61)
  let readerGot = 0
  let allArrived!: () => void
  const arrived = new Promise<void>(resolve => { allArrived = resolve })
  let senderDone!: () => void
  const sent = new Promise<void>(resolve => { senderDone = resolve })
  /** Send and end as the row says; `sent` settles once the kernel has it all. */
  const send = (s: TLSSocket): void => {
    if (row.ending === 'close_notify') s.end(payload, senderDone)
    else s.write(payload, () => { s.destroy(); senderDone() })
  }
  let readerSide!: (s: TLSSocket) => void
  const verdict = new Promise<{ bytes: number, clean: boolean }>((resolve, reject) => {
    readerSide = (s: TLSSocket) => {
      trackTlsEnd(s, true)
      const count = (d: Buffer): void => { readerGot += d.length; if (readerGot >= row.size) allArrived() }
      // A reading server first answers the client's hello byte: its tickets precede that answer,
      // so the client has read them before it closes (unread bytes would make its close a reset).
      if (row.reader === 'server') s.once('data', () => { s.write('k'); s.on('data', count) })
      else s.on('data', count)
      s.on('error', reject)
      s.once('end', () => { resolve({ bytes: readerGot, clean: endedCleanly(s) }); s.end() })
    }
  })
  const server = createServer({ key, cert, ca, allowHalfOpen: true, ...(row.maxVersion !== undefined ? { maxVersion: row.maxVersion } : {}) }, s => {
    s.on('error', () => {}) // a bare close's sender is destroyed; the reader's answer may meet it
    if (row.reader === 'server') readerSide(s)
    // Only once the client has spoken: Node 20 and 22 send no close_notify for
    // a server's end() in the same tick as its handshake's end (probe.ts).
    else s.once('data', () => send(s))
  })
  await listen(t, server)
  let port = (server.address() as AddressInfo).port
  let relay: Relay | undefined
  if (row.coalesce === true) {
    relay = await coalescingRelay(t, port, arrived)
    port = relay.port
  }
  const c = connect({ host: '127.0.0.1', port, ca, checkServerIdentity: () => undefined })
  c.on('error', () => {})
  t.teardown(() => { c.destroy() })
  await once(c, 'secureConnect')
  if (row.reader === 'server') {
    c.write('h')
    await once(c, 'data')
    send(c)
    return await verdict
  }
  readerSide(c)
  if (row.paused === true) c.pause()
  relay?.hold()
  c.write('go')
  if (row.paused === true) {
    await sent
    t.ok(c.readableLength < row.size, 'the reader had stopped reading before the end arrived')
    c.resume()
  }
  return await verdict
}

interface Relay { readonly port: number, hold (): void }

/**
 * A TCP relay between client and server. After hold(), it keeps everything the
 * server sends, writes it to the client in one write when the server's FIN
 * comes, and passes that FIN on only once `release` settles.
 */
async function coalescingRelay (t: Test, upstream: number, release: Promise<void>): Promise<Relay> {
  let holding = false
  const r = tcpServer({ allowHalfOpen: true }, (down: Socket) => {
    const up = tcpConnect({ host: '127.0.0.1', port: upstream, allowHalfOpen: true })
    up.on('error', () => down.destroy())
    down.on('error', () => up.destroy())
    down.pipe(up)
    const kept: Buffer[] = []
    up.on('data', (d: Buffer) => { if (holding) kept.push(d); else down.write(d) })
    up.on('end', () => {
      down.write(Buffer.concat(kept))
      release.then(() => down.end(), () => down.destroy())
    })
  })
  await listen(t, r)
  return { port: (r.address() as AddressInfo).port, hold: () => { holding = true } }
}

async function listen (t: Test, s: Server): Promise<void> {
  s.listen(0, '127.0.0.1')
  await once(s, 'listening')
  t.teardown(() => { s.close() })
}

const noOpenssl = opensslMissing()
t.test('peers that are not Node', { skip: noOpenssl }, async t => {
  t.test('openssl s_client sends close_notify at the end of its input: clean', async t => {
    const server = createServer({ key, cert, ca, allowHalfOpen: true })
    const verdict = new Promise<boolean>(resolve => server.once('secureConnection', (s: TLSSocket) => {
      trackTlsEnd(s, true)
      s.resume()
      s.once('end', () => { resolve(endedCleanly(s)); s.end() })
    }))
    await listen(t, server)
    const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${(server.address() as AddressInfo).port}`, '-CAfile', dev('ca.pem'), '-no_ign_eof'], { stdio: ['pipe', 'ignore', 'ignore'] })
    t.teardown(() => { child.kill('SIGKILL') })
    child.stdin.end(Buffer.alloc(4 * KiB, 0x61))
    t.equal(await verdict, true)
  })

  for (const who of ['s_client', 's_server'] as const) {
    t.test(`openssl ${who} killed (-9) after sending: a truncation`, async t => {
      const size = 64 * KiB
      let got = 0
      let all!: () => void
      const arrived = new Promise<void>(resolve => { all = resolve })
      const judge = (s: TLSSocket): Promise<boolean> => {
        trackTlsEnd(s, true)
        s.on('data', (d: Buffer) => { got += d.length; if (got >= size) all() })
        s.on('error', () => {})
        return new Promise(resolve => s.once('end', () => resolve(endedCleanly(s))))
      }
      let verdict: Promise<boolean>
      let args: string[]
      let connected: Promise<unknown> | undefined
      if (who === 's_client') {
        const server = createServer({ key, cert, ca, allowHalfOpen: true })
        const secure = once(server, 'secureConnection') as Promise<[TLSSocket]>
        verdict = secure.then(([s]) => judge(s))
        connected = secure
        await listen(t, server)
        args = ['s_client', '-connect', `127.0.0.1:${(server.address() as AddressInfo).port}`, '-CAfile', dev('ca.pem'), '-ign_eof']
      } else {
        args = ['s_server', '-accept', `127.0.0.1:${await freePort()}`, '-cert', dev('db.pem'), '-key', dev('db.key'), '-naccept', '1']
      }
      const child = spawn('openssl', args, { stdio: ['pipe', 'pipe', 'ignore'] })
      t.teardown(() => { child.kill('SIGKILL') })
      child.stdout.resume()
      if (who === 's_server') {
        await new Promise<void>(resolve => { let out = ''; child.stdout.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('ACCEPT')) resolve() }) })
        const c = connect({ host: '127.0.0.1', port: Number(args[2]!.split(':')[1]), ca, checkServerIdentity: () => undefined })
        c.on('error', () => {})
        await once(c, 'secureConnect')
        verdict = judge(c)
        t.teardown(() => { c.destroy() })
      }
      await connected // input written to s_client before its handshake was seen to go missing
      child.stdin.write(Buffer.alloc(size, 0x61)) // its stdin stays open: only the kill ends it
      await arrived
      child.kill('SIGKILL')
      t.equal(await verdict!, false)
      t.equal(got, size)
    })
  }
})
