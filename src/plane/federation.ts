/**
 * Federation over any control plane: the plane's own TLS material with the
 * roots of the trust domains given with --federate added to its bundle. The
 * bundle files are followed as they change (a federation endpoint's
 * refresher, a spire-server bundle export); a file that fails validation keeps
 * the previous roots and is logged. Everything else is the inner plane's.
 */
import type { Federation } from '../core/config/types.js'
import { toError } from '../core/errors.js'
import { federate, federatedRoots } from '../core/identity/federation.js'
import type { RootCert } from '../core/identity/bundle.js'
import { Cell } from '../core/watched.js'
import { FileWatcher } from '../fsutil/watch.js'
import { buildTlsState, type TlsState } from '../tls/context.js'
import { readMaterialFile } from './material.js'
import type { ControlPlane, PlaneDeps } from './types.js'

/** `inner` with the federated trust domains' roots in its bundle. */
export class FederatedPlane implements ControlPlane {
  readonly #inner: ControlPlane
  readonly #deps: PlaneDeps
  readonly #tls = new Cell<TlsState>('certificates')
  readonly #roots = new Map<string, readonly RootCert[]>()
  readonly #watchers: FileWatcher[] = []
  #unsubscribe: (() => void) | undefined

  constructor (deps: PlaneDeps, inner: ControlPlane) {
    this.#deps = deps
    this.#inner = inner
  }

  get mode (): string { return `${this.#inner.mode}, federated with ${this.#federations().map(f => f.trustDomain).join(', ')}` }
  get tls (): Cell<TlsState> { return this.#tls }
  get intentions (): ControlPlane['intentions'] { return this.#inner.intentions }
  get resolver (): ControlPlane['resolver'] { return this.#inner.resolver }
  get register (): ControlPlane['register'] { return this.#inner.register }
  get ask (): ControlPlane['ask'] { return this.#inner.ask }
  get notReadyReason (): string | undefined { return this.#inner.notReadyReason }

  #federations (): readonly Federation[] { return this.#deps.config.federate }

  /** Every bundle file first (a bad one is thrown: fatal at start), then the inner plane. */
  async start (): Promise<void> {
    for (const f of this.#federations()) this.#roots.set(f.trustDomain, await read(f))
    await this.#inner.start()
    this.#rebuild()
    this.#unsubscribe = this.#inner.tls.onChange(() => this.#rebuild())
    for (const f of this.#federations()) {
      const w = new FileWatcher(f.bundleFile, () => { void this.#reloadOne(f) }, { debounceMs: 200 })
      await w.prime()
      this.#watchers.push(w)
    }
  }

  async #reloadOne (f: Federation): Promise<void> {
    try {
      const roots = await read(f)
      this.#roots.set(f.trustDomain, roots)
      this.#rebuild()
      this.#deps.logger.info({ trustDomain: f.trustDomain, file: f.bundleFile, roots: roots.length }, 'federated bundle reloaded')
    } catch (err) {
      this.#deps.logger.error({ trustDomain: f.trustDomain, file: f.bundleFile, err: toError(err).message }, 'federated bundle reload failed; keeping its previous roots')
    }
  }

  /** One new TLS generation: the inner plane's SVID, its bundle plus the federated roots. */
  #rebuild (): void {
    const inner = this.#inner.tls.current
    this.#tls.set(buildTlsState(inner.svid, federate(inner.bundle, inner.svid.id.trustDomain, this.#roots), [...inner.federated, ...this.#roots.keys()]))
  }

  async reload (): Promise<void> {
    await this.#inner.reload()
    for (const f of this.#federations()) await this.#reloadOne(f)
  }

  close (): void {
    this.#unsubscribe?.()
    for (const w of this.#watchers) w.close()
    this.#inner.close()
  }
}

async function read (f: Federation): Promise<RootCert[]> {
  const what = `--federate ${f.trustDomain}=${f.bundleFile}`
  return federatedRoots(f.trustDomain, await readMaterialFile(f.bundleFile, what), what)
}
