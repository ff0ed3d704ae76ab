// Why: the README's by-hand recipe failed as written (a second sidecar on the
// default admin port, no db app, no intention after `ca init`), and nothing
// ran it. This test runs the shell blocks of "By hand: web → db" exactly as the
// README has them, in a fresh directory that stands in for the clone (its
// `bin` is a link to this repository's bin/, so `bin/mesh-proxy.js` is the
// built CLI and `./mesh` is a new mesh dir), and checks what the text promises:
// bytes come back through web → db, the deny takes effect, and `intention
// check -explain` names the deciding intention.
//
// The only change made to the text: each port the walkthrough names (7000,
// 21000, 9191, 19000, 19001) is replaced by a free port picked at run time,
// since nothing guarantees those are free where the tests run. A block naming
// any other port fails the test, so that a new fixed port cannot slip through.
//
// Each block is marked by the HTML comment before it:
//   <!-- walkthrough: run -->                          run to the end (terminal 1)
//   <!-- walkthrough: start NAME until "TEXT" -->      a long-running process in
//                                                      its own terminal; next once it prints TEXT
//   <!-- walkthrough: run; then NAME prints "TEXT" --> run, then wait until NAME prints TEXT again
// Every process started is killed (its process group) at the end.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm, symlink } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ROOT } from '../helpers/paths.js'

type Step =
  | { readonly kind: 'run', readonly script: string, readonly then?: { readonly name: string, readonly text: string } }
  | { readonly kind: 'start', readonly script: string, readonly name: string, readonly until: string }

const MARK = /<!-- walkthrough: (.*?) -->\n```sh\n([\s\S]*?)```\n/g

/** The marked blocks of the README's walkthrough, in order. */
function steps (readme: string): Step[] {
  const out: Step[] = []
  for (const m of readme.matchAll(MARK)) {
    const [, how = '', script = ''] = m
    let g: RegExpExecArray | null
    if (how === 'run') out.push({ kind: 'run', script })
    else if ((g = /^run; then ([\w-]+) prints "(.+)"$/.exec(how)) !== null) out.push({ kind: 'run', script, then: { name: g[1]!, text: g[2]! } })
    else if ((g = /^start ([\w-]+) until "(.+)"$/.exec(how)) !== null) out.push({ kind: 'start', script, name: g[1]!, until: g[2]! })
    else throw new Error(`README.md: unknown walkthrough mark "${how}"`)
  }
  return out
}

/** The ports the walkthrough names; each is replaced by a free one. */
const PORTS = ['7000', '21000', '9191', '19000', '19001']

async function freePort (): Promise<number> {
  const s = createServer()
  await new Promise<void>(resolve => s.listen(0, '127.0.0.1', resolve))
  const { port } = s.address() as { port: number }
  await new Promise<void>(resolve => s.close(() => resolve()))
  return port
}

