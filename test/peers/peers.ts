// The real peers installed by test/peers/install.sh (Envoy, go-spiffe programs,
// SPIRE, spiffe-helper), found through the env file it writes, and spawned as
// child processes that never outlive the test file.
import type { Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { echoRoundTrip } from '../helpers/mesh.js'

/** The env file install.sh writes: `${MESH_PROXY_CACHE:-$HOME/.cache/mesh-proxy}/peers/env`. */
export const PEERS_ENV_FILE = join(process.env.MESH_PROXY_CACHE ?? join(homedir(), '.cache', 'mesh-proxy'), 'peers', 'env')

function readEnvFile (): Record<string, string> {
  if (!existsSync(PEERS_ENV_FILE)) return {}
  const env: Record<string, string> = {}
  for (const line of readFileSync(PEERS_ENV_FILE, 'utf8').split('\n')) {
    const eq = line.indexOf('=')
    if (eq > 0) env[line.slice(0, eq)] = line.slice(eq + 1)
  }
  return env
}

/**
 * The peer binaries named by `keys` (e.g. ENVOY_BIN), or why they cannot be
 * used. A missing peer is a skip on a developer's machine and a failure under
 * CI=true, where install.sh must have run: a green CI must not hide an
 * interop suite that never ran.
 */
export function needPeers (t: Test, keys: readonly string[]): { env: Record<string, string>, skip: string | false } {
  const env = readEnvFile()
  const missing = keys.filter(k => env[k] === undefined || !existsSync(env[k]!))
  if (missing.length === 0) return { env, skip: false }
  const reason = `${missing.join(', ')} not installed (${PEERS_ENV_FILE}): run bash test/peers/install.sh`
  if (process.env.CI === 'true') t.fail(`CI=true and ${reason}`)
  else t.comment(`skipping: ${reason}`)
  return { env, skip: reason }
}

/**
 * Children still running when the file is ended without its teardowns (tap's
 * SIGALRM on a timeout): killed then, as test/helpers/cli.ts does for sidecars.
 */
const live = new Set<ChildProcess>()
const killLive = (): void => { for (const c of live) c.kill('SIGKILL') }
process.once('exit', killLive)
process.on('SIGALRM', killLive)

/** A spawned peer: its stdout and stderr kept as text, a promise of its exit. */
export interface Peer {
  readonly child: ChildProcess
  readonly exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  stdout (): string
  stderr (): string
  /** Resolves with the first match of `re` in stdout+stderr (past or future); rejects if the process exits first. */
  waitFor (re: RegExp): Promise<RegExpMatchArray>
}

/** Spawn `bin args`; killed (SIGTERM, then SIGKILL) at teardown, awaited. */
export function spawnPeer (t: Test, bin: string, args: string[], opts: { env?: NodeJS.ProcessEnv, stdin?: boolean } = {}): Peer {
  const child = spawn(bin, args, { stdio: [opts.stdin === true ? 'pipe' : 'ignore', 'pipe', 'pipe'], env: opts.env ?? process.env })
  live.add(child)
  let out = ''
  let err = ''
  const waiters: Array<{ re: RegExp, resolve: (m: RegExpMatchArray) => void }> = []
  const check = (): void => {
    for (const w of [...waiters]) {
      const m = (out + '\n' + err).match(w.re)
      if (m !== null) { waiters.splice(waiters.indexOf(w), 1); w.resolve(m) }
    }
  }
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); check() })
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); check() })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>(resolve => {
    child.once('close', (code, signal) => { live.delete(child); resolve({ code, signal }) })
  })
  const name = bin.split('/').pop()!
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(timer)
  })
  return {
    child,
    exited,
    stdout: () => out,
    stderr: () => err,
    waitFor: (re: RegExp) => new Promise<RegExpMatchArray>((resolve, reject) => {
      const m = (out + '\n' + err).match(re)
      if (m !== null) { resolve(m); return }
      waiters.push({ re, resolve })
      void exited.then(({ code, signal }) => reject(new Error(`${name} exited (${String(code ?? signal)}) before printing ${String(re)}:\n${err.slice(-3000)}`)))
    })
  }
}

/**
 * Echo round trips to a plaintext `port`, one after another, until stopped
 * (results[i]: did the i-th come back whole); `after(n)` resolves once n more have finished.
 */
export function keepConnecting (port: number): { stop: () => Promise<void>, after: (n: number) => Promise<void>, results: boolean[] } {
  const results: boolean[] = []
  const waiters: Array<{ at: number, resolve: () => void }> = []
  let running = true
  const loop = (async () => {
    for (let i = 0; running; i++) {
      const msg = `c${i}`
      results.push(await echoRoundTrip(port, msg) === msg)
      for (const w of [...waiters]) if (results.length >= w.at) { waiters.splice(waiters.indexOf(w), 1); w.resolve() }
    }
  })()
  return {
    results,
    after: n => new Promise(resolve => waiters.push({ at: results.length + n, resolve })),
    stop: async () => { running = false; await loop }
  }
}

/**
 * A loopback port that was free a moment ago, for the one peer that cannot bind
 * port 0 itself: spire-server refuses bind_port = 0 ("bind_address and
 * bind_port must be configured"), and its agents need the port up front.
 */
export async function freePort (): Promise<number> {
  const { createServer } = await import('node:net')
  const s = createServer()
  await new Promise<void>(resolve => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as { port: number }).port
  await new Promise<void>(resolve => s.close(() => resolve()))
  return port
}
