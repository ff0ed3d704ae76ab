/** The control plane a config asks for: one implementation per PlaneConfig kind. */
import { ConsulPlane } from './consul.js'
import { FilesPlane } from './files.js'
import { MeshDirPlane } from './mesh-dir.js'
import { FederatedPlane } from './federation.js'
import { SpiffePlane } from './spiffe.js'
import type { ControlPlane, PlaneDeps } from './types.js'

export type { ControlPlane, IntentionsState, PlaneDeps } from './types.js'

/** Build (not start) the plane of `deps.config.plane`, federated when --federate is given. */
export function planeFor (deps: PlaneDeps): ControlPlane {
  const base = basePlane(deps)
  return deps.config.federate.length === 0 ? base : new FederatedPlane(deps, base)
}

function basePlane (deps: PlaneDeps): ControlPlane {
  const p = deps.config.plane
  switch (p.kind) {
    case 'mesh-dir': return new MeshDirPlane(deps, p.meshDir)
    case 'files': return new FilesPlane(deps, p)
    case 'consul': return new ConsulPlane(deps, p)
    case 'spiffe': return new SpiffePlane(deps, p)
  }
}
