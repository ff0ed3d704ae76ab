/**
 * Intentions from a JSON file (the mesh dir's intentions.json, or --intentions),
 * as a Watched state: followed by a file watcher and SIGHUP, a file that fails
 * validation keeps the previous table (logged), the version is a metric.
 * Shared by the mesh-dir and files planes.
 */
import type { Logger } from 'pino'
import type { Action, ServiceRef } from '../core/intentions/table.js'
import { decidedBy } from '../core/intentions/table.js'
import { Cell, type Watched } from '../core/watched.js'
import { IntentionsSource } from '../meshdir/intentions-store.js'
import type { Metrics } from '../metrics/metrics.js'
import type { IntentionsState } from './types.js'

/** Follows one intentions file for one destination. */
export class FileIntentions {
  readonly #cell = new Cell<IntentionsState>('intentions')
  readonly #source: IntentionsSource
  readonly #logger: Logger
  readonly #metrics: Metrics

  constructor (path: string, me: ServiceRef, o: { defaultPolicy: Action | null, logger: Logger, metrics: Metrics }) {
    this.#logger = o.logger
    this.#metrics = o.metrics
    this.#source = new IntentionsSource(path, me, {
      defaultPolicy: o.defaultPolicy,
      onReload: e => {
        if (e.ok) this.#publish()
        else this.#logger.error({ err: e.error.message }, 'intentions reload failed; keeping the previous table')
      }
    })
  }

  get state (): Watched<IntentionsState> { return this.#cell }

  /** Load (a bad file is thrown), then follow. */
  async start (): Promise<void> {
    await this.#source.start()
    this.#publish()
    const s = this.#cell.current
    this.#logger.debug({ intentionsVersion: s.doc.index, defaultDecision: decidedBy(s.authorize({ namespace: '*', name: '*' })) }, 'intentions loaded')
  }

  reload (): Promise<void> { return this.#source.reload() }

  #publish (): void {
    const doc = this.#source.doc
    this.#metrics.intentionsVersion(doc.index)
    this.#cell.set({ doc, authorize: this.#source.authorize })
  }

  /** Idempotent. */
  close (): void { this.#source.close() }
}
