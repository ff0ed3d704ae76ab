// Run the CLI in-process: main() returns the exit code; stdout lines are
// collected through its `out` parameter and stderr is captured. Or run the
// real launcher as a process (spawnCli).
import type { Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { main } from '../../src/cli/main.js'
import { LogSink } from './mesh.js'
import { ROOT } from './paths.js'

/** Exit code, printed lines and stderr of one CLI call. */
export async function runCli (args: string[]): Promise<{ code: number, out: string, err: string }> {
  // `run` binds the default admin address unless told otherwise: never in a test (something else may hold it).
  if (args[0] === 'run' && !args.includes('--admin') && !args.includes('--dry-run')) args = [...args, '--admin', '127.0.0.1:0']
  const out: string[] = []
  const errs: string[] = []
  const orig = process.stderr.write.bind(process.stderr)
  process.stderr.write = ((s: string) => { errs.push(String(s)); return true }) as typeof process.stderr.write
  try {
    const code = await main(['node', 'mesh-proxy', ...args], l => out.push(l))
    return { code, out: out.join('\n'), err: errs.join('') }
  } finally {
    process.stderr.write = orig
  }
}

/**
 * Children still running when this test file is ended without its teardowns:
 * killed then, so that no sidecar outlives the run (a --workers primary's
 * workers follow it). A file that times out gets SIGALRM from tap, which then
 * ends it; the children's pipes would keep it alive until tap's SIGKILL, when
 * no 'exit' listener runs.
 */
const live = new Set<ChildProcess>()
const killLive = (): void => { for (const c of live) c.kill('SIGKILL') }
process.once('exit', killLive)
process.on('SIGALRM', killLive)

/**
 * The real launcher in its own process (`node bin/mesh-proxy.js ...args`, on
 * another Node binary when `node` is given): its
 * JSON log parsed as it comes, its stderr kept; killed at teardown.
 */
export function spawnCli (t: Test, args: string[], node = process.execPath): { child: ChildProcess, sink: LogSink, stderr: () => string } {
  const child = spawn(node, [join(ROOT, 'bin', 'mesh-proxy.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  live.add(child)
  t.teardown(() => { child.kill('SIGKILL'); live.delete(child) })
  const sink = new LogSink()
  child.stdout!.pipe(sink)
  let err = ''
  child.stderr!.on('data', (d: Buffer) => { err += d.toString() })
  return { child, sink, stderr: () => err }
}
