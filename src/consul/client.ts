/**
 * A small Consul agent HTTP client: CONSUL_HTTP_ADDR (http://, https://,
 * unix://), X-Consul-Token, CONSUL_CACERT, and blocking queries
 * (`?index=<X-Consul-Index>&wait=<s>`) with a client-side timeout so that a
 * hung TCP connection to the agent is noticed. node:http/https only.
 * Consul API docs followed: v1.15–1.20 (agent/connect/ca/leaf, agent/connect/ca/roots,
 * connect/intentions/match, health/connect, agent/self, agent/services,
 * agent/service/<id> with hash-based blocking, agent/service/register and
 * deregister, agent/connect/authorize).
 */
import http from 'node:http'
import https from 'node:https'
import { readFileSync } from 'node:fs'
import { ConfigError, ConsulError, toError } from '../core/errors.js'

/** Where and how to reach the agent. */
export interface ConsulOptions {
  /** `127.0.0.1:8500`, `http://h:p`, `https://h:p` or `unix:///path/consul.sock`. */
  readonly address: string
  readonly token?: string
  readonly caCertFile?: string
  /** Blocking query wait (s); the agent answers within wait + wait/16 jitter. */
  readonly waitSeconds?: number
}

/** One response. */
export interface ConsulResponse {
  readonly status: number
  /** X-Consul-Index, or 0 when absent. */
  readonly index: number
  /** X-Consul-ContentHash (hash-based blocking), when the agent sent one. */
  readonly hash?: string
  readonly body: unknown
}

/** A Consul agent client. */
export class ConsulClient {
  readonly #base: { protocol: 'http:' | 'https:', host?: string, port?: number, socketPath?: string }
  readonly #token: string | undefined
  readonly #agent: http.Agent
  readonly waitSeconds: number
  readonly address: string

  constructor (o: ConsulOptions) {
    this.address = o.address
    this.#base = parseAddress(o.address)
    this.#token = o.token
    this.waitSeconds = o.waitSeconds ?? 300
    this.#agent = this.#base.protocol === 'https:'
      ? new https.Agent({ keepAlive: true, ...(o.caCertFile === undefined ? {} : { ca: readFileSync(o.caCertFile) }) })
      : new http.Agent({ keepAlive: true })
  }

  /**
   * GET `path` (with its query). `block` makes it a blocking query: an index
   * (`?index=&wait=`) or, for the endpoints that support only hash-based
   * blocking (/v1/agent/service/<id>), a content hash (`?hash=&wait=`).
   * Rejects on transport errors, non-2xx and bad JSON.
   */
  get (path: string, block?: number | { hash: string }): Promise<ConsulResponse> {
    const sep = path.includes('?') ? '&' : '?'
    const wait = `wait=${this.waitSeconds}s`
    const full = block === undefined ? path : typeof block === 'number' ? `${path}${sep}index=${block}&${wait}` : `${path}${sep}hash=${encodeURIComponent(block.hash)}&${wait}`
    // The agent may hold a blocking query up to wait + wait/16; give it a little more, then give up.
    const timeoutMs = (block === undefined ? 10 : this.waitSeconds * 1.1 + 5) * 1000
    return this.request('GET', full, { timeoutMs, name: path })
  }

  /**
   * One request with a JSON body (PUT /v1/agent/service/register, POST
   * /v1/agent/connect/authorize): `timeoutMs` is how long the agent may take
   * before the request is abandoned (a ConsulError, `unreachable`).
   */
  request (method: 'GET' | 'PUT' | 'POST', path: string, o: { body?: unknown, timeoutMs: number, name?: string }): Promise<ConsulResponse> {
    const name = `${method} ${o.name ?? path}`
    const lib = this.#base.protocol === 'https:' ? https : http
    const payload = o.body === undefined ? undefined : JSON.stringify(o.body)
    const headers: Record<string, string> = {}
    if (this.#token !== undefined) headers['X-Consul-Token'] = this.#token
    if (payload !== undefined) headers['content-type'] = 'application/json'
    return new Promise((resolve, reject) => {
      const req = lib.request({ ...this.#base, agent: this.#agent, method, path, headers }, res => {
        const chunks: Buffer[] = []
        res.on('data', (d: Buffer) => chunks.push(d))
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8')
          const index = Number(res.headers['x-consul-index'] ?? 0)
          const hash = res.headers['x-consul-contenthash']
          if ((res.statusCode ?? 0) >= 300) return reject(new ConsulError(`${name}: HTTP ${res.statusCode ?? '?'}: ${text.slice(0, 200).trim()}`))
          try {
            // register/deregister answer with an empty body.
            const body: unknown = text === '' ? null : JSON.parse(text)
            resolve({ status: res.statusCode ?? 0, index: Number.isFinite(index) ? index : 0, body, ...(typeof hash === 'string' ? { hash } : {}) })
          } catch (err) {
            reject(new ConsulError(`${name}: response is not JSON`, { cause: err }))
          }
        })
        res.on('error', err => reject(new ConsulError(`${name}: ${err.message}`, { cause: err })))
      })
      req.setTimeout(o.timeoutMs, () => req.destroy(new ConsulError(`${name}: no answer from the agent at ${this.address} within ${formatMs(o.timeoutMs)}`, { unreachable: true })))
      req.on('error', err => reject(err instanceof ConsulError ? err : new ConsulError(`${name}: cannot reach the agent at ${this.address}: ${toError(err).message}`, { cause: err, unreachable: true })))
      req.end(payload)
    })
  }

  /** Close idle keep-alive sockets. Idempotent. */
  close (): void {
    this.#agent.destroy()
  }
}

