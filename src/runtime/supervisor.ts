/**
 * `--workers N` (N > 1), like Envoy's --concurrency or nginx's
 * worker_processes: this process becomes a small primary that runs no proxy
 * itself and N node:cluster workers that each run the whole sidecar on shared
 * listening sockets (SCHED_NONE: the kernel hands each new connection to one
 * worker; no per-connection hop through the primary).
 *
 * The primary:
 * - in mesh-dir mode, issues our leaf once before the workers start, and lets
 *   only worker 0 renew it and register us in the catalog (the others follow
 *   the files, as any sidecar does);
 * - serves the admin endpoints for all: /ready is 200 when every worker is
 *   ready, /metrics is every worker's metrics labelled worker="N", the rest
 *   come from worker 0;
 * - turns SIGTERM/SIGINT into a drain of every worker (a second one: close
 *   now) and SIGHUP into a reload of every worker (signals.ts); workers ignore
 *   the terminal's signals and take theirs from the primary only (worker.ts);
 * - restarts a worker that dies after it was ready (backoff 0.5 s doubling to
 *   30 s); a worker that fails to start stops everything with its error;
 * - passes each TLS 1.3 PSK a worker's inbound makes on to the other workers
 *   (psk.ts): a client that resumes lands on any of them.
 *
 * The messages it exchanges with the workers are in ipc.ts.
 */
import cluster, { type Worker } from 'node:cluster'
import type { Logger } from 'pino'
import type { Config } from '../core/config/types.js'
import { publicConfig } from '../core/config/public.js'
import { AdminServer, type AdminView } from '../admin/server.js'
import { mergeMetrics } from '../metrics/merge.js'
import { meshLayout, readMeshSettings } from '../meshdir/layout.js'
import { loadFromMeshDir } from '../plane/material.js'
import { SLOT_ENV, isToPrimary, receive, type AnswerMsg, type AskMsg, type ForwardedSignal, type PskMsg, type Question, type SignalMsg } from './ipc.js'
import { watchSignals, type SignalWatch } from './signals.js'

/** How long the primary waits for a worker's answer to an admin question. */
export const ASK_TIMEOUT_MS = 2000
/** The delay before a worker's first restart; each restart after doubles it. */
export const FIRST_RESTART_DELAY_MS = 500
/** The longest delay before a restart. */
export const MAX_RESTART_DELAY_MS = 30_000
/** A worker that ran this long before it died is restarted with the shortest delay again. */
export const STABLE_AFTER_MS = 60_000

/** The restart policy: the delay before a worker's restart number `restarts` (0 = its first). */
export function restartDelay (restarts: number): number {
  return Math.min(MAX_RESTART_DELAY_MS, FIRST_RESTART_DELAY_MS * 2 ** restarts)
}

interface Slot {
  readonly n: number
  worker: Worker | null
  started: boolean
  startedAt: number
  restarts: number
  timer?: NodeJS.Timeout
}

interface Pending {
  readonly worker: Worker
  readonly resolve: (v: unknown) => void
  readonly reject: (e: Error) => void
  readonly timer: NodeJS.Timeout
}

/** Admin questions in flight, each with its timeout; the answers come in through the primary's message handler. */
class Questions {
  #seq = 0
  readonly #pending = new Map<number, Pending>()

  async ask (w: Worker, what: Question): Promise<unknown> {
    if (!w.isConnected()) throw new Error('worker not connected')
    const id = ++this.#seq
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        reject(new Error(`worker ${w.process.pid ?? '?'} did not answer within ${ASK_TIMEOUT_MS} ms`))
      }, ASK_TIMEOUT_MS)
      this.#pending.set(id, { worker: w, resolve, reject, timer })
      w.send({ kind: 'mesh-proxy/ask', id, what } satisfies AskMsg)
    })
  }

  /** An answer from `w`; one to a question it was not asked (or after its timeout) is dropped. */
  answered (w: Worker, m: AnswerMsg): void {
    const p = this.#pending.get(m.id)
    if (p === undefined || p.worker !== w) return
    this.#pending.delete(m.id)
    clearTimeout(p.timer)
    if (m.error !== undefined) p.reject(new Error(m.error)); else p.resolve(m.value)
  }
}

