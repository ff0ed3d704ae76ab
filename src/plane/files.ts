/**
 * Plain PEM files as the control plane, `--cert --key --ca` (written by
 * spiffe-helper, cert-manager, Vault agent): followed as they change, never
 * renewed by us. Intentions come from --intentions, or from a mesh dir given
 * beside the files, whose catalog then also resolves upstreams and finds us.
 */
import { meshLayout, type MeshLayout } from '../meshdir/layout.js'
import { MeshCatalog } from '../meshdir/catalog.js'
import { Cell } from '../core/watched.js'
import type { Registration } from '../core/resolver.js'
import type { TlsState } from '../tls/context.js'
import type { CertManager } from './cert-manager.js'
import type { FileIntentions } from './intentions-file.js'
import { certManager, fileIntentions, registerIn } from './local.js'
import type { ControlPlane, PlaneDeps } from './types.js'

/** The files plane. */
export class FilesPlane implements ControlPlane {
  readonly mode = 'files'
  readonly #deps: PlaneDeps
  readonly #tls = new Cell<TlsState>('certificates')
  readonly #catalog: MeshCatalog | null
  readonly #intentions: FileIntentions | null
  readonly #certs: CertManager

  constructor (deps: PlaneDeps, files: { cert: string, key: string, ca: string, meshDir: string | null }) {
    this.#deps = deps
    const layout: MeshLayout | null = files.meshDir === null ? null : meshLayout(files.meshDir)
    this.#catalog = layout === null ? null : new MeshCatalog(layout.catalog)
    this.#intentions = fileIntentions(deps, deps.config.intentionsFile ?? layout?.intentions)
    this.#certs = certManager(deps, { kind: 'files', cert: files.cert, key: files.key, ca: files.ca }, this.#tls)
  }

  get tls (): Cell<TlsState> { return this.#tls }
  get intentions (): FileIntentions['state'] | null { return this.#intentions?.state ?? null }
  get resolver (): MeshCatalog | null { return this.#catalog }
  get notReadyReason (): undefined { return undefined }

  get register (): ((host: string, port: number) => Promise<Registration>) | undefined {
    return registerIn(this.#deps, this.#catalog)
  }

  async start (): Promise<void> {
    await this.#certs.start()
    await this.#intentions?.start()
  }

  async reload (): Promise<void> {
    await this.#intentions?.reload()
    await this.#certs.reload('SIGHUP')
  }

  close (): void {
    this.#intentions?.close()
    this.#certs.close()
    this.#catalog?.close()
  }
}
