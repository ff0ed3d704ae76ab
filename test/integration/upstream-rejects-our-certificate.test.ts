// Why: with TLS 1.3 the client's handshake is over before the server has
// checked the client certificate, so the outbound has already sent the app's
// first bytes when the upstream's refusal (an alert) arrives. That is a refused
// connection, not a relayed one: logged as `conn refused` with the alert as the
// reason, counted as a TLS failure, no bytes counted as forwarded, and the app's
// connection reset. The upstream is openssl s_server, which trusts another CA.
import t from 'tap'
import { spawn } from 'node:child_process'
import { connect } from 'node:net'
import { createRootCa } from '../../src/ca/issue.js'
import { makeMesh, startSidecar } from '../helpers/mesh.js'
import { opensslMissing } from '../helpers/openssl-pki.js'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'

const missing = opensslMissing()
if (missing !== undefined) {
  t.comment(`skipping: ${missing}`)
  t.pass('skipped: no openssl')
} else {
  t.test('an upstream that refuses our client certificate: conn refused with the alert, the app reset', async t => {
    const mesh = await makeMesh(t, ['web', 'db'])
    const other = await createRootCa({ trustDomain: 'other.consul' })
    const otherCa = join(mesh.dir, 'other-ca.pem')
    await writeFile(otherCa, other.certPem)
    // db's SVID (so web accepts the server), but it trusts only the other CA: web's certificate is refused.
    const server = spawn('openssl', ['s_server', '-accept', '127.0.0.1:0', '-naccept', '1', '-tls1_3', '-Verify', '1', '-verify_return_error',
      '-cert', mesh.layout.certFor('db'), '-key', mesh.layout.keyFor('db'), '-CAfile', otherCa], { stdio: ['pipe', 'pipe', 'pipe'] }) // stdin open: s_server ends the connection at its EOF
    t.teardown(() => { server.kill() })
    const port = await new Promise<number>((resolve, reject) => {
      let buf = ''
      server.stdout.on('data', (d: Buffer) => { buf += d.toString(); const m = /ACCEPT .*:(\d+)/.exec(buf); if (m !== null) resolve(Number(m[1])) })
      server.once('exit', code => reject(new Error(`openssl s_server exited ${String(code)}`)))
    })
    const web = await startSidecar(t, { service: 'web', upstream: [`db:0=127.0.0.1:${port}`], meshDir: mesh.dir })
    const app = connect(web.addrs.upstreams.get('db')!.port, '127.0.0.1')
    let got = ''
    let error: string | undefined
    app.on('data', (d: Buffer) => { got += d.toString() })
    app.on('error', (e: Error & { code?: string }) => { error = e.code })
    app.write('hello\n')
    await new Promise(resolve => app.once('close', resolve))
    t.equal(got, '', 'nothing came back')
    t.equal(error, 'ECONNRESET', 'the app\'s connection is reset')
    const line = await web.sink.waitFor(l => l.msg === 'conn refused')
    t.match(line, { level: 40, reason: /^alert_/, peer: /\/svc\/db$/ }, 'conn refused, with the alert as the reason')
    t.match(String(line.err), /alert/i)
    t.same(web.sink.msgs('conn closed'), [], 'not logged as a relayed connection')
    t.equal(web.metrics.get('mesh_proxy_connections_total', { direction: 'outbound', result: 'tls_error' }), 1, 'counted as a TLS failure')
    t.equal(web.metrics.get('mesh_proxy_bytes_total', { direction: 'outbound', flow: 'from_app' }), 0, 'no bytes counted as forwarded')
    await web.stop()
  })
}
