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
import type { CertManager } from './cert-manager.js'
import type { FileIntentions } from './intentions-file.js'
import { certManager, fileIntentions, registerIn } from './local.js'
import type { ControlPlane, PlaneDeps } from './types.js'

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
    return registerIn(this.#deps, this.#catalog)
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
