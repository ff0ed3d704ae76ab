/**
 * SPIFFE federation (Trust Domain and Bundle spec): the roots of another
 * trust domain, from its bundle document (JSON, as SPIRE's federation
 * endpoint and `spire-server bundle show -format spiffe` write it) or PEM.
 * Every root is tagged with that trust domain only, so that a peer of it is
 * verified against its roots and never against ours (peer.ts checks the
 * chain's root belongs to the peer's own trust domain). Pure.
 */
import { CertificateError } from '../errors.js'
import { makeBundle, type RootCert, type TrustBundle } from './bundle.js'
import { bundleFromText } from './spiffe-bundle.js'

/** The roots of `trustDomain` in `text`; `what` names the file in errors. */
export function federatedRoots (trustDomain: string, text: string, what: string): RootCert[] {
  const bundle = bundleFromText(text, trustDomain, what)
  const stray = bundle.roots.find(r => r.trustDomain !== trustDomain)
  if (stray !== undefined) throw new CertificateError(`${what}: a root of trust domain ${stray.trustDomain} (${stray.cert.subject}) in the bundle of ${trustDomain}; a federated bundle holds its own trust domain's roots only`)
  if (bundle.roots.length === 0) throw new CertificateError(`${what}: no X.509 roots for ${trustDomain}`)
  return [...bundle.roots]
}

/** `own` plus the federated roots; a federated trust domain that is our own is refused. */
export function federate (own: TrustBundle, ownTrustDomain: string, federated: ReadonlyMap<string, readonly RootCert[]>): TrustBundle {
  if (federated.has(ownTrustDomain)) throw new CertificateError(`--federate ${ownTrustDomain}: that is our own trust domain; its roots come from the control plane`)
  return makeBundle([...own.roots, ...[...federated.values()].flat()])
}