/** A process of the walkthrough: its output so far, and a wait for a text in it. */
class Proc {
  out = ''
  exited: number | null = null
  readonly #waiters: Array<() => void> = []
  constructor (readonly name: string, readonly child: ChildProcess) {
    const take = (d: Buffer): void => { this.out += d.toString(); this.#wake() }
    child.stdout!.on('data', take)
    child.stderr!.on('data', take)
    child.on('exit', code => { this.exited = code ?? -1; this.#wake() })
  }

  #wake (): void { for (const w of this.#waiters.splice(0)) w() }

  count (text: string): number { return this.out.split(text).length - 1 }

  /** Resolves once `text` has been printed more than `seen` times; rejects if the process ends first. */
  async waitFor (text: string, seen = 0): Promise<void> {
    while (this.count(text) <= seen) {
      if (this.exited !== null) throw new Error(`${this.name} exited ${this.exited} before printing "${text}":\n${this.out}`)
      await new Promise<void>(resolve => this.#waiters.push(resolve))
    }
  }
}

const started: Proc[] = []
const killAll = (signal: NodeJS.Signals): void => {
  for (const p of started) if (p.exited === null && p.child.pid !== undefined) { try { process.kill(-p.child.pid, signal) } catch {} }
}
process.once('exit', () => killAll('SIGKILL'))
// A file that times out gets SIGALRM from tap before it is ended: no sidecar may outlive it.
process.on('SIGALRM', () => killAll('SIGKILL'))

/**
 * A block as a terminal would run it: in its own process group (detached), so
 * that it can be ended whole. The reader's environment need not hold our
 * settings, so none is lent to the blocks, but one: the default admin address
 * (loopback, port 19000) is made one that is taken, as it is for the second sidecar
 * on a machine, so that a sidecar the text starts without its own --admin fails
 * here as it would for the reader.
 */
function shell (script: string, cwd: string, takenAdmin: string): ChildProcess {
  const env = { ...process.env }
  for (const k of ['MESH_DIR', 'MESH_PROXY_LOG_LEVEL', 'MESH_PROXY_WORKERS']) delete env[k]
  env.MESH_PROXY_ADMIN = takenAdmin
  return spawn('bash', ['-c', script], { cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env })
}

t.test('the README walkthrough, run as written: bytes through web → db, a deny that takes effect, -explain', async t => {
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8')
  const list = steps(readme)
  t.ok(list.length >= 7, `the README marks its walkthrough blocks (${list.length} found)`)

  const ports = new Map<string, string>()
  for (const p of PORTS) ports.set(p, String(await freePort()))
  for (const s of list) {
    for (const n of s.script.match(/\b\d{4,5}\b/g) ?? []) t.ok(ports.has(n), `port ${n} in a walkthrough block is one the test replaces`)
  }
  const rewrite = (script: string): string => script.replace(/\b\d{4,5}\b/g, n => ports.get(n) ?? n)

  const taken = createServer()
  await new Promise<void>(resolve => taken.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { taken.close() })
  const takenAdmin = `127.0.0.1:${(taken.address() as { port: number }).port}`

  const dir = await mkdtemp(join(tmpdir(), 'mesh-walkthrough-'))
  await symlink(join(ROOT, 'bin'), join(dir, 'bin'))
  t.teardown(async () => {
    killAll('SIGTERM')
    await Promise.all(started.map(async p => {
      if (p.exited !== null) return
      const timer = setTimeout(() => { try { process.kill(-p.child.pid!, 'SIGKILL') } catch {} }, 5000)
      await new Promise<void>(resolve => p.child.once('exit', () => resolve()))
      clearTimeout(timer)
    }))
    await rm(dir, { recursive: true, force: true })
  })

  const byName = new Map<string, Proc>()
  const runs: Array<{ script: string, out: string, code: number | null }> = []
  for (const s of list) {
    const script = rewrite(s.script)
    if (s.kind === 'start') {
      const p = new Proc(s.name, shell(script, dir, takenAdmin))
      started.push(p)
      byName.set(s.name, p)
      await p.waitFor(s.until)
      continue
    }
    const watch = s.then === undefined ? undefined : byName.get(s.then.name)
    if (s.then !== undefined && watch === undefined) throw new Error(`walkthrough: "${s.then.name}" is not started before it is waited for`)
    const seen = watch?.count(s.then!.text) ?? 0
    const p = new Proc('block', shell(script, dir, takenAdmin))
    started.push(p)
    await new Promise<void>(resolve => p.child.once('close', () => resolve()))
    runs.push({ script: s.script, out: p.out, code: p.exited })
    if (watch !== undefined) await watch.waitFor(s.then!.text, seen)
  }

  const dbApp = byName.get('db-app')
  const dbSidecar = byName.get('db-sidecar')
  t.ok(dbApp !== undefined && dbSidecar !== undefined && byName.has('web-sidecar'), 'the walkthrough starts db-app, db-sidecar and web-sidecar')
  const sends = runs.filter(r => r.script.includes("connect(9191, '127.0.0.1'"))
  t.equal(sends.length, 2, 'the web app connects twice: allowed, then denied')
  t.match(sends[0]?.out, /^db answers: hello from web$/m, 'bytes come back through web → db')
  t.equal(dbApp?.count('db app got: hello from web'), 1, 'the db app got the first connection\'s bytes, and nothing of the denied one')
  t.notMatch(sends[1]?.out, /db answers/, 'after the deny, no answer')
  t.match(sends[1]?.out, /^(connection closed, no answer|error: ECONNRESET)$/m, 'the web app sees the connection end, as the README says')
  t.match(dbSidecar?.out, /"source":"web","destination":"db","intention":"web => db".*"msg":"conn denied"/, 'db\'s sidecar logs conn denied by web => db')
  t.match(dbSidecar?.out, /"intention":"web => db".*"bytesToApp":14,.*"reason":"eof","msg":"conn closed"/, 'db\'s sidecar logs conn closed for the allowed one, naming web => db')
  t.match(byName.get('web-sidecar')?.out, /"upstream":"db".*"reason":"eof","msg":"conn closed"/, 'web\'s sidecar logs conn closed')

  const metrics = runs.find(r => r.script.includes('/metrics'))
  t.match(metrics?.out, /mesh_proxy_connections_total\{[^}]*result="allowed"[^}]*\} 1/, 'db\'s admin port counts the allowed connection')

  const check = runs.find(r => r.script.includes('intention check'))
  t.equal(check?.code, 1, 'intention check exits 1: Denied')
  t.match(check?.out, /^Denied\ndecided by web => db \(precedence 9\): intention web => db \(deny, precedence 9\) matched web => db$/m, '-explain prints the deciding intention, as the README shows it')
  const shown = /```\n(Denied\ndecided by [^\n]*)\n```/.exec(readme)?.[1]
  t.ok(shown !== undefined && check?.out.includes(shown), 'the output the README shows for -explain is the real one')


  // "Ctrl-C each of terminals 2 to 4 (a sidecar drains and exits 0)": Ctrl-C is SIGINT to the terminal's process group.
  for (const name of ['db-sidecar', 'web-sidecar']) {
    const p = byName.get(name)!
    const exited = p.exited !== null ? Promise.resolve(p.exited) : new Promise<number | null>(resolve => p.child.once('exit', code => resolve(code)))
    process.kill(-p.child.pid!, 'SIGINT')
    t.equal(await exited, 0, `${name}: Ctrl-C drains it and it exits 0`)
  }

  for (const r of runs.filter(r => !r.script.includes('intention check'))) t.equal(r.code, 0, `exits 0: ${r.script.split('\n', 1)[0]?.slice(0, 60) ?? ''}…`, { output: r.out })
})

t.test('the README starts with the two set-up commands, and the test one is what .ci/run runs', async t => {
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8')
  const first = /```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? ''
  t.match(first, /^npm ci && npm run demo\b/m, 'the demo, from a clean install')
  t.match(first, /^npm ci && npm test\b/m, 'the tests, from a clean install')
  const ci = await readFile(join(ROOT, '.ci', 'run'), 'utf8')
  t.match(ci, /\bnpm test\b/, '.ci/run runs npm test')
})
