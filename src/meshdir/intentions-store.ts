/**
 * The intentions file: read and validate, update under a lock with an
 * atomically written result, and a live source for sidecars that follows the
 * file (change notification with polling fallback) and keeps the last good
 * table when a new version fails validation.
 */
import { readFile } from 'node:fs/promises'
import { IntentionError, errorCode, toError } from '../core/errors.js'
import { writeFileAtomic, withLock } from '../fsutil/atomic.js'
import { FileWatcher } from '../fsutil/watch.js'
import { compileAuthorizer, validateIntentionsDoc, type Action, type Authorizer, type IntentionsDoc, type ServiceRef } from '../core/intentions/table.js'

/** The document a missing file stands for: nothing allowed. */
export const EMPTY_DOC: IntentionsDoc = Object.freeze({ index: 0, defaultPolicy: 'deny', intentions: [] })

/** Read and validate an intentions file; a missing file is {@link EMPTY_DOC}. */
export async function readIntentions (path: string): Promise<IntentionsDoc> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return EMPTY_DOC
    throw new IntentionError(`cannot read intentions file ${path}: ${toError(err).message}`)
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    // (Not "mesh-proxy intention list": it reads this very file.) Running sidecars keep the last good table and serve it.
    throw new IntentionError(`intentions file ${path} is not valid JSON (${toError(err).message}); fix it, or restore the table a running sidecar still uses: curl -s http://<its --admin address>/intentions > ${path}`)
  }
  return validateIntentionsDoc(json, path)
}

/**
 * Read-modify-write under the file's lock: `fn` gets the current document and
 * returns the next one (or throws); the index is bumped and the result is
 * validated, then written atomically.
 */
export async function updateIntentions (path: string, fn: (doc: IntentionsDoc) => IntentionsDoc): Promise<IntentionsDoc> {
  return await withLock(path, async () => {
    const cur = await readIntentions(path)
    const next = fn(cur)
    const doc = validateIntentionsDoc({ ...next, index: cur.index + 1 }, path)
    await writeFileAtomic(path, JSON.stringify(doc, null, 2) + '\n')
    return doc
  })
}

/** What a live source reports on every reload attempt. */
export type ReloadEvent =
  | { ok: true, doc: IntentionsDoc }
  | { ok: false, error: Error }

/**
 * The sidecar's cached view of the intentions file, compiled for one
 * destination. `authorize` is a plain function read per connection.
 */
export class IntentionsSource {
  readonly #path: string
  readonly #destination: ServiceRef
  readonly #onReload: (e: ReloadEvent) => void
  #watcher: FileWatcher | undefined
  #doc: IntentionsDoc = EMPTY_DOC
  #authorize: Authorizer
  #reloading: Promise<void> = Promise.resolve()

  readonly #defaultPolicy: Action | null

  /** `defaultPolicy`, when set, overrides the file's (the sidecar's --default-policy). */
  constructor (path: string, destination: ServiceRef, opts: { onReload?: (e: ReloadEvent) => void, defaultPolicy?: Action | null } = {}) {
    this.#path = path
    this.#destination = destination
    this.#onReload = opts.onReload ?? (() => {})
    this.#defaultPolicy = opts.defaultPolicy ?? null
    this.#authorize = compileAuthorizer(EMPTY_DOC, destination)
  }

  /** Load once (errors are thrown: a bad file at start-up is fatal), then follow changes. */
  async start (): Promise<void> {
    this.#watcher = new FileWatcher(this.#path, () => { this.reload() })
    await this.#watcher.prime()
    this.#set(await readIntentions(this.#path))
  }

  /** The current document (index = version). */
  get doc (): IntentionsDoc { return this.#doc }

  /** The current authorizer; a new function after each successful reload. */
  get authorize (): Authorizer { return this.#authorize }

  /** Re-read now (also on SIGHUP). A bad file keeps the previous table. Resolves when done. */
  reload (): Promise<void> {
    this.#reloading = this.#reloading.then(async () => {
      try {
        const doc = await readIntentions(this.#path)
        this.#set(doc)
        this.#onReload({ ok: true, doc: this.#doc }) // as in force: --default-policy over the file's
      } catch (err) {
        this.#onReload({ ok: false, error: toError(err) })
      }
    })
    return this.#reloading
  }

  #set (read: IntentionsDoc): void {
    const doc = this.#defaultPolicy === null ? read : { ...read, defaultPolicy: this.#defaultPolicy }
    this.#authorize = compileAuthorizer(doc, this.#destination)
    this.#doc = doc
  }

  /** Stop following the file. Idempotent. */
  close (): void {
    this.#watcher?.close()
  }
}
