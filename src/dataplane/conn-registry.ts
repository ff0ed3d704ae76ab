/**
 * Live connections of one listener, so that close() can wait for them and
 * destroy() can end them (consul connWG + stopChan). Each entry knows how to
 * abort itself and is deleted by its owner once fully closed. No promise per
 * connection: drain() waits for the set to empty.
 */

/** What the registry needs of a connection. */
export interface TrackedConn {
  /** Force-close both sockets; the owner deletes the entry once they are closed. */
  abort (): void
}

/** A set of live connections. */
export class ConnRegistry<C extends TrackedConn = TrackedConn> {
  readonly #conns = new Set<C>()
  /** Resolvers of drain() calls waiting for the set to empty. */
  #waiters: Array<() => void> = []

  /** Number of live connections (tests assert 0 after teardown). */
  get size (): number { return this.#conns.size }

  /** Track `c` until delete(c). */
  add (c: C): void {
    this.#conns.add(c)
  }

  /** `c` is fully closed (idempotent). */
  delete (c: C): void {
    if (!this.#conns.delete(c) || this.#conns.size > 0) return
    const waiters = this.#waiters
    this.#waiters = []
    for (const w of waiters) w()
  }

  /** Resolves when no connection is left. */
  #empty (): Promise<void> {
    if (this.#conns.size === 0) return Promise.resolve()
    return new Promise(resolve => { this.#waiters.push(resolve) })
  }

  /** Wait up to `timeoutMs` for every connection to finish, then abort the rest and wait for them. */
  async drain (timeoutMs: number): Promise<void> {
    if (this.#conns.size === 0) return
    let timer: NodeJS.Timeout | undefined
    const expired = new Promise<void>(resolve => { timer = setTimeout(resolve, timeoutMs) })
    await Promise.race([this.#empty(), expired])
    clearTimeout(timer)
    this.abortAll()
    await this.#empty()
  }

  /** Visit every live connection (enforce-on-change re-checks them). */
  forEach (fn: (c: C) => void): void {
    for (const c of this.#conns) fn(c)
  }

  /** Abort every live connection now. */
  abortAll (): void {
    for (const c of [...this.#conns]) c.abort()
  }
}
