/**
 * The SPIFFE Workload API as the control plane (`--control-plane spiffe`):
 * our X.509-SVID, our trust domain's bundle and every federated bundle,
 * streamed from the agent (SPIRE's, or any Workload API server). Each
 * response becomes one new TLS generation, as a changed certificate file
 * does for the files plane; a response that fails validation, an error
 * status or a lost agent keeps the current generation and is logged.
 * `/ready` is 503 with the reason until the first good SVID. Intentions and
 * the catalog come from files, as for --cert/--key/--ca.
 */
import { WorkloadApiError, ERR, errorCode, toError } from '../core/errors.js'
import type { PlaneConfig } from '../core/config/types.js'
import type { X509SvidResponse } from '../core/identity/workload-api.js'
import type { Registration } from '../core/resolver.js'
import { Cell } from '../core/watched.js'
import { meshLayout } from '../meshdir/layout.js'
import { MeshCatalog } from '../meshdir/catalog.js'
import { describe, WorkloadApiClient } from '../spiffe/workload-client.js'
import { buildTlsState, type TlsState } from '../tls/context.js'
import type { FileIntentions } from './intentions-file.js'
import { fileIntentions, registerIn } from './local.js'
import { materialFromWorkload, ourSvid, workloadFingerprint } from './material.js'
import type { ControlPlane, PlaneDeps } from './types.js'

/** The Workload API settings of the config. */
export type SpiffePlaneConfig = PlaneConfig & { kind: 'spiffe' }

/** Follows FetchX509SVID; the TLS cell holds the last good SVID and bundles. */
export class SpiffePlane implements ControlPlane {
  readonly #deps: PlaneDeps
  readonly #cfg: SpiffePlaneConfig
  readonly #tls = new Cell<TlsState>('certificates from the Workload API')
  readonly #catalog: MeshCatalog | null
  readonly #intentions: FileIntentions | null
  readonly #client: WorkloadApiClient
  #lastError = 'waiting for the first X.509-SVID from the Workload API'
  #readyWaiters: Array<() => void> = []
  #up = false
  #fingerprint: string | undefined
  #closed = false

  constructor (deps: PlaneDeps, cfg: SpiffePlaneConfig) {
    this.#deps = deps
    this.#cfg = cfg
    const layout = cfg.meshDir === null ? null : meshLayout(cfg.meshDir)
    this.#catalog = layout === null ? null : new MeshCatalog(layout.catalog)
    this.#intentions = fileIntentions(deps, deps.config.intentionsFile ?? layout?.intentions)
    this.#client = new WorkloadApiClient({
      endpoint: cfg.endpoint,
      onUpdate: r => this.#update(r),
      onError: (err, attempt) => this.#failed(err, attempt),
      ...(deps.agentBackoffMs === undefined ? {} : { minBackoffMs: deps.agentBackoffMs })
    })
  }

  get mode (): string { return `spiffe (${describe(this.#cfg.endpoint)})` }
  get tls (): Cell<TlsState> { return this.#tls }
  get intentions (): FileIntentions['state'] | null { return this.#intentions?.state ?? null }
  get resolver (): MeshCatalog | null { return this.#catalog }
  get notReadyReason (): string | undefined { return this.#tls.isSet ? undefined : this.#lastError }

  get register (): ((host: string, port: number) => Promise<Registration>) | undefined {
    return registerIn(this.#deps, this.#catalog)
  }

  /** Intentions first (a bad file is fatal), then wait for the first good SVID, retrying the agent until then. */
  async start (): Promise<void> {
    await this.#intentions?.start()
    this.#client.start()
    await new Promise<void>(resolve => {
      if (this.#tls.isSet) resolve()
      else this.#readyWaiters.push(resolve)
    })
    if (this.#closed) throw new Error('sidecar closed while waiting for the Workload API')
  }

  #update (r: X509SvidResponse): void {
    const cfg = this.#deps.config
    try {
      const ours = ourSvid(r, cfg.service, cfg.identityForm)
      const fingerprint = workloadFingerprint(r, ours)
      this.#setUp(true)
      if (fingerprint === this.#fingerprint) {
        this.#deps.logger.debug({ spiffeId: ours.spiffeId }, 'workload api update without change for us')
        return
      }
      const m = materialFromWorkload(r, ours)
      const state = buildTlsState(m.svid, m.bundle, m.federated)
      const leaf = m.svid.chain[0]!
      const previous = this.#tls.isSet ? this.#tls.current.svid.chain[0]!.serial : undefined
      this.#fingerprint = fingerprint
      this.#deps.metrics.certExpiry(m.svid.id.uri, Math.floor(leaf.notAfter.getTime() / 1000))
      this.#deps.logger.info({ why: 'workload api update', spiffeId: m.svid.id.uri, serial: leaf.serial, previousSerial: previous, notAfter: leaf.notAfter.toISOString(), roots: m.bundle.roots.length, federated: m.federated }, 'certificates reloaded')
      this.#tls.set(state)
      for (const w of this.#readyWaiters.splice(0)) w()
    } catch (err) {
      this.#failed(err instanceof WorkloadApiError ? err : new WorkloadApiError(`the Workload API's SVID was refused: ${toError(err).message}`, { cause: err }), 1)
    }
  }

  #failed (err: WorkloadApiError, attempt: number): void {
    this.#lastError = err.message
    const unreachable = errorCode(err) === ERR.WORKLOAD_API_UNREACHABLE
    if (unreachable) this.#setUp(false)
    this.#deps.logger[attempt === 1 ? 'warn' : 'debug']({ endpoint: describe(this.#cfg.endpoint), attempt, code: errorCode(err), err: err.message },
      this.#tls.isSet
        ? (unreachable ? 'workload api unreachable; keeping the current SVID' : 'workload api response rejected; keeping the current SVID')
        : (unreachable ? 'workload api unreachable; no SVID yet, retrying' : 'workload api response rejected; no SVID yet, retrying'))
  }

  #setUp (up: boolean): void {
    if (up === this.#up) return
    this.#up = up
    this.#deps.metrics.controlPlaneUp(up)
  }

  /** The stream follows the agent already; SIGHUP re-reads the intentions file. */
  async reload (): Promise<void> {
    await this.#intentions?.reload()
  }

  /** Stop following. Idempotent. */
  close (): void {
    this.#closed = true
    this.#client.close()
    this.#intentions?.close()
    this.#catalog?.close()
    for (const w of this.#readyWaiters.splice(0)) w()
  }
}
