/**
 * Live connections of one listener, so that close() can wait for them and
 * destroy() can end them (consul connWG + stopChan). Each entry knows how to
 * abort itself.
 */

/** What the registry needs of a connection. */
export interface TrackedConn {
  /** Force-close both sockets. */
  abort (): void
  /** Settles when the connection is fully closed. */
  readonly closed: Promise<unknown>
}

/** A set of live connections. */
export class ConnRegistry<C extends TrackedConn = TrackedConn> {
  readonly #conns = new Set<C>()

  /** Number of live connections (tests assert 0 after teardown). */
  get size (): number { return this.#conns.size }

  /** Track `c` until it closes. */
  add (c: C): void {
    this.#conns.add(c)
    const forget = (): void => { this.#conns.delete(c) }
    c.closed.then(forget, forget)
  }

  /** Wait up to `timeoutMs` for every connection to finish, then abort the rest. */
  async drain (timeoutMs: number): Promise<void> {
    if (this.#conns.size === 0) return
    let timer: NodeJS.Timeout | undefined
    const all = Promise.allSettled([...this.#conns].map(c => c.closed))
    const expired = new Promise<void>(resolve => { timer = setTimeout(resolve, timeoutMs) })
    await Promise.race([all, expired])
    clearTimeout(timer)
    this.abortAll()
    await Promise.allSettled([...this.#conns].map(c => c.closed))
  }

  /** Visit every live connection (enforce-on-change re-checks them). */
  forEach (fn: (c: C) => void): void {
    for (const c of this.#conns) fn(c)
  }

  /** Abort every live connection now. */
  abortAll (): void {
    for (const c of this.#conns) c.abort()
  }
}
