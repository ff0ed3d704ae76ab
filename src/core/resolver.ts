/** Where upstream instances come from: a static list, the mesh dir, later Consul. */

/** One reachable instance of a service's sidecar (its public mTLS listener). */
export interface Instance {
  readonly host: string
  readonly port: number
}

/**
 * Where an upstream service lives when it is not beside us: another
 * namespace, datacenter or admin partition (Consul's `DestinationNamespace`,
 * `Datacenter`, `DestinationPartition`). Absent fields: ours.
 */
export interface UpstreamTarget {
  readonly namespace?: string
  readonly datacenter?: string
  readonly partition?: string
  /** A federated trust domain the upstream's sidecars are in (`--upstream-trust-domain`); ours when absent. */
  readonly trustDomain?: string
}

/** Resolves a service name to its current instances. */
export interface Resolver {
  /** Current instances of `service` (in `where`, when given); empty when none is known. */
  instances (service: string, where?: UpstreamTarget): Promise<readonly Instance[]>
  /** The upstream is gone (a reload removed it): stop following its instances. Optional; idempotent. */
  forget? (service: string, where?: UpstreamTarget): void
  /** Release watchers and timers. Idempotent. */
  close (): void
}

/** Our entry in a catalog (mesh dir, Consul); `close()` removes it. */
export interface Registration {
  close (): Promise<void>
}

/** A fixed list, from `--upstream db:9191=10.0.0.5:21000,...`. */
export function staticResolver (byService: ReadonlyMap<string, readonly Instance[]>): Resolver {
  return {
    instances: async (service: string) => byService.get(service) ?? [],
    close: () => {}
  }
}
