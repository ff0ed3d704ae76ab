/**
 * The mesh dir catalog: one file per running sidecar instance,
 * `catalog/<service>/<instance-id>.json`. Each sidecar writes only its own file
 * (atomically), so concurrent registrations cannot corrupt one another; a
 * heartbeat refreshes it, and readers skip entries whose process is gone or
 * whose heartbeat is older than `staleMs`, so a killed sidecar stops getting
 * traffic.
 */
import { readdir, readFile, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { writeFileAtomic, pidAlive } from '../fsutil/atomic.js'
import type { Instance, Registration, Resolver } from '../core/resolver.js'

/** One catalog entry as stored. */
export interface CatalogEntry {
  readonly service: string
  readonly host: string
  readonly port: number
  readonly pid: number
  readonly hostname: string
  /** Last heartbeat, ms since the epoch. */
  readonly updatedAt: number
}

/** Options of {@link MeshCatalog}. */
export interface MeshCatalogOptions {
  heartbeatMs?: number
  /** Entries older than this are ignored; default 3 heartbeats. */
  staleMs?: number
  /** How long a resolution is reused before the directory is read again; default 500 ms. */
  cacheMs?: number
}

export type { Registration }

/** Reads and writes the catalog of one mesh dir. */
export class MeshCatalog implements Resolver {
  readonly #dir: string
  readonly #heartbeatMs: number
  readonly #staleMs: number
  readonly #cacheMs: number
  /** The latest read per service: settled or still in flight (one read at a time, however many connections ask). */
  readonly #cache = new Map<string, { at: number, instances: Promise<readonly Instance[]> }>()

  constructor (catalogDir: string, opts: MeshCatalogOptions = {}) {
    this.#dir = catalogDir
    this.#heartbeatMs = opts.heartbeatMs ?? 10_000
    this.#staleMs = opts.staleMs ?? 3 * this.#heartbeatMs
    this.#cacheMs = opts.cacheMs ?? 500
  }

  /** Register `service` at host:port until the returned registration is closed. */
  async register (service: string, host: string, port: number): Promise<Registration> {
    const file = join(this.#dir, service, `${process.pid}-${randomBytes(4).toString('hex')}.json`)
    const write = async (): Promise<void> => {
      const entry: CatalogEntry = { service, host, port, pid: process.pid, hostname: hostname(), updatedAt: Date.now() }
      await writeFileAtomic(file, JSON.stringify(entry) + '\n')
    }
    await write()
    const timer = setInterval(() => { write().catch(() => {}) }, this.#heartbeatMs)
    timer.unref()
    let closed: Promise<void> | undefined
    return {
      close: () => {
        closed ??= (async () => {
          clearInterval(timer)
          await unlink(file).catch(() => {})
        })()
        return closed
      }
    }
  }

  /**
   * Live instances of `service`, cached for a short while. Connections that
   * arrive while the directory is being read share that read: under load an
   * expired entry meant one directory read per new connection until the
   * first one finished.
   */
  instances (service: string): Promise<readonly Instance[]> {
    const hit = this.#cache.get(service)
    const now = Date.now()
    if (hit !== undefined && now - hit.at < this.#cacheMs) return hit.instances
    const instances = this.entries(service).then(es => es.map(e => ({ host: e.host, port: e.port })))
    this.#cache.set(service, { at: now, instances })
    return instances
  }

  /** Live entries of `service` (stale and dead ones skipped), sorted for stable round-robin. */
  async entries (service: string): Promise<CatalogEntry[]> {
    let names: string[]
    try {
      names = await readdir(join(this.#dir, service))
    } catch {
      return []
    }
    const now = Date.now()
    const me = hostname()
    const out: CatalogEntry[] = []
    for (const name of names.filter(n => n.endsWith('.json') && !n.startsWith('.'))) {
      try {
        const e = JSON.parse(await readFile(join(this.#dir, service, name), 'utf8')) as CatalogEntry
        if (typeof e.host !== 'string' || typeof e.port !== 'number') continue
        if (now - e.updatedAt > this.#staleMs) continue
        if (e.hostname === me && !pidAlive(e.pid)) continue
        out.push(e)
      } catch {
        // removed between readdir and read, or being replaced: skip this round
      }
    }
    return out.sort((a, b) => a.port - b.port || a.host.localeCompare(b.host))
  }

  /** Nothing long-lived to release (registrations close themselves). */
  close (): void {
    this.#cache.clear()
  }
}
