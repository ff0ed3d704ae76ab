/**
 * A `--workers N` worker's side of the channel to its primary (supervisor.ts):
 * the primary's signals, its admin questions, the siblings' PSKs.
 */
import cluster from 'node:cluster'
import { EventEmitter } from 'node:events'
import type { Logger } from 'pino'
import type { AdminView } from '../admin/server.js'
import { toError } from '../core/errors.js'
import type { SharedPsk } from '../tls/psk.js'
import { SLOT_ENV, isToWorker, receive, type AnswerMsg, type AskMsg, type PskMsg, type StartedMsg } from './ipc.js'

/** This process's worker slot (0..N-1), or null when it is not a mesh-proxy worker. */
export function workerSlot (): number | null {
  const v = process.env[SLOT_ENV]
  return cluster.isWorker && v !== undefined ? Number(v) : null
}

/** What a worker does with the channel to its primary. */
export interface WorkerChannel {
  /** SIGTERM and SIGHUP as the primary decides them (for watchSignals). */
  readonly signals: EventEmitter
  /** Say "started": from now on the primary asks this worker. */
  started (): void
  /** Hand a PSK our inbound made to the other workers. */
  sharePsk (psk: SharedPsk): void
  close (): void
}

/** Answer one admin question from `view` (undefined while the worker starts). */
function answer (view: AdminView | undefined, msg: AskMsg): void {
  const reply = (a: Omit<AnswerMsg, 'kind' | 'id'>): void => { process.send?.({ kind: 'mesh-proxy/answer', id: msg.id, ...a } satisfies AnswerMsg) }
  if (view === undefined) { reply({ error: 'worker starting' }); return }
  view[msg.what]().then(value => reply({ value }), (err: unknown) => reply({ error: toError(err).message }))
}

/**
 * Worker side: the primary's signals as an emitter, answers to its admin
 * questions from `view`, the siblings' PSKs to `adoptPsk`, and a way to say
 * "started". A message of another shape is logged at debug and ignored.
 *
 * The terminal's SIGINT/SIGHUP (sent to the whole process group) are ignored
 * here: the primary forwards what it decides (signals.ts is its policy). A
 * SIGTERM sent to this process itself counts as one from the primary.
 */
export function workerChannel (view: () => AdminView | undefined, adoptPsk: (psk: SharedPsk) => void, logger: Logger): WorkerChannel {
  const signals = new EventEmitter()
  const ignored = (fields: { kind?: string, why: string }): void => { logger.debug(fields, 'ipc message ignored') }
  const onMessage = (m: unknown): void => {
    const msg = receive(m, isToWorker, ignored)
    if (msg?.kind === 'mesh-proxy/psk') adoptPsk(msg.psk)
    else if (msg?.kind === 'mesh-proxy/signal') signals.emit(msg.signal)
    else if (msg?.kind === 'mesh-proxy/ask') answer(view(), msg)
  }
  const onTerm = (): void => { signals.emit('SIGTERM') }
  const ignore = (): void => {}
  // Should the primary die (SIGKILL, crash), node:cluster itself exits the worker
  // when the IPC channel closes: no orphans (test/runtime/workers.test.ts).
  process.on('message', onMessage)
  process.on('SIGTERM', onTerm)
  process.on('SIGINT', ignore)
  process.on('SIGHUP', ignore)
  return {
    signals,
    started: () => { process.send?.({ kind: 'mesh-proxy/started' } satisfies StartedMsg) },
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
