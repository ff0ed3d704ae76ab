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
 *   now) and SIGHUP into a reload of every worker; workers ignore the terminal's
 *   signals and take theirs from the primary only;
 * - restarts a worker that dies after it was ready (backoff 0.5 s doubling to
 *   30 s); a worker that fails to start stops everything with its error;
 * - passes each TLS 1.3 PSK a worker's inbound makes on to the other workers
 *   (psk.ts): a client that resumes lands on any of them.
 */
import cluster, { type Worker } from 'node:cluster'
import { EventEmitter } from 'node:events'
import type { Logger } from 'pino'
import type { Config } from '../core/config/types.js'
import { publicConfig } from '../core/config/public.js'
import { AdminServer, type AdminView } from '../admin/server.js'
import { mergeMetrics } from '../metrics/merge.js'
import { meshLayout, readMeshSettings } from '../meshdir/layout.js'
import { loadFromMeshDir } from '../plane/material.js'
import { toError } from '../core/errors.js'
import type { SharedPsk } from '../tls/psk.js'

const SLOT_ENV = 'MESH_PROXY_WORKER_SLOT'
/** How long the primary waits for a worker's answer to an admin question. */
const ASK_TIMEOUT_MS = 2000
const MAX_RESTART_DELAY_MS = 30_000
/** A worker that ran this long before it died is restarted with the shortest delay again. */
const STABLE_AFTER_MS = 60_000

type Question = keyof AdminView
interface Ask { kind: 'mesh-proxy/ask', id: number, what: Question }
interface Answer { kind: 'mesh-proxy/answer', id: number, value?: unknown, error?: string }
interface SignalMsg { kind: 'mesh-proxy/signal', signal: 'SIGTERM' | 'SIGHUP' }
interface ReadyMsg { kind: 'mesh-proxy/started' }
/** A worker's new PSK, to the primary and from it to every other worker. */
interface PskMsg { kind: 'mesh-proxy/psk', psk: SharedPsk }

/** This process's worker slot (0..N-1), or null when it is not a mesh-proxy worker. */
export function workerSlot (): number | null {
  const v = process.env[SLOT_ENV]
  return cluster.isWorker && v !== undefined ? Number(v) : null
}

/** What a worker does with the channel to its primary. */
export interface WorkerChannel {
  /** SIGTERM and SIGHUP as the primary decides them. */
  readonly signals: EventEmitter
  /** Say "started": from now on the primary asks this worker. */
  started (): void
  /** Hand a PSK our inbound made to the other workers. */
  sharePsk (psk: SharedPsk): void
  close (): void
}

/**
 * Worker side: the primary's signals as an emitter (for runSidecar), answers
 * to its admin questions from `view`, the siblings' PSKs to `adoptPsk`, and a
 * way to say "started". The terminal's SIGINT/SIGHUP (sent to the whole
 * process group) are ignored here: the primary forwards what it decides.
 */
export function workerChannel (view: () => AdminView | undefined, adoptPsk: (psk: SharedPsk) => void): WorkerChannel {
  const signals = new EventEmitter()
  const onMessage = (m: unknown): void => {
    const msg = m as { kind?: string, signal?: SignalMsg['signal'], id?: number, what?: Question, psk?: SharedPsk }
    if (msg.kind === 'mesh-proxy/psk' && msg.psk !== undefined) adoptPsk(msg.psk)
    if (msg.kind === 'mesh-proxy/signal' && msg.signal !== undefined) signals.emit(msg.signal)
    if (msg.kind === 'mesh-proxy/ask' && msg.id !== undefined && msg.what !== undefined) {
      const v = view()
      const reply = (a: Omit<Answer, 'kind' | 'id'>): void => { process.send?.({ kind: 'mesh-proxy/answer', id: msg.id, ...a }) }
      if (v === undefined) { reply({ error: 'worker starting' }); return }
      v[msg.what]().then(value => reply({ value }), (err: unknown) => reply({ error: toError(err).message }))
    }
  }
  const onTerm = (): void => { signals.emit('SIGTERM') }
  const ignore = (): void => {}
  // Should the primary die (SIGKILL, crash), node:cluster itself exits the worker
  // when the IPC channel closes: no orphans (test/cli/workers.test.ts).
  process.on('message', onMessage)
  process.on('SIGTERM', onTerm)
  process.on('SIGINT', ignore)
  process.on('SIGHUP', ignore)
  return {
    signals,
    started: () => { process.send?.({ kind: 'mesh-proxy/started' } satisfies ReadyMsg) },
    sharePsk: (psk: SharedPsk) => { if (process.connected) process.send?.({ kind: 'mesh-proxy/psk', psk } satisfies PskMsg) },
    close: () => {
      process.off('message', onMessage)
      process.off('SIGTERM', onTerm)
      process.off('SIGINT', ignore)
      process.off('SIGHUP', ignore)
      // The IPC channel keeps a worker alive: let go of it so that the process can end.
      if (process.connected) process.disconnect()
    }
  }
}