/** The primary of `config.workers` workers, from the first fork until every worker has stopped. */
class Supervisor {
  readonly #config: Config
  readonly #log: Logger
  readonly #slots: Slot[]
  readonly #questions = new Questions()
  #admin: AdminServer | null = null
  #watch: SignalWatch | undefined
  #stopping = false
  #finished = false
  #exitCode = 0
  #resolve: (code: number) => void = () => {}

  constructor (config: Config, log: Logger) {
    this.#config = config
    this.#log = log
    this.#slots = Array.from({ length: config.workers }, (_, n) => ({ n, worker: null, started: false, startedAt: 0, restarts: 0 }))
  }

  async run (signals: NodeJS.EventEmitter): Promise<number> {
    this.#admin = this.#config.admin === null ? null : new AdminServer({ view: this.view(), logger: this.#log })
    if (this.#admin !== null) await this.#admin.start(this.#config.admin!)
    return await new Promise<number>(resolve => {
      this.#resolve = resolve
      cluster.on('exit', this.#onExit)
      this.#watch = watchSignals(signals, {
        drain: signal => { this.#stop(signal) },
        closeNow: () => { this.#stop('second signal') }, // the second SIGTERM makes the workers close at once
        reload: () => { this.#log.info({ signal: 'SIGHUP' }, 'reloading every worker'); this.#send('SIGHUP') }
      })
      for (const s of this.#slots) this.#fork(s)
    })
  }

  /** The merged admin view: /ready and /metrics of every worker, the rest from the first live one. */
  view (): AdminView {
    const first = async (what: Question): Promise<unknown> => { const l = this.#live()[0]; return l === undefined ? undefined : await this.#questions.ask(l.w, what) }
    return {
      ready: async () => await this.#ready(),
      metrics: async () => mergeMetrics((await Promise.all(this.#live().map(async ({ n, w }) => ({ worker: n, text: await this.#questions.ask(w, 'metrics').catch(() => '') as string })))).filter(x => x.text !== '')),
      config: async () => publicConfig(this.#config),
      certs: async () => await first('certs'),
      intentions: async () => await first('intentions')
    }
  }

  /** Only workers that said "started" have their answering side up: a question sent earlier would be lost. */
  #live (): Array<{ n: number, w: Worker }> {
    return this.#slots.flatMap(s => s.worker === null || !s.started ? [] : [{ n: s.n, w: s.worker }])
  }

  async #ready (): Promise<{ ready: boolean, body: unknown }> {
    const states = await Promise.all(this.#slots.map(async s => {
      if (s.worker === null) return { worker: s.n, state: 'restarting', ready: false }
      if (!s.started) return { worker: s.n, pid: s.worker.process.pid, state: 'starting', ready: false }
      const r = await this.#questions.ask(s.worker, 'ready').catch((err: Error) => ({ ready: false, body: { state: 'not answering', reason: err.message } })) as { ready: boolean, body: Record<string, unknown> }
      return { worker: s.n, pid: s.worker.process.pid, ready: r.ready, ...r.body }
    }))
    const ready = !this.#stopping && states.every(s => s.ready)
    return { ready, body: { state: this.#stopping ? 'draining' : ready ? 'ready' : 'starting', ready, workers: states } }
  }

  #send (signal: ForwardedSignal): void {
    for (const s of this.#slots) if (s.worker?.isConnected() === true) s.worker.send({ kind: 'mesh-proxy/signal', signal } satisfies SignalMsg)
  }

  #fork (s: Slot): void {
    s.timer = undefined
    const w = cluster.fork({ [SLOT_ENV]: String(s.n) })
    s.worker = w
    s.started = false
    w.on('message', (m: unknown) => {
      const msg = receive(m, isToPrimary, fields => { this.#log.debug({ worker: s.n, ...fields }, 'ipc message ignored') })
      if (msg?.kind === 'mesh-proxy/answer') this.#questions.answered(w, msg)
      else if (msg?.kind === 'mesh-proxy/psk') this.#passOn(s, msg)
      else if (msg?.kind === 'mesh-proxy/started') this.#started(s, w)
    })
  }

  /** A PSK from the worker in `from`, to every other started worker. */
  #passOn (from: Slot, m: PskMsg): void {
    for (const x of this.#slots) if (x !== from && x.started && x.worker?.isConnected() === true) x.worker.send(m)
  }

  #started (s: Slot, w: Worker): void {
    s.started = true
    // A stop that came while it was starting could not reach it (nothing listened yet): say it now.
    if (this.#stopping) { w.send({ kind: 'mesh-proxy/signal', signal: 'SIGTERM' } satisfies SignalMsg); return }
    s.startedAt = Date.now()
    this.#log.info({ worker: s.n, pid: w.process.pid }, 'worker started')
    if (this.#slots.every(x => x.started)) this.#log.info({ workers: this.#slots.length }, 'workers ready')
  }

  #stop (why: string): void {
    if (!this.#stopping) this.#log.info({ why, workers: this.#live().length }, 'shutting down: draining every worker')
    this.#stopping = true
    for (const s of this.#slots) { clearTimeout(s.timer); s.timer = undefined }
    this.#send('SIGTERM') // to a worker already draining, a second one: it closes at once
    this.#finishIfDone()
  }

  readonly #onExit = (w: Worker, code: number | null, signal: string | null): void => {
    const s = this.#slots.find(x => x.worker === w)
    if (s === undefined) return
    s.worker = null
    const fields = { worker: s.n, pid: w.process.pid, code, signal }
    if (this.#stopping) {
      if (code !== 0) this.#exitCode = 1
      this.#log.info(fields, 'worker stopped')
      this.#finishIfDone()
    } else if (!s.started) {
      // It never came up (a port in use, a bad certificate: its own error line says which): give up.
      this.#log.error(fields, 'worker failed to start; stopping all workers')
      this.#exitCode = 1
      this.#stop('a worker failed to start')
    } else {
      this.#restart(s, fields)
    }
  }

  #restart (s: Slot, fields: Record<string, unknown>): void {
    // The backoff starts over only for a worker that had been running a while: a crash loop keeps doubling it.
    if (Date.now() - s.startedAt > STABLE_AFTER_MS) s.restarts = 0
    const delay = restartDelay(s.restarts++)
    this.#log.error({ ...fields, restartInMs: delay }, 'worker exited; restarting it')
    s.timer = setTimeout(() => { this.#fork(s) }, delay)
  }

  #finishIfDone (): void {
    if (!this.#stopping || this.#finished || this.#slots.some(s => s.worker !== null)) return
    this.#finished = true
    this.#watch?.dispose()
    cluster.off('exit', this.#onExit)
    void (this.#admin?.close() ?? Promise.resolve()).then(() => {
      this.#log.info({ exitCode: this.#exitCode }, 'all workers stopped')
      this.#resolve(this.#exitCode)
    })
  }
}

/** Run as the primary of `config.workers` workers until a signal; resolves with the exit code. */
export async function runPrimary (config: Config, logger: Logger, signals: NodeJS.EventEmitter): Promise<number> {
  const log = logger.child({ role: 'primary' })
  if (config.plane.kind === 'mesh-dir') {
    // One leaf for all workers, issued here (if missing) before any of them looks.
    const layout = meshLayout(config.plane.meshDir)
    await loadFromMeshDir(layout, await readMeshSettings(layout), config.service, config.identityForm, config.leafTtlMs)
  }
  cluster.schedulingPolicy = cluster.SCHED_NONE
  return await new Supervisor(config, log).run(signals)
}
