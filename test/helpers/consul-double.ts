// A test double of the Consul agent HTTP API: the endpoints the sidecar
// uses, with their documented shapes (seeded from ../shared/conformance/consul
// and test/fixtures/consul) and blocking-query semantics: X-Consul-Index on
// every answer; a request with ?index=N is held until the resource's index
// passes N or `wait` ends, and then answered with the current index (the same
// one if nothing changed). The agent's own services (/v1/agent/services,
// /v1/agent/service/<id>) block by hash instead (?hash=H: held while the
// service's ContentHash is H), as Consul's do; register and deregister change
// them; /v1/agent/connect/authorize answers as `authorizeWith` says (or hangs).
// Tests change state (rotate the leaf, add a root, flip an intention, move
// upstream instances) and can kill and restart the "agent" on the same port.
import { createServer, type Server, type IncomingMessage, type ServerResponse } from 'node:http'
import { createHash } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { AddressInfo, Socket } from 'node:net'
import type { Test } from 'tap'
import type { IssuedCert } from '../../src/ca/issue.js'
import { TD, type TestMesh } from './mesh.js'
import { ROOT } from './paths.js'

interface Held { res: ServerResponse, timer: NodeJS.Timeout, key: string, since: number, body: () => unknown }
interface HeldByHash { res: ServerResponse, timer: NodeJS.Timeout, id: string, hash: string }

/** A documented response shape of test/fixtures/consul (README.md there names the API version). */
export function consulFixture<T = Record<string, unknown>> (file: string): T {
  return JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'consul', file), 'utf8')) as T
}

/** What /v1/agent/connect/authorize answers: a verdict, or 'hang' (never answer). */
export type AuthorizeAnswer = { Authorized: boolean, Reason: string } | 'hang'

/** ContentHash of a service definition: 16 hex digits of its JSON, as Consul's are 16. */
function contentHash (v: unknown): string {
  return createHash('sha256').update(JSON.stringify(v)).digest('hex').slice(0, 16)
}

/** One fake agent. */
export class ConsulDouble {
  index = 10
  readonly #modified = new Map<string, number>()
  readonly #values = new Map<string, unknown>()
  readonly #held = new Set<Held>()
  readonly #sockets = new Set<Socket>()
  readonly requests: string[] = []
  /** Called after every answer, with the index sent (tests await answers instead of sleeping). */
  onAnswer: ((key: string, index: number) => void) | undefined
  tokenSeen: string | undefined
  #server: Server | undefined
  port = 0
  /** Cap on how long a blocking query is held (Consul's default wait is 5 min). */
  maxWaitMs = 5000
  /** The agent's local services, by ID (GET /v1/agent/services, /v1/agent/service/<id>). */
  readonly services = new Map<string, Record<string, unknown>>()
  readonly #heldByHash = new Set<HeldByHash>()
  /** GET /v1/agent/self's answer. */
  self: unknown = consulFixture('agent-self.json')
  /** POST /v1/agent/connect/authorize: the verdict for each request (default: allowed). */
  authorizeWith: (req: { Target: string, ClientCertURI: string, ClientCertSerial: string }) => AuthorizeAnswer = () => ({ Authorized: true, Reason: 'Matched intention: default allow' })
  /** 'register' (body), 'deregister' (id), 'authorize' (request body) as they arrive. */
  readonly events = new EventEmitter()

