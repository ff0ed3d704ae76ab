// Why: mesh certificates are ordinary X.509: OpenSSL's own tools must accept
// what we issue, and an OpenSSL client or server can stand on either side of
// a mesh-proxy. Skipped, with the reason printed, when openssl is absent.
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { connect, createServer, type AddressInfo } from 'node:net'
import { makeMesh, startApp, startSidecar, echo } from '../helpers/mesh.js'

if (spawnSync('openssl', ['version']).status !== 0) {
  t.comment('openssl is not installed (Debian package "openssl"): skipping the interop tests')
  t.pass('skipped: no openssl')
} else {
  t.test('openssl verify accepts our leaves', async t => {
    const mesh = await makeMesh(t, ['web'])
    const r = spawnSync('openssl', ['verify', '-CAfile', mesh.layout.bundle, mesh.layout.certFor('web')], { encoding: 'utf8' })
    t.equal(r.status, 0, r.stdout + r.stderr)
  })

  t.test('openssl s_client -> mesh-proxy inbound', async t => {
    const mesh = await makeMesh(t, ['web', 'db'])
    await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }])
    const app = await startApp(t, echo)
    const db = await startSidecar(t, { service: 'db', listen: '127.0.0.1:0', to: `127.0.0.1:${app.port}`, meshDir: mesh.dir })
    const child = spawn('openssl', ['s_client', '-quiet', '-no_ign_eof', '-verify_return_error', '-connect', `127.0.0.1:${db.addrs.inbound!.port}`,
      '-servername', 'db', '-verify_hostname', 'db', '-CAfile', mesh.layout.bundle, '-cert', mesh.layout.certFor('web'), '-key', mesh.layout.keyFor('web')], { stdio: ['pipe', 'pipe', 'pipe'] })
    let out = ''
    // s_client closes the whole connection at stdin EOF, so stdin stays open until the echo is back.
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); if (out.endsWith('\n')) child.stdin.end() })
    child.stdin.write('hello from openssl\n')
    const code = await new Promise(resolve => child.on('exit', resolve))
    t.equal(code, 0)
    t.equal(out, 'hello from openssl\n', 'echoed through the sidecar')
    await db.stop()
  })

  t.test('mesh-proxy outbound -> openssl s_server -Verify', async t => {
    const mesh = await makeMesh(t, ['web', 'db'])
    const free = createServer()
    await new Promise<void>(resolve => free.listen(0, '127.0.0.1', resolve))
    const port = (free.address() as AddressInfo).port
    await new Promise<void>(resolve => free.close(() => resolve()))
    const server = spawn('openssl', ['s_server', '-accept', `127.0.0.1:${port}`, '-naccept', '1', '-rev', '-Verify', '1', '-verify_return_error',
      '-cert', mesh.layout.certFor('db'), '-key', mesh.layout.keyFor('db'), '-CAfile', mesh.layout.bundle], { stdio: ['ignore', 'pipe', 'pipe'] })
    t.teardown(() => { server.kill() })
    await new Promise<void>(resolve => {
      let buf = ''
      server.stdout.on('data', (d: Buffer) => { buf += d.toString(); if (buf.includes('ACCEPT')) resolve() })
    })
    const web = await startSidecar(t, { service: 'web', upstream: [`db:0=127.0.0.1:${port}`], meshDir: mesh.dir })
    const c = connect(web.addrs.upstreams.get('db')!.port, '127.0.0.1')
    c.write('olleh\n')
    const [d] = await new Promise<[Buffer]>(resolve => c.once('data', (...a: [Buffer]) => resolve(a)))
    t.equal(d.toString(), 'hello\n', 's_server verified our client certificate and answered')
    c.destroy()
    await web.stop()
  })
}
