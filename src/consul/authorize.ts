/**
 * `--authorize-via-agent`: each new inbound connection is decided by the
 * agent's `POST /v1/agent/connect/authorize` (Target, ClientCertURI,
 * ClientCertSerial), as Consul's built-in proxy does, with a short local cache
 * keyed by (URI, serial).
 *
 * Fail closed: an agent that does not answer within AUTHORIZE_TIMEOUT_MS (the
 * one place this timeout is enforced: the request's own deadline), answers
 * with an error, or answers something that is not a verdict, denies the
 * connection. Failures are never cached: the next connection asks again.
 * Consul API followed: v1.20 agent/connect (Authorize).
 */
import type { ConsulClient } from './client.js'
import { toError } from '../core/errors.js'

/** How long the agent may take to decide one connection before it is denied (fail closed). */
export const AUTHORIZE_TIMEOUT_MS = 1_000
/** How long an answer of the agent is reused for the same client certificate (URI and serial). */
export const AUTHORIZE_CACHE_MS = 1_000
/** Beyond this many cached answers, expired ones are dropped (a bound, not an LRU). */
const MAX_CACHED = 10_000

/** The agent's answer, or why there is none (then `allowed` is false). */
export interface AgentVerdict {
  readonly allowed: boolean
  readonly reason: string
  /** True when the agent gave no verdict (timeout, error, bad body): denied by us, not by it. */
  readonly failed?: boolean
}

/** Asks the agent, caches its answers, fails closed. */
export class AgentAuthorizer {
  readonly #client: ConsulClient
  readonly #target: string
  readonly #cache = new Map<string, { verdict: AgentVerdict, until: number }>()
  readonly #inflight = new Map<string, Promise<AgentVerdict>>()

  constructor (client: ConsulClient, target: string) {
    this.#client = client
    this.#target = target
  }

  /** The verdict for a client certificate (its URI SAN and serial, hex). Never rejects. */
  authorize (uri: string, serial: string): Promise<AgentVerdict> {
    const key = `${uri}\n${serial}`
    const now = Date.now()
    const hit = this.#cache.get(key)
    if (hit !== undefined && hit.until > now) return Promise.resolve(hit.verdict)
    let p = this.#inflight.get(key)
    if (p === undefined) {
      p = this.#ask(uri, serial).then(v => {
        this.#inflight.delete(key)
        if (v.failed !== true) this.#remember(key, v)
        return v
      })
      this.#inflight.set(key, p)
    }
    return p
  }

  async #ask (uri: string, serial: string): Promise<AgentVerdict> {
    try {
      const res = await this.#client.request('POST', '/v1/agent/connect/authorize', {
        body: { Target: this.#target, ClientCertURI: uri, ClientCertSerial: colonHex(serial) },
        timeoutMs: AUTHORIZE_TIMEOUT_MS
      })
      const b = res.body as { Authorized?: unknown, Reason?: unknown } | null
      if (typeof b?.Authorized !== 'boolean') return { allowed: false, failed: true, reason: 'the agent\'s authorize answer has no Authorized field; denied (fail closed)' }
      return { allowed: b.Authorized, reason: typeof b.Reason === 'string' && b.Reason !== '' ? b.Reason : (b.Authorized ? 'authorized by the agent' : 'denied by the agent') }
    } catch (err) {
      return { allowed: false, failed: true, reason: `${toError(err).message}; denied (fail closed)` }
    }
  }

  #remember (key: string, verdict: AgentVerdict): void {
    const now = Date.now()
    if (this.#cache.size >= MAX_CACHED) for (const [k, e] of this.#cache) if (e.until <= now) this.#cache.delete(k)
    if (this.#cache.size < MAX_CACHED) this.#cache.set(key, { verdict, until: now + AUTHORIZE_CACHE_MS })
  }
}

/** Consul's serial encoding (connect.EncodeSerialNumber): lowercase hex bytes joined by colons. */
export function colonHex (serial: string): string {
  const hex = serial.replace(/:/g, '').toLowerCase()
  const even = hex.length % 2 === 1 ? `0${hex}` : hex
  return even.match(/../g)?.join(':') ?? ''
}
