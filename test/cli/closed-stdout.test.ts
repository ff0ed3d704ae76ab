// Why: `mesh-proxy ... | head -1` is how people read long output; a reader
// that stops early must not turn into an 'Error: write EPIPE' stack trace and
// exit 1. The real launcher runs with its stdout the write end of a FIFO that
// has no reader left, so every write it makes fails with EPIPE (no race with
// how fast a reader reads); and once as a real `| head -1` with more output
// than a pipe holds.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ROOT } from '../helpers/paths.js'
import { makeMesh } from '../helpers/mesh.js'

const BIN = join(ROOT, 'bin', 'mesh-proxy.js')
const q = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`

/** `mesh-proxy ...args` with stdout a FIFO whose only reader has closed: its exit code and stderr. */
function withClosedStdout (dir: string, args: string[]): { code: number | null, err: string, wrote: string } {
  const fifo = join(dir, `fifo-${args.join('-').replace(/\W/g, '')}`)
  // fd 3 reads and writes (so opening fd 4 for writing does not block), then goes: fd 4 has no reader.
  const sh = `mkfifo ${q(fifo)} && exec 3<>${q(fifo)} 4>${q(fifo)} 3<&- && ${q(process.execPath)} ${q(BIN)} ${args.map(q).join(' ')} >&4 4>&-; echo "exit $?"`
  const r = spawnSync('bash', ['-c', sh], { encoding: 'utf8' })
  return { code: Number(/exit (\d+)/.exec(r.stdout)?.[1] ?? NaN), err: r.stderr, wrote: r.stdout }
}

t.test('a closed stdout ends the command normally', async t => {
  const mesh = await makeMesh(t)
  await mesh.writeIntentions([{ source: 'web', destination: 'db', action: 'allow' }])
  const web = await mesh.leaf('web')
  const pem = join(mesh.dir, 'web-inspect.pem')
  await writeFile(pem, web.certPem)
  const rows: Array<[string[], number]> = [
    [['run', '--help'], 0],
    [['--help'], 0],
    [['--version'], 0],
    [['intention', 'list', '--mesh-dir', mesh.dir], 0],
    [['intention', 'check', 'billing', 'db', '--mesh-dir', mesh.dir], 1], // Denied is still exit 1
    [['cert', 'inspect', pem], 0],
    [['completion', 'bash'], 0]
  ]
  for (const [args, code] of rows) {
    const r = withClosedStdout(mesh.dir, args)
    t.equal(r.code, code, `${args.slice(0, 2).join(' ')}: exit ${code}`)
    t.equal(r.err, '', `${args.slice(0, 2).join(' ')}: nothing on stderr (no EPIPE stack trace)`)
  }
})

t.test('intention list | head -1: exit 0 on both sides of the pipe', async t => {
  const mesh = await makeMesh(t)
  // ~150 KiB of listing: more than a pipe buffers, so the writer meets the closed pipe.
  await mesh.writeIntentions(Array.from({ length: 2000 }, (_, i) => ({ source: `service-${i}`, destination: 'db', action: 'allow' as const, description: 'x'.repeat(40) })))
  const sh = `set -o pipefail; ${q(process.execPath)} ${q(BIN)} intention list --mesh-dir ${q(mesh.dir)} | head -1`
  const r = spawnSync('bash', ['-c', sh], { encoding: 'utf8' })
  t.equal(r.status, 0, 'pipefail: every side exited 0')
  t.equal(r.stdout.split('\n').length, 2, 'one line through head')
  t.equal(r.stderr, '', 'no EPIPE stack trace')
})

t.test('cert inspect of a missing file: one line naming it, exit 1', async t => {
  const dir = t.testdir({})
  const r = spawnSync(process.execPath, [BIN, 'cert', 'inspect', join(dir, 'nope.pem')], { encoding: 'utf8' })
  t.equal(r.status, 1)
  t.equal(r.stderr, `mesh-proxy: error: ${join(dir, 'nope.pem')}: cannot read (no such file)\n`)
  t.notMatch(r.stderr, /ENOENT/)
})
