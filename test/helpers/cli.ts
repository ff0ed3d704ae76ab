// Run the CLI in-process: main() returns the exit code; stdout lines are
// collected through its `out` parameter and stderr is captured.
import { main } from '../../src/cli/main.js'

/** Exit code, printed lines and stderr of one CLI call. */
export async function runCli (args: string[]): Promise<{ code: number, out: string, err: string }> {
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
