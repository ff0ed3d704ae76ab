/**
 * The messages between the `--workers N` primary and its workers (node:cluster
 * IPC), as one discriminated union on `kind`. What arrives on the channel is
 * parsed, never cast: {@link parseMessage} checks every field a handler reads,
 * and a message of another shape is ignored by its receiver (and logged at
 * debug, naming its kind only: a PSK message carries key material).
 *
 * Primary -> worker: ask, signal, psk. Worker -> primary: started, answer, psk.
 */
import type { AdminView } from '../admin/server.js'
import type { SharedPsk } from '../tls/psk.js'

/** The environment variable that tells a forked worker its slot (0..N-1). */
export const SLOT_ENV = 'MESH_PROXY_WORKER_SLOT'

/** An admin question the primary asks a worker: one of the view's endpoints. */
export type Question = keyof AdminView
const QUESTIONS: ReadonlySet<string> = new Set<Question>(['ready', 'metrics', 'config', 'certs', 'intentions'])

/** The signals the primary passes on (SIGINT arrives at a worker as SIGTERM). */
export type ForwardedSignal = 'SIGTERM' | 'SIGHUP'
const SIGNALS: ReadonlySet<string> = new Set<ForwardedSignal>(['SIGTERM', 'SIGHUP'])

export interface AskMsg { readonly kind: 'mesh-proxy/ask', readonly id: number, readonly what: Question }
export interface AnswerMsg { readonly kind: 'mesh-proxy/answer', readonly id: number, readonly value?: unknown, readonly error?: string }
export interface SignalMsg { readonly kind: 'mesh-proxy/signal', readonly signal: ForwardedSignal }
/** A worker's "started": from now on the primary asks it. */
export interface StartedMsg { readonly kind: 'mesh-proxy/started' }
/** A worker's new PSK, to the primary and from it to every other worker. */
export interface PskMsg { readonly kind: 'mesh-proxy/psk', readonly psk: SharedPsk }

export type IpcMessage = AskMsg | AnswerMsg | SignalMsg | StartedMsg | PskMsg
/** What a worker acts on. */
export type ToWorker = AskMsg | SignalMsg | PskMsg
/** What the primary acts on. */
export type ToPrimary = AnswerMsg | StartedMsg | PskMsg

/** A parsed message, or why what arrived is not one (`kind` when it had a string one). */
export type Parsed = { readonly ok: true, readonly msg: IpcMessage } | { readonly ok: false, readonly kind?: string, readonly why: string }

type Fields = Record<string, unknown>

const isObject = (v: unknown): v is Fields => typeof v === 'object' && v !== null && !Array.isArray(v)
const isId = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) > 0

/**
 * The fields adoptPsk reads, with their types. Whether the key, identity
 * and expiry are acceptable is adoptPsk's decision (tls/psk.ts).
 */
export function isSharedPsk (v: unknown): v is SharedPsk {
  if (!isObject(v) || !isObject(v.peer)) return false
  return typeof v.generation === 'string' && typeof v.identity === 'string' && typeof v.psk === 'string' &&
    typeof v.expiresAt === 'number' && typeof v.peer.uri === 'string' && typeof v.peer.serial === 'string' && typeof v.peer.notAfter === 'number'
}

/** Each kind's check of its own fields: why not, or null when it is well formed. */
const CHECKS: Readonly<Record<IpcMessage['kind'], (m: Fields) => string | null>> = {
  'mesh-proxy/ask': m => !isId(m.id) ? 'id is not a positive integer' : typeof m.what !== 'string' || !QUESTIONS.has(m.what) ? 'unknown question' : null,
  'mesh-proxy/answer': m => !isId(m.id) ? 'id is not a positive integer' : m.error !== undefined && typeof m.error !== 'string' ? 'error is not a string' : null,
  'mesh-proxy/signal': m => typeof m.signal !== 'string' || !SIGNALS.has(m.signal) ? 'unknown signal' : null,
  'mesh-proxy/started': () => null,
  'mesh-proxy/psk': m => isSharedPsk(m.psk) ? null : 'psk is not a shared PSK'
}

/** Parse one message as it came off the channel. */
export function parseMessage (m: unknown): Parsed {
  if (!isObject(m)) return { ok: false, why: 'not an object' }
  const kind = m.kind
  if (typeof kind !== 'string') return { ok: false, why: 'no kind' }
  const check = Object.hasOwn(CHECKS, kind) ? CHECKS[kind as IpcMessage['kind']] : undefined
  if (check === undefined) return { ok: false, kind, why: 'unknown kind' }
  const why = check(m)
  return why === null ? { ok: true, msg: m as unknown as IpcMessage } : { ok: false, kind, why }
}

/** Type guard: a message a worker acts on. */
export function isToWorker (m: IpcMessage): m is ToWorker {
  return m.kind === 'mesh-proxy/ask' || m.kind === 'mesh-proxy/signal' || m.kind === 'mesh-proxy/psk'
}

/** Type guard: a message the primary acts on. */
export function isToPrimary (m: IpcMessage): m is ToPrimary {
  return m.kind === 'mesh-proxy/answer' || m.kind === 'mesh-proxy/started' || m.kind === 'mesh-proxy/psk'
}

/**
 * Parse `m` for a receiver that acts on `guard`'s messages: the message, or
 * undefined after `ignored` was told why (the caller logs it at debug).
 */
export function receive<T extends IpcMessage> (m: unknown, guard: (m: IpcMessage) => m is T, ignored: (fields: { kind?: string, why: string }) => void): T | undefined {
  const p = parseMessage(m)
  if (!p.ok) { ignored(p.kind === undefined ? { why: p.why } : { kind: p.kind, why: p.why }); return undefined }
  if (!guard(p.msg)) { ignored({ kind: p.msg.kind, why: 'not for this side' }); return undefined }
  return p.msg
}