  /** Put a service definition on the agent (registration by config file or API); wakes hash-blocked queries on it. */
  setService (id: string, def: Record<string, unknown>): void {
    const { ContentHash: _drop, ...body } = def
    this.services.set(id, body)
    for (const h of [...this.#heldByHash]) if (h.id === id) this.#answerService(h)
  }

  /** Remove a service; hash-blocked queries on it get a 404. */
  removeService (id: string): void {
    this.services.delete(id)
    for (const h of [...this.#heldByHash]) if (h.id === id) this.#answerService(h)
  }

  /** Replace a resource (bumps the global index, wakes its blocked queries). */
  set (key: string, value: unknown): void {
    this.index++
    this.#values.set(key, value)
    this.#modified.set(key, this.index)
    for (const h of [...this.#held]) if (h.key === key) this.#answer(h)
  }

  setLeaf (service: string, certPem: string, keyPem: string, serial = String(this.index)): void {
    this.set(`leaf/${service}`, { SerialNumber: serial, CertPEM: certPem, PrivateKeyPEM: keyPem, Service: service, ServiceURI: '', ValidAfter: '', ValidBefore: '', CreateIndex: this.index, ModifyIndex: this.index })
  }

  setRoots (trustDomain: string, rootPems: string[]): void {
    this.set('roots', { ActiveRootID: 'r0', TrustDomain: trustDomain, Roots: rootPems.map((RootCert, i) => ({ ID: `r${i}`, Name: `root ${i}`, RootCert, IntermediateCerts: null, Active: i === 0 })) })
  }

  setIntentions (destination: string, list: Array<{ source: string, action: 'allow' | 'deny' }>): void {
    this.set(`intentions/${destination}`, { [destination]: list.map((x, i) => ({ ID: `i${i}`, SourceNS: 'default', SourceName: x.source, DestinationNS: 'default', DestinationName: destination, SourceType: 'consul', Action: x.action, Meta: {}, CreateIndex: this.index, ModifyIndex: this.index })) })
  }

  setInstances (service: string, instances: Array<{ host: string, port: number }>): void {
    this.set(`health/${service}`, instances.map(i => ({ Node: { Node: 'n1', Address: '127.0.0.1' }, Service: { Service: `${service}-sidecar-proxy`, Address: i.host, Port: i.port, Proxy: { DestinationServiceName: service } }, Checks: [] })))
  }

  #key (url: URL): string | undefined {
    const p = url.pathname
    let m: RegExpExecArray | null
    if ((m = /^\/v1\/agent\/connect\/ca\/leaf\/([^/]+)$/.exec(p)) !== null) return `leaf/${m[1]}`
    if (p === '/v1/agent/connect/ca/roots') return 'roots'
    if (p === '/v1/connect/intentions/match' && url.searchParams.get('by') === 'destination') return `intentions/${url.searchParams.get('name') ?? ''}`
    if ((m = /^\/v1\/health\/connect\/([^/]+)$/.exec(p)) !== null) return `health/${m[1]}`
    return undefined
  }

  /** The agent's own endpoints; true when `url` was one of them. */
  #agentEndpoint (req: IncomingMessage, res: ServerResponse, url: URL): boolean {
    const p = url.pathname
    let m: RegExpExecArray | null
    if (p === '/v1/agent/self') { this.#json(res, this.self); return true }
    if (p === '/v1/agent/services') {
      this.#json(res, Object.fromEntries([...this.services].map(([id, s]) => [id, s])))
      return true
    }
    if ((m = /^\/v1\/agent\/service\/([^/]+)$/.exec(p)) !== null && m[1] !== 'register') {
      const id = decodeURIComponent(m[1]!)
      const hash = url.searchParams.get('hash')
      const waitS = Number((url.searchParams.get('wait') ?? '0s').replace(/s$/, ''))
      const h: HeldByHash = { res, id, hash: hash ?? '', timer: setTimeout(() => this.#answerService(h), Math.min(waitS * 1000, this.maxWaitMs)) }
      const cur = this.services.get(id)
      if (hash === null || cur === undefined || contentHash(cur) !== hash) this.#answerService(h)
      else this.#heldByHash.add(h)
      return true
    }
    if (req.method !== 'PUT' && req.method !== 'POST') return false
    if (p === '/v1/agent/service/register' || p === '/v1/agent/connect/authorize' || p.startsWith('/v1/agent/service/deregister/')) {
      this.#withBody(req, body => this.#write(req, res, p, body))
      return true
    }
    return false
  }

  #write (_req: IncomingMessage, res: ServerResponse, p: string, body: Record<string, unknown>): void {
    if (p === '/v1/agent/service/register') {
      this.setService(String(body.ID ?? body.Name), body)
      this.events.emit('register', body)
      res.writeHead(200).end()
    } else if (p === '/v1/agent/connect/authorize') {
      this.events.emit('authorize', body)
      const answer = this.authorizeWith(body as { Target: string, ClientCertURI: string, ClientCertSerial: string })
      if (answer !== 'hang') this.#json(res, answer) // a hang: the request stays open until stop()
    } else {
      const id = decodeURIComponent(p.slice('/v1/agent/service/deregister/'.length))
      if (!this.services.has(id)) { res.writeHead(404, { 'content-type': 'text/plain' }).end(`Unknown service ID "${id}". Ensure that the service ID is passed, not the service name.`); return }
      this.removeService(id)
      this.events.emit('deregister', id)
      res.writeHead(200).end()
    }
  }

  #withBody (req: IncomingMessage, then: (body: Record<string, unknown>) => void): void {
    const chunks: Buffer[] = []
    req.on('data', (d: Buffer) => chunks.push(d))
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8')
      then(text === '' ? {} : JSON.parse(text) as Record<string, unknown>)
    })
  }

  #json (res: ServerResponse, body: unknown, headers: Record<string, string> = {}): void {
    res.writeHead(200, { 'content-type': 'application/json', 'x-consul-index': String(this.index), ...headers })
    res.end(JSON.stringify(body))
  }

  #answerService (h: HeldByHash): void {
    this.#heldByHash.delete(h)
    clearTimeout(h.timer)
    if (h.res.writableEnded) return
    const cur = this.services.get(h.id)
    if (cur === undefined) {
      h.res.writeHead(404, { 'content-type': 'text/plain' }).end(`unknown service ID: ${h.id}`)
      return
    }
    const hash = contentHash(cur)
    this.#json(h.res, { ...cur, ContentHash: hash }, { 'x-consul-contenthash': hash })
    this.onAnswer?.(`service/${h.id}`, this.index)
  }

  #handle (req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://agent')
    this.requests.push(`${req.method === 'GET' ? '' : `${req.method ?? ''} `}${url.pathname}${url.search}`)
    this.tokenSeen = req.headers['x-consul-token'] as string | undefined
    if (this.#agentEndpoint(req, res, url)) return
    const key = this.#key(url)
    // Like Consul: no intentions or no instances is an empty answer, not an error.
    if (key?.startsWith('intentions/') === true && !this.#values.has(key)) this.#values.set(key, { [key.slice('intentions/'.length)]: [] })
    if (key?.startsWith('health/') === true && !this.#values.has(key)) this.#values.set(key, [])
    if (key === undefined || !this.#values.has(key)) {
      res.writeHead(404, { 'content-type': 'text/plain' })
      res.end('not found')
      return
    }
    const since = Number(url.searchParams.get('index') ?? 0)
    const waitS = Number((url.searchParams.get('wait') ?? '0s').replace(/s$/, ''))
    const h: Held = { res, key, since, body: () => this.#values.get(key), timer: setTimeout(() => this.#answer(h), Math.min(waitS * 1000, this.maxWaitMs)) }
    if (since === 0 || (this.#modified.get(key) ?? 0) > since) this.#answer(h)
    else this.#held.add(h)
  }

  #answer (h: Held): void {
    this.#held.delete(h)
    clearTimeout(h.timer)
    if (h.res.writableEnded) return
    h.res.writeHead(200, { 'content-type': 'application/json', 'x-consul-index': String(this.#modified.get(h.key) ?? this.index) })
    h.res.end(JSON.stringify(h.body()))
    this.onAnswer?.(h.key, this.#modified.get(h.key) ?? this.index)
  }

  /** Listen (on `port`, to come back on the same port after stop()). */
  async start (port = this.port): Promise<number> {
    const server = createServer((req, res) => this.#handle(req, res))
    server.on('connection', s => { this.#sockets.add(s); s.once('close', () => this.#sockets.delete(s)) })
    await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(port, '127.0.0.1', resolve) })
    this.#server = server
    this.port = (server.address() as AddressInfo).port
    return this.port
  }

  /** Kill the agent: every connection is cut, held queries included. Idempotent. */
  async stop (): Promise<void> {
    for (const h of [...this.#held]) { clearTimeout(h.timer); this.#held.delete(h) }
    for (const h of [...this.#heldByHash]) { clearTimeout(h.timer); this.#heldByHash.delete(h) }
    const server = this.#server
    this.#server = undefined
    for (const s of this.#sockets) s.destroy()
    if (server !== undefined) await new Promise<void>(resolve => server.close(() => resolve()))
  }
}

/**
 * An agent serving `mesh`'s root and fresh leaves for db and web, with web => db
 * allowed; stopped at teardown. Tests change what it serves from there.
 */
export async function agentForWebAndDb (t: Test, mesh: TestMesh): Promise<{ agent: ConsulDouble, port: number, dbLeaf: IssuedCert, webLeaf: IssuedCert }> {
  const agent = new ConsulDouble()
  t.teardown(() => agent.stop())
  const port = await agent.start()
  const [dbLeaf, webLeaf] = [await mesh.leaf('db'), await mesh.leaf('web')]
  agent.setLeaf('db', dbLeaf.certPem, dbLeaf.keyPem)
  agent.setLeaf('web', webLeaf.certPem, webLeaf.keyPem)
  agent.setRoots(TD, [mesh.ca.certPem])
  agent.setIntentions('db', [{ source: 'web', action: 'allow' }])
  return { agent, port, dbLeaf, webLeaf }
}
