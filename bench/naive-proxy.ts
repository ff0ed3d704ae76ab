/**
 * The "naive Node" baseline: the obvious pipe() version of an mTLS proxy pair,
 * with no SPIFFE checks, no intentions, no timeouts (allowHalfOpen is set so
 * that the benchmark's request/EOF/answer exchange completes at all). It exists
 * so the cost and gain of mesh-proxy's own code are visible next to it.
 *
 * Two variants are floors, i.e. what Node itself reaches with the least code
 * (bench/history/session-4.md, "Node's floor"):
 * - `--resume`: one secure context for all connections (the naive version
 *   builds one per connect from the PEM options), and the outbound keeps the
 *   last TLS session it was given and offers it on the next connect: the least
 *   code that resumes (churn and memory). The session is set with setSession(),
 *   as mesh-proxy does, not with connect()'s `session` option, which Node 20
 *   decodes twice.
 * - `--plain`: no TLS on either side, a plain TCP relay pair (the cost of
 *   Node's per-chunk stream path alone; rr and bulk). Not a mesh proxy: a
 *   bound on what any Node relay can reach once TLS is added.
 *
 *   node dist/bench/naive-proxy.js in  <listenPort> <appPort>      <cert> <key> <ca> [--resume|--plain]
 *   node dist/bench/naive-proxy.js out <listenPort> <upstreamPort> <cert> <key> <ca> [--resume|--plain]
 */
import { readFileSync } from 'node:fs'
import net from 'node:net'
import tls from 'node:tls'

const [mode, listenPort, targetPort, certFile, keyFile, caFile, variant] = process.argv.slice(2)
const opts = { cert: readFileSync(certFile!), key: readFileSync(keyFile!), ca: readFileSync(caFile!) }
const plain = variant === '--plain'
const resume = variant === '--resume'
const onErr = (): void => {}
let session: Buffer | undefined

const context = resume ? { secureContext: tls.createSecureContext(opts) } : opts
const upstream = (): net.Socket => {
  const port = Number(targetPort)
  if (plain) return net.connect({ port, host: '127.0.0.1', allowHalfOpen: true })
  const up = tls.connect({ ...context, port, host: '127.0.0.1', servername: 'db' })
  if (!resume) return up
  // Not the `session` option: Node 20 decodes that twice (see src/dataplane/outbound.ts).
  if (session !== undefined) (up as tls.TLSSocket & { setSession: (s: Buffer) => void }).setSession(session)
  up.on('session', s => { session = s })
  return up
}

const done = (): void => { process.stdout.write('ready\n') }
if (mode === 'in') {
  const onConn = (s: net.Socket): void => {
    const app = net.connect({ port: Number(targetPort), host: '127.0.0.1', allowHalfOpen: true })
    s.pipe(app).pipe(s)
    s.on('error', onErr); app.on('error', onErr)
  }
  const server = plain ? net.createServer({ allowHalfOpen: true }, onConn) : tls.createServer({ ...opts, requestCert: true, rejectUnauthorized: true, allowHalfOpen: true }, onConn)
  server.listen(Number(listenPort), '127.0.0.1', done)
} else {
  net.createServer({ allowHalfOpen: true }, c => {
    const up = upstream()
    c.pipe(up).pipe(c)
    c.on('error', onErr); up.on('error', onErr)
  }).listen(Number(listenPort), '127.0.0.1', done)
}
