/**
 * What the two local planes (mesh-dir.ts, files.ts) build the same way: the
 * certificate manager feeding their TLS cell, the intentions file, and the
 * registration in a mesh dir catalog.
 */
import type { Registration } from '../core/resolver.js'
import type { Cell } from '../core/watched.js'
import type { MeshCatalog } from '../meshdir/catalog.js'
import type { TlsState } from '../tls/context.js'
import { CertManager, type CertSource } from './cert-manager.js'
import { FileIntentions } from './intentions-file.js'
import type { PlaneDeps } from './types.js'

/** Certificates from `source`, into `cell`, as every local plane runs them. */
export function certManager (deps: PlaneDeps, source: CertSource, cell: Cell<TlsState>): CertManager {
  return new CertManager({
    source,
    service: deps.config.service,
    identityForm: deps.config.identityForm,
    logger: deps.logger,
    metrics: deps.metrics,
    leafTtlMs: deps.config.leafTtlMs,
    renew: deps.leader,
    ...(deps.rootChangeJitterMs === undefined ? {} : { rootChangeJitterMs: deps.rootChangeJitterMs }),
    onChange: state => cell.set(state)
  })
}

/** Intentions from `path` when this sidecar has an inbound side, else none. */
export function fileIntentions (deps: PlaneDeps, path: string | undefined): FileIntentions | null {
  const cfg = deps.config
  if (cfg.listen === null) return null
  // resolveConfig refuses --listen without a mesh dir or --intentions.
  if (path === undefined) throw new Error('no intentions file: give --mesh-dir or --intentions with --listen')
  return new FileIntentions(path, { namespace: cfg.namespace, name: cfg.service }, { defaultPolicy: cfg.defaultPolicy, logger: deps.logger, metrics: deps.metrics })
}

/** Registration in `catalog`, for the leader of --workers only (one entry per sidecar, not per process); none without a catalog. */
export function registerIn (deps: PlaneDeps, catalog: MeshCatalog | null): ((host: string, port: number) => Promise<Registration>) | undefined {
  if (catalog === null || !deps.leader) return undefined
  return (host, port) => catalog.register(deps.config.service, host, port)
}
