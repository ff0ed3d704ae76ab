/**
 * Our certificates over time: load, watch, renew, swap.
 *
 * - Files mode (--cert/--key/--ca, e.g. written by spiffe-helper or
 *   cert-manager): the three files are watched; writers are not atomic, so a
 *   change is debounced, all three are re-read and validated (key matches,
 *   SVID rules, bundle covers us) and only then swapped in. A failure keeps
 *   the current material and is logged.
 * - Mesh dir mode: our leaf, the bundle and the CA certificate are watched.
 *   When the mesh dir holds the CA signer, the leaf is renewed at a random
 *   point between 60 % and 90 % of its lifetime, and re-issued within a
 *   random 0-30 s after the root changes (ca rotate).
 * - When the leaf expires and nothing can renew it: an error line and the
 *   expiry metric say so; handshakes then fail loudly, never silently.
 *
 * Every successful load builds one new TlsState and hands it to `onChange`;
 * live connections keep the state they were made with.
 */
import { X509Certificate } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type { Logger } from 'pino'
import { toError } from '../core/errors.js'
import { FileWatcher } from '../fsutil/watch.js'
import type { MeshLayout, MeshSettings } from '../meshdir/layout.js'
import { hasSigner, issueLeaf, DEFAULT_LEAF_TTL_MS } from '../meshdir/ca-store.js'
import { renewAt, rootChangeDelay, MAX_TIMER_MS, ROOT_CHANGE_JITTER_MS } from '../ca/rotate.js'
import type { Metrics } from '../metrics/metrics.js'
import { loadFromFiles, loadFromMeshDir, meshDirId, type Material } from './material.js'
import type { IdentityForm } from '../core/identity/forms.js'
import { buildTlsState, type TlsState } from '../tls/context.js'

/** Where the material comes from. */
export type CertSource =
  | { kind: 'files', cert: string, key: string, ca: string }
  | { kind: 'mesh', layout: MeshLayout, settings: MeshSettings }

/** Options of {@link CertManager}. */
export interface CertManagerOptions {
  readonly source: CertSource
  readonly service: string
  /** How our SPIFFE ID names our service (and which ID a renewal issues). */
  readonly identityForm: IdentityForm
  readonly logger: Logger
  readonly metrics: Metrics
  /** Lifetime of leaves this sidecar issues itself (mesh dir with a signer). */
  readonly leafTtlMs?: number
  /** False: never issue a new leaf, only follow the files (default true). */
  readonly renew?: boolean
  /** After a root change, re-issue within a random delay below this. */
  readonly rootChangeJitterMs?: number
  /** Debounce of file changes (non-atomic writers). */
  readonly debounceMs?: number
  readonly onChange: (state: TlsState) => void
}

/** Owns the current TLS state and keeps it fresh. */
export class CertManager {
  readonly #o: CertManagerOptions
  readonly #watchers: FileWatcher[] = []
  #state: TlsState | undefined
  #renewTimer: NodeJS.Timeout | undefined
  #expiryTimer: NodeJS.Timeout | undefined
  #reloading: Promise<void> = Promise.resolve()
  #closed = false

  constructor (opts: CertManagerOptions) {
    this.#o = opts
  }

