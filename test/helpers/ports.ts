/**
 * Ports for tests that need a number, not a listener: the kernel's choice
 * (bind 0, note it, close), so that no test names a port something else may
 * hold. A port got this way has nothing listening on it until someone binds it.
 */
import { createServer, type AddressInfo } from 'node:net'
import { spawn, spawnSync } from 'node:child_process'

/** A loopback port nothing listens on right now. */
export async function freePort (): Promise<number> {
  const s = createServer()
  await new Promise<void>(resolve => s.listen(0, '127.0.0.1', resolve))
  const { port } = s.address() as AddressInfo
  await new Promise<void>(resolve => s.close(() => resolve()))
  return port
}

/**
 * A loopback port whose listener never accepts and whose accept queue is full,
 * so that a TCP connect to it stays pending (the kernel drops the SYNs): a
 * peer that never answers, without leaving loopback. Made by python3 (Node
 * accepts every connection it can); `python3Missing()` says when to skip.
 * Closed at teardown.
 */
export async function unansweredPort (t: { teardown: (fn: () => void) => void }): Promise<number> {
  const script = [
    'import socket, sys',
    "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(0)",
    'port = s.getsockname()[1]',
    'fill = []',
    'for _ in range(2):',
    "    c = socket.socket(); c.setblocking(False); c.connect_ex(('127.0.0.1', port)); fill.append(c)",
    'print(port, flush=True)',
    'sys.stdin.read()'
  ].join('\n')
  const child = spawn('python3', ['-c', script], { stdio: ['pipe', 'pipe', 'inherit'] })
  t.teardown(() => { child.kill('SIGKILL') })
  const line = await new Promise<string>((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('\n')) resolve(out.trim()) })
    child.once('exit', code => reject(new Error(`python3 exited ${String(code)} before naming its port`)))
  })
  return Number(line)
}

/** Why unansweredPort cannot run here, or undefined when it can. */
export function python3Missing (): string | undefined {
  return spawnSync('python3', ['-c', 'pass']).status === 0 ? undefined : 'python3 is not installed (Debian package "python3")'
}

/**
 * Wait until `cond` holds, checking every 5 ms, at most `maxChecks` times: for
 * state that no event announces (a gauge). Rejects when it never holds.
 */
export async function until (cond: () => boolean, maxChecks = 2000): Promise<void> {
  for (let i = 0; i < maxChecks; i++) {
    if (cond()) return
    await new Promise(resolve => setTimeout(resolve, 5))
  }
  throw new Error(`condition not met after ${maxChecks} checks`)
}
