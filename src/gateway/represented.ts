/**
 * The services a terminating gateway stands in for, each with a control
 * plane of its own (plane/index.ts, as a sidecar of that service would
 * have): its SVID, the intentions towards it, and its entry in the catalog
 * at the gateway's address, so that sidecars find it as any upstream.
 */
import { readFile } from 'node:fs/promises'
import type { Logger } from 'pino'
import type { Config, HostPort } from '../core/config/types.js'
import type { Registration } from '../core/resolver.js'
import { ConfigError, toError } from '../core/errors.js'
import type { Metrics } from '../metrics/metrics.js'
import { planeFor, type ControlPlane } from '../plane/index.js'
import type { ExternalSpec } from './external.js'
import type { Represented } from './terminating.js'

/** A file named in `--service`, or a ConfigError naming it. */
async function read (service: string, what: string, file: string): Promise<string> {
  try { return await readFile(file, 'utf8') } catch (err) { throw new ConfigError('--service', `${service}: cannot read ${what}=${file}: ${toError(err).message}`) }
}

/** One `--service`: the external target and the sidecar-shaped config its plane is built from. */
export interface ServiceEntry {
  readonly spec: ExternalSpec
  readonly config: Config
}

/** Every represented service's plane, started together, closed together. */
export class RepresentedServices {
  readonly #entries: readonly ServiceEntry[]
  readonly #logger: Logger
  readonly #metrics: Metrics
  readonly #planes = new Map<string, ControlPlane>()
  readonly #registrations: Registration[] = []

  constructor (entries: readonly ServiceEntry[], logger: Logger, metrics: Metrics) {
    this.#entries = entries
    this.#logger = logger
    this.#metrics = metrics
  }

  /** Start every plane and read the CA files; resolves with what the gateway serves. */
  async start (): Promise<Map<string, Represented>> {
    const out = new Map<string, Represented>()
    for (const { spec, config } of this.#entries) {
      const plane = planeFor({ config, logger: this.#logger.child({ service: spec.service }), metrics: this.#metrics, leader: true })
      this.#planes.set(spec.service, plane)
      await plane.start()
      const intentions = plane.intentions
      // (Cannot happen: the config has a listener, so every plane loads intentions.)
      if (intentions === null) throw new Error(`${spec.service}: its control plane has no intentions`)
      const caFile = spec.tls?.caFile ?? null
      const caPem = caFile === null ? undefined : await read(spec.service, 'ca', caFile)
      const c = spec.tls?.client ?? null
      const client = c === null ? undefined : { certPem: await read(spec.service, 'client-cert', c.certFile), keyPem: await read(spec.service, 'client-key', c.keyFile) }
      out.set(spec.service, { target: { spec, caPem, ...(client === undefined ? {} : { client }) }, tls: plane.tls, authorize: () => intentions.current.authorize })
    }
    return out
  }

  /** Put every service in its catalog at `at` (where planes have one). */
  async register (at: HostPort): Promise<void> {
    const host = at.host === '0.0.0.0' || at.host === '::' ? '127.0.0.1' : at.host
    for (const plane of this.#planes.values()) {
      if (plane.register !== undefined) this.#registrations.push(await plane.register(host, at.port))
    }
  }

  /** SIGHUP: every plane's certificates and intentions. */
  async reload (): Promise<void> {
    await Promise.all([...this.#planes.values()].map(p => p.reload()))
  }

  /** Leave the catalogs and stop the planes. Idempotent. */
  async close (): Promise<void> {
    const regs = this.#registrations.splice(0)
    await Promise.all(regs.map(r => r.close()))
    for (const p of this.#planes.values()) p.close()
    this.#planes.clear()
  }
}