/** `10 s`, `1500 ms`: a timeout as a message says it. */
function formatMs (ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`
}

function parseAddress (a: string): { protocol: 'http:' | 'https:', host?: string, port?: number, socketPath?: string } {
  if (a.startsWith('unix://')) return { protocol: 'http:', socketPath: a.slice('unix://'.length) }
  const withScheme = /^https?:\/\//.test(a) ? a : `http://${a}`
  let u: URL
  try { u = new URL(withScheme) } catch {
    throw new ConfigError('--consul-addr', `${JSON.stringify(a)} is not an address (host:port, http://host:port, https://host:port or unix:///path)`)
  }
  const protocol = u.protocol === 'https:' ? 'https:' : 'http:'
  return { protocol, host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || (protocol === 'https:' ? 443 : 8500)) }
}

/** Options of {@link BlockingWatch}. */
export interface WatchOptions<T> {
  readonly client: ConsulClient
  readonly path: string
  /** Validate and convert a response; throw to reject it (the previous good value stays). */
  readonly parse: (body: unknown, index: number) => T
  readonly onChange: (value: T, index: number) => void
  readonly onError: (err: Error, attempt: number) => void
  /** Backoff bounds (ms). */
  readonly minBackoffMs?: number
  readonly maxBackoffMs?: number
  /** Follow X-Consul-ContentHash instead of X-Consul-Index (endpoints with hash-based blocking only). */
  readonly byHash?: boolean
}

/**
 * A blocking-query loop ("pulled only on change"): a response with the same
 * index is not a change; an index that goes backwards resets to 0 (Consul's
 * rule); errors back off exponentially with jitter, capped.
 */
export class BlockingWatch<T> {
  readonly #o: WatchOptions<T>
  #index = 0
  #hash: string | undefined
  #closed = false
  #timer: NodeJS.Timeout | undefined
  #wake: (() => void) | undefined

  constructor (o: WatchOptions<T>) {
    this.#o = o
    void this.#loop()
  }

  async #loop (): Promise<void> {
    let attempt = 0
    while (!this.#closed) {
      try {
        if (this.#o.byHash === true) await this.#hashStep()
        else await this.#indexStep()
        attempt = 0
      } catch (err) {
        if (this.#closed) return
        attempt++
        this.#o.onError(toError(err), attempt)
        const min = this.#o.minBackoffMs ?? 250
        const max = this.#o.maxBackoffMs ?? 30_000
        const delay = Math.min(max, min * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2)
        await new Promise<void>(resolve => {
          this.#wake = resolve
          this.#timer = setTimeout(resolve, delay)
          this.#timer.unref()
        })
      }
    }
  }

  async #indexStep (): Promise<void> {
    const res = await this.#o.client.get(this.#o.path, this.#index === 0 ? undefined : this.#index)
    if (this.#closed) return
    let index = res.index
    if (index < this.#index) index = 0 // the agent's index went backwards: start over
    if (index !== 0 && index === this.#index) return // same index: not a change
    const value = this.#o.parse(res.body, index)
    this.#index = Math.max(index, 1)
    this.#o.onChange(value, index)
  }

  /** Hash-based blocking: the same hash is no change; the body's ContentHash when the header is missing. */
  async #hashStep (): Promise<void> {
    const res = await this.#o.client.get(this.#o.path, this.#hash === undefined ? undefined : { hash: this.#hash })
    if (this.#closed) return
    const inBody = (res.body as { ContentHash?: unknown } | null)?.ContentHash
    const hash = res.hash ?? (typeof inBody === 'string' ? inBody : undefined)
    // Without a hash there is nothing to block on: asking again at once would spin (agents before 1.3).
    if (hash === undefined) throw new ConsulError(`GET ${this.#o.path}: the agent sent no X-Consul-ContentHash to block on (hash-based blocking needs Consul 1.3 or later)`)
    if (hash === this.#hash) return
    const value = this.#o.parse(res.body, res.index)
    this.#hash = hash
    this.#o.onChange(value, res.index)
  }

  /** Stop. Idempotent. */
  close (): void {
    this.#closed = true
    clearTimeout(this.#timer)
    this.#wake?.()
  }
}