interface Slot {
  readonly n: number
  worker: Worker | null
  started: boolean
  startedAt: number
  restarts: number
  timer?: NodeJS.Timeout
}

let askSeq = 0

function ask (w: Worker, what: Question): Promise<unknown> {
  const id = ++askSeq
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { w.off('message', on); reject(new Error(`worker ${w.process.pid ?? '?'} did not answer within ${ASK_TIMEOUT_MS} ms`)) }, ASK_TIMEOUT_MS)
    const on = (m: Partial<Answer>): void => {
      if (m.kind !== 'mesh-proxy/answer' || m.id !== id) return
      clearTimeout(timer)
      w.off('message', on)
      if (m.error !== undefined) reject(new Error(m.error)); else resolve(m.value)
    }
    w.on('message', on)
    if (!w.isConnected()) { clearTimeout(timer); w.off('message', on); reject(new Error('worker not connected')); return }
    w.send({ kind: 'mesh-proxy/ask', id, what } satisfies Ask)
  })
}

/** Run as the primary of `config.workers` workers until a signal; resolves with the exit code. */
export async function runPrimary (config: Config, logger: Logger, signals: NodeJS.EventEmitter): Promise<number> {
  const log = logger.child({ role: 'primary' })
  if (config.plane.kind === 'mesh-dir') {
    // One leaf for all workers, issued here (if missing) before any of them looks.
    const layout = meshLayout(config.plane.meshDir)
    await loadFromMeshDir(layout, await readMeshSettings(layout), config.service, config.leafTtlMs)
  }
  cluster.schedulingPolicy = cluster.SCHED_NONE
  const slots: Slot[] = Array.from({ length: config.workers }, (_, n) => ({ n, worker: null, started: false, startedAt: 0, restarts: 0 }))
  let stopping = false
  let signalsSeen = 0
  let exitCode = 0

  // Only workers that said "started" have their answering side up: a question sent earlier would be lost.
  const live = (): Array<{ n: number, w: Worker }> => slots.flatMap(s => s.worker === null || !s.started ? [] : [{ n: s.n, w: s.worker }])
  const view: AdminView = {
    ready: async () => {
      const states = await Promise.all(slots.map(async s => {
        if (s.worker === null) return { worker: s.n, state: 'restarting', ready: false }
        if (!s.started) return { worker: s.n, pid: s.worker.process.pid, state: 'starting', ready: false }
        const r = await ask(s.worker, 'ready').catch((err: Error) => ({ ready: false, body: { state: 'not answering', reason: err.message } })) as { ready: boolean, body: Record<string, unknown> }
        return { worker: s.n, pid: s.worker.process.pid, ready: r.ready, ...r.body }
      }))
      const ready = !stopping && states.every(s => s.ready)
      return { ready, body: { state: stopping ? 'draining' : ready ? 'ready' : 'starting', ready, workers: states } }
    },
    metrics: async () => mergeMetrics((await Promise.all(live().map(async ({ n, w }) => ({ worker: n, text: await ask(w, 'metrics').catch(() => '') as string })))).filter(x => x.text !== '')),
    config: async () => publicConfig(config),
    certs: async () => { const l = live()[0]; return l === undefined ? undefined : await ask(l.w, 'certs') },
    intentions: async () => { const l = live()[0]; return l === undefined ? undefined : await ask(l.w, 'intentions') }
  }
  const admin = config.admin === null ? null : new AdminServer({ view, logger: log })
  if (admin !== null) await admin.start(config.admin!)

  return await new Promise<number>(resolve => {
    const finishIfDone = (): void => {
      if (!stopping || slots.some(s => s.worker !== null)) return
      signals.off('SIGTERM', onTerm)
      signals.off('SIGINT', onInt)
      signals.off('SIGHUP', onHup)
      cluster.off('exit', onExit)
      void (admin?.close() ?? Promise.resolve()).then(() => {
        log.info({ exitCode }, 'all workers stopped')
        resolve(exitCode)
      })
    }
    const send = (signal: SignalMsg['signal']): void => {
      for (const s of slots) if (s.worker?.isConnected() === true) s.worker.send({ kind: 'mesh-proxy/signal', signal } satisfies SignalMsg)
    }
    const fork = (s: Slot): void => {
      s.timer = undefined
      const w = cluster.fork({ [SLOT_ENV]: String(s.n) })
      s.worker = w
      s.started = false
      w.on('message', (m: Partial<ReadyMsg> | Partial<PskMsg>) => {
        if (m.kind === 'mesh-proxy/psk') {
          for (const x of slots) if (x !== s && x.started && x.worker?.isConnected() === true) x.worker.send(m)
          return
        }
        if (m.kind !== 'mesh-proxy/started') return
        s.started = true
        // A stop that came while it was starting could not reach it (nothing listened yet): say it now.
        if (stopping) { w.send({ kind: 'mesh-proxy/signal', signal: 'SIGTERM' } satisfies SignalMsg); return }
        s.startedAt = Date.now()
        log.info({ worker: s.n, pid: w.process.pid }, 'worker started')
        if (slots.every(x => x.started)) log.info({ workers: slots.length }, 'workers ready')
      })
    }
    const stop = (why: string): void => {
      signalsSeen++
      if (!stopping) log.info({ why, workers: live().length }, 'shutting down: draining every worker')
      stopping = true
      for (const s of slots) { clearTimeout(s.timer); s.timer = undefined }
      send('SIGTERM') // the second one makes the workers close at once
      finishIfDone()
    }
    const onExit = (w: Worker, code: number | null, signal: string | null): void => {
      const s = slots.find(x => x.worker === w)
      if (s === undefined) return
      s.worker = null
      const fields = { worker: s.n, pid: w.process.pid, code, signal }
      if (stopping) {
        if (code !== 0) exitCode = 1
        log.info(fields, 'worker stopped')
        finishIfDone()
        return
      }
      if (!s.started) {
        // It never came up (a port in use, a bad certificate: its own error line says which): give up.
        log.error(fields, 'worker failed to start; stopping all workers')
        exitCode = 1
        stop('a worker failed to start')
        return
      }
      // The backoff starts over only for a worker that had been running a while: a crash loop keeps doubling it.
      if (Date.now() - s.startedAt > STABLE_AFTER_MS) s.restarts = 0
      const delay = Math.min(MAX_RESTART_DELAY_MS, 500 * 2 ** s.restarts++)
      log.error({ ...fields, restartInMs: delay }, 'worker exited; restarting it')
      s.timer = setTimeout(() => fork(s), delay)
    }
    const onTerm = (): void => { stop(signalsSeen === 0 ? 'SIGTERM' : 'second signal') }
    const onInt = (): void => { stop(signalsSeen === 0 ? 'SIGINT' : 'second signal') }
    const onHup = (): void => { log.info({ signal: 'SIGHUP' }, 'reloading every worker'); send('SIGHUP') }
    cluster.on('exit', onExit)
    signals.on('SIGTERM', onTerm)
    signals.on('SIGINT', onInt)
    signals.on('SIGHUP', onHup)
    for (const s of slots) fork(s)
  })
}
