// Why: the first things a newcomer types are --version and --help; a bug
// report needs the version with the Node and OpenSSL beneath it, and the
// same three must be in the log and on /metrics for a running sidecar.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { runCli, spawnCli } from '../helpers/cli.js'
import { makeMesh } from '../helpers/mesh.js'
import { ROOT } from '../helpers/paths.js'

const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version
const LINE = `mesh-proxy ${VERSION} (node ${process.version}, openssl ${process.versions.openssl})`

t.test('--version, -v and version: the version, then Node and OpenSSL', async t => {
  for (const args of [['--version'], ['-v'], ['version']]) {
    const r = await runCli(args)
    t.same({ code: r.code, out: r.out, err: r.err }, { code: 0, out: LINE, err: '' }, args.join(' '))
  }
})

t.test('worked examples in --help', async t => {
  const rows: Array<[string[], RegExp[]]> = [
    [['--help'], [/\nExamples:\n/, /mesh-proxy demo\n/, /mesh-proxy ca init --mesh-dir \.\/mesh\n/, /mesh-proxy intention create -allow web db/, /mesh-proxy run --service db /, /source <\(mesh-proxy completion bash\)/]],
    [['intention', '--help'], [/\nExamples:\n/, /mesh-proxy intention create -allow web db\n/, /mesh-proxy intention check web db -explain\n/, /mesh-proxy intention default-policy deny\n/]],
    [['ca', '--help'], [/\nExamples:\n/, /mesh-proxy ca init --mesh-dir \.\/mesh/, /mesh-proxy ca rotate --mesh-dir \.\/mesh\n/, /mesh-proxy ca retire-old --mesh-dir \.\/mesh\n/, /mesh-proxy ca bundle --mesh-dir \.\/mesh --format spiffe\n/]],
    [['run', '--help'], [/\nExamples:\n/, /--upstream db:9191/]]
  ]
  for (const [args, want] of rows) {
    const r = await runCli(args)
    t.equal(r.code, 0, `${args.join(' ')}: exit 0`)
    for (const re of want) t.match(r.out, re, `${args.join(' ')}: ${re.source}`)
  }
  t.notMatch((await runCli(['ca', 'init', '--help'])).out, /mesh-proxy demo/, 'the root examples stay on the root')
})

t.test('a running sidecar: version, node and openssl in "sidecar started" and mesh_proxy_build_info', async t => {
  const mesh = await makeMesh(t)
  const { sink } = spawnCli(t, ['run', '--service', 'web', '--upstream', 'db:0', '--mesh-dir', mesh.dir, '--admin', '127.0.0.1:0'])
  const admin = String((await sink.waitFor(l => l.msg === 'admin listening')).admin)
  const started = await sink.waitFor(l => l.msg === 'sidecar started')
  t.match(started, { version: VERSION, node: process.version, openssl: process.versions.openssl })
  const metrics = await (await fetch(`http://${admin}/metrics`)).text()
  t.match(metrics, `\nmesh_proxy_build_info{version="${VERSION}",node="${process.version}",openssl="${process.versions.openssl}"} 1\n`)
})
