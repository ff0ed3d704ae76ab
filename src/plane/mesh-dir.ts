/**
 * The embedded control plane, `--mesh-dir`: our leaf issued from the mesh
 * dir's CA (and renewed by the leader), the bundle and the intentions from its
 * files, upstream instances from its catalog, where we register ourselves.
 */
import { meshLayout, readMeshSettings, type MeshLayout } from '../meshdir/layout.js'
import { MeshCatalog } from '../meshdir/catalog.js'
import { Cell } from '../core/watched.js'
import type { Registration } from '../core/resolver.js'
import type { TlsState } from '../tls/context.js'
import { CertManager, type CertSource } from './cert-manager.js'
import { FileIntentions } from './intentions-file.js'
import type { ControlPlane, PlaneDeps } from './types.js'

/** Certificates from `source`, into `cell`, as every local plane runs them. */
export function certManager (deps: PlaneDeps, source: CertSource, cell: Cell<TlsState>): CertManager {
  return new CertManager({
    source,
    service: deps.config.service,
    identityForm: deps.config.identityForm,
    logger: deps.logger,
    metrics: deps.metrics,
    leafTtlMs: deps.config.leafTtlMs,
    renew: deps.leader,
    ...(deps.rootChangeJitterMs === undefined ? {} : { rootChangeJitterMs: deps.rootChangeJitterMs }),
    onChange: state => cell.set(state)
  })
}

/** Intentions from `path` when this sidecar has an inbound side, else none. */
export function fileIntentions (deps: PlaneDeps, path: string | undefined): FileIntentions | null {
  const cfg = deps.config
  if (cfg.listen === null) return null
  // resolveConfig refuses --listen without a mesh dir or --intentions.
  if (path === undefined) throw new Error('no intentions file: give --mesh-dir or --intentions with --listen')
  return new FileIntentions(path, { namespace: cfg.namespace, name: cfg.service }, { defaultPolicy: cfg.defaultPolicy, logger: deps.logger, metrics: deps.metrics })
}

/** The mesh dir as the control plane. */
export class MeshDirPlane implements ControlPlane {
  readonly mode = 'mesh-dir'
  readonly #deps: PlaneDeps
  readonly #layout: MeshLayout
  readonly #tls = new Cell<TlsState>('certificates')
  readonly #catalog: MeshCatalog
  readonly #intentions: FileIntentions | null
  #certs: CertManager | undefined

  constructor (deps: PlaneDeps, meshDir: string) {
    this.#deps = deps
    this.#layout = meshLayout(meshDir)
    this.#catalog = new MeshCatalog(this.#layout.catalog)
    this.#intentions = fileIntentions(deps, deps.config.intentionsFile ?? this.#layout.intentions)
  }

  get tls (): Cell<TlsState> { return this.#tls }
  get intentions (): FileIntentions['state'] | null { return this.#intentions?.state ?? null }
  get resolver (): MeshCatalog { return this.#catalog }
  get notReadyReason (): undefined { return undefined }

  get register (): ((host: string, port: number) => Promise<Registration>) | undefined {
    // Only the leader of --workers registers: one entry per sidecar, not per process.
    return this.#deps.leader ? (host, port) => this.#catalog.register(this.#deps.config.service, host, port) : undefined
  }

  async start (): Promise<void> {
    const settings = await readMeshSettings(this.#layout)
    this.#certs = certManager(this.#deps, { kind: 'mesh', layout: this.#layout, settings }, this.#tls)
    await this.#certs.start()
    await this.#intentions?.start()
  }

  async reload (): Promise<void> {
    await this.#intentions?.reload()
    await this.#certs?.reload('SIGHUP')
  }

  close (): void {
    this.#intentions?.close()
    this.#certs?.close()
    this.#catalog.close()
  }
}
