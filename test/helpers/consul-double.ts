// A test double of the Consul agent HTTP API: the four endpoints the sidecar
// uses, with their documented shapes (seeded from ../shared/conformance/consul)
// and blocking-query semantics: X-Consul-Index on every answer; a request
// with ?index=N is held until the resource's index passes N or `wait` ends,
// and then answered with the current index (the same one if nothing changed).
// Tests change state (rotate the leaf, add a root, flip an intention, move
// upstream instances) and can kill and restart the "agent" on the same port.
import { createServer, type Server, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import type { Test } from 'tap'
import type { IssuedCert } from '../../src/ca/issue.js'
import { TD, type TestMesh } from './mesh.js'

interface Held { res: ServerResponse, timer: NodeJS.Timeout, key: string, since: number, body: () => unknown }

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

  #handle (req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://agent')
    this.requests.push(url.pathname + url.search)
    this.tokenSeen = req.headers['x-consul-token'] as string | undefined
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
