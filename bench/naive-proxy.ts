/**
 * The "naive Node" baseline: the obvious pipe() version of an mTLS proxy pair,
 * with no SPIFFE checks, no intentions, no timeouts (allowHalfOpen is set so
 * that the benchmark's request/EOF/answer exchange completes at all). It exists so the cost and
 * gain of mesh-proxy's own relay are visible in bench/relay-throughput.ts.
 *
 *   node dist/bench/naive-proxy.js in  <listenPort> <appPort>  <cert> <key> <ca>
 *   node dist/bench/naive-proxy.js out <listenPort> <upstreamPort> <cert> <key> <ca>
 */
import { readFileSync } from 'node:fs'
import net from 'node:net'
import tls from 'node:tls'

const [mode, listenPort, targetPort, certFile, keyFile, caFile] = process.argv.slice(2)
const opts = { cert: readFileSync(certFile!), key: readFileSync(keyFile!), ca: readFileSync(caFile!) }
const onErr = (): void => {}

if (mode === 'in') {
  tls.createServer({ ...opts, requestCert: true, rejectUnauthorized: true, allowHalfOpen: true }, s => {
    const app = net.connect({ port: Number(targetPort), host: '127.0.0.1', allowHalfOpen: true })
    s.pipe(app).pipe(s)
    s.on('error', onErr); app.on('error', onErr)
  }).listen(Number(listenPort), '127.0.0.1', () => process.stdout.write('ready\n'))
} else {
  net.createServer({ allowHalfOpen: true }, c => {
    const up = tls.connect({ ...opts, port: Number(targetPort), host: '127.0.0.1', servername: 'db' })
    c.pipe(up).pipe(c)
    c.on('error', onErr); up.on('error', onErr)
  }).listen(Number(listenPort), '127.0.0.1', () => process.stdout.write('ready\n'))
}
