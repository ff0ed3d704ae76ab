/**
 * A value that changes over time, owned by one writer: readers take
 * `current` when they need it (per connection) and may be told of each new
 * value. This is the one way state travels from a control plane to the data
 * plane (TLS generations, intention tables): nothing is pushed into a
 * listener by hand.
 */

/** The reading side. */
export interface Watched<T> {
  /** The value now; throws before the first one is set. */
  readonly current: T
  /** Whether a value has been set (a plane that has not loaded it yet). */
  readonly isSet: boolean
  /** Call `fn` with every later value; returns the unsubscribe function (idempotent). */
  onChange (fn: (value: T) => void): () => void
}

/** The writing side: set() replaces the value and tells every subscriber, in order. */
export class Cell<T> implements Watched<T> {
  #value: { v: T } | undefined
  readonly #subscribers = new Set<(value: T) => void>()
  readonly #what: string

  /** `what` names the value in the error thrown when it is read before it is set. */
  constructor (what: string) {
    this.#what = what
  }

  get current (): T {
    if (this.#value === undefined) throw new Error(`${this.#what} not loaded yet`)
    return this.#value.v
  }

  get isSet (): boolean { return this.#value !== undefined }

  set (value: T): void {
    this.#value = { v: value }
    for (const fn of [...this.#subscribers]) fn(value)
  }

  onChange (fn: (value: T) => void): () => void {
    const own = (v: T): void => fn(v) // a function added twice is two subscriptions
    this.#subscribers.add(own)
    return () => { this.#subscribers.delete(own) }
  }
}