  /** The current state; throws before start(). */
  get state (): TlsState {
    if (this.#state === undefined) throw new Error('certificates not loaded')
    return this.#state
  }

  /** Load once (errors are thrown: bad material at start-up is fatal), then watch and schedule. */
  async start (): Promise<TlsState> {
    const material = await this.#load()
    this.#install(material)
    for (const p of this.#watchedPaths()) {
      const w = new FileWatcher(p, () => { void this.reload('file changed') }, { debounceMs: this.#o.debounceMs ?? 200 })
      await w.prime()
      this.#watchers.push(w)
    }
    await this.#schedule(material)
    return this.state
  }

  /** Re-read everything now (file change, SIGHUP). Failures keep the current state. Serialised. */
  reload (why = 'reload'): Promise<void> {
    this.#reloading = this.#reloading.then(async () => {
      if (this.#closed) return
      try {
        const material = await this.#load()
        const before = this.#state?.svid.chain[0]?.serial
        if (this.#state !== undefined && sameMaterial(this.#state, material)) {
          this.#o.logger.debug({ why }, 'certificates unchanged')
          // The CA may have changed even though our files did not: re-check the schedule.
          await this.#schedule(material)
          return
        }
        this.#install(material)
        const leaf = material.svid.chain[0]!
        this.#o.logger.info({ why, spiffeId: material.svid.id.uri, serial: leaf.serial, previousSerial: before, notAfter: leaf.notAfter.toISOString(), roots: material.bundle.roots.length }, 'certificates reloaded')
        await this.#schedule(material)
      } catch (err) {
        this.#o.logger.error({ why, err: toError(err).message }, 'certificate reload failed; keeping the current certificates')
      }
    })
    return this.#reloading
  }

  async #load (): Promise<Material> {
    const s = this.#o.source
    return s.kind === 'files'
      ? await loadFromFiles({ cert: s.cert, key: s.key, ca: s.ca }, this.#o.service, this.#o.identityForm)
      : await loadFromMeshDir(s.layout, s.settings, this.#o.service, this.#o.identityForm, this.#o.leafTtlMs ?? DEFAULT_LEAF_TTL_MS)
  }

  #install (m: Material): void {
    this.#state = buildTlsState(m.svid, m.bundle)
    this.#o.metrics.certExpiry(m.svid.id.uri, Math.floor(m.svid.chain[0]!.notAfter.getTime() / 1000))
    this.#o.onChange(this.#state)
  }

  #watchedPaths (): string[] {
    const s = this.#o.source
    if (s.kind === 'files') return [s.cert, s.key, s.ca]
    return [s.layout.certFor(this.#o.service), s.layout.keyFor(this.#o.service), s.layout.bundle, s.layout.caCert]
  }

  /** Arm the renewal (or root-change re-issue) and the expiry alarm for `m`. */
  async #schedule (m: Material): Promise<void> {
    clearTimeout(this.#renewTimer)
    clearTimeout(this.#expiryTimer)
    const leaf = m.svid.chain[0]!
    const s = this.#o.source
    const canRenew = s.kind === 'mesh' && this.#o.renew !== false && await hasSigner(s.layout)
    if (canRenew) {
      const rootChanged = !await this.#signedByCurrentCa(m, s.layout)
      const delay = rootChanged
        ? rootChangeDelay(this.#o.rootChangeJitterMs ?? ROOT_CHANGE_JITTER_MS)
        : renewAt(leaf.notBefore, leaf.notAfter) - Date.now()
      this.#timer('renew', Math.max(0, delay), () => { void this.#renew(rootChanged ? 'root changed' : 'renewal due') })
    }
    // The timer runs on the event loop's clock, which can be a little behind Date.now():
    // an alarm that fires while the leaf is still valid (notAfter is inclusive) waits out the rest.
    const onExpiry = (): void => {
      if (this.#closed) return
      const left = leaf.notAfter.getTime() - Date.now()
      if (left >= 0) { this.#timer('expiry', left + 1, onExpiry); return }
      this.#o.logger.error({ spiffeId: m.svid.id.uri, serial: leaf.serial, notAfter: leaf.notAfter.toISOString(), canRenew },
        canRenew ? 'certificate expired before it could be renewed' : 'certificate expired and nothing can renew it; peers will refuse our handshakes until new files are written')
    }
    this.#timer('expiry', Math.max(0, leaf.notAfter.getTime() - Date.now()), onExpiry)
  }

  async #renew (why: string): Promise<void> {
    if (this.#closed || this.#o.source.kind !== 'mesh') return
    const s = this.#o.source
    try {
      await issueLeaf(s.layout, s.settings, this.#o.service, this.#o.leafTtlMs ?? DEFAULT_LEAF_TTL_MS, meshDirId(s.settings, this.#o.service, this.#o.identityForm))
    } catch (err) {
      this.#o.logger.error({ why, err: toError(err).message }, 'leaf renewal failed; will retry')
      this.#timer('renew', Math.min(30_000, this.#o.leafTtlMs ?? 30_000), () => { void this.#renew(why) })
      return
    }
    await this.reload(why)
  }

  async #signedByCurrentCa (m: Material, layout: MeshLayout): Promise<boolean> {
    try {
      const ca = new X509Certificate(await readFile(layout.caCert, 'utf8'))
      const leaf = new X509Certificate(m.svid.chain[0]!.der)
      return leaf.checkIssued(ca) && leaf.verify(ca.publicKey)
    } catch {
      return true // no readable CA: nothing to compare with, keep the normal schedule
    }
  }

  /** (Re)arm the renewal or expiry timer; unref'd so that it never keeps the process alive. */
  #timer (which: 'renew' | 'expiry', ms: number, fn: () => void): void {
    // Long delays are re-armed in steps: setTimeout caps at about 24.8 days.
    const t = ms > MAX_TIMER_MS
      ? setTimeout(() => { if (!this.#closed) this.#timer(which, ms - MAX_TIMER_MS, fn) }, MAX_TIMER_MS)
      : setTimeout(fn, ms)
    t.unref()
    if (which === 'renew') { clearTimeout(this.#renewTimer); this.#renewTimer = t } else { clearTimeout(this.#expiryTimer); this.#expiryTimer = t }
  }

  /** Stop watching and scheduling. Idempotent. */
  close (): void {
    this.#closed = true
    for (const w of this.#watchers) w.close()
    clearTimeout(this.#renewTimer)
    clearTimeout(this.#expiryTimer)
  }
}

/** Same leaf, same chain, same roots: nothing to swap. */
function sameMaterial (cur: TlsState, next: Material): boolean {
  const fp = (xs: ReadonlyArray<{ fingerprint256: string }>): string => xs.map(x => x.fingerprint256).join()
  return fp(cur.svid.chain) === fp(next.svid.chain) &&
    fp(cur.bundle.roots.map(r => r.cert)) === fp(next.bundle.roots.map(r => r.cert))
}
