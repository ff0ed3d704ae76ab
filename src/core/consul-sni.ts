/**
 * Consul's SNI for a service: `<service>.<namespace>.<datacenter>.internal.<trust-domain>`
 * (what our outbound sends, dataplane/outbound.ts, and what Consul's Envoy
 * sidecars send). Pure. The trust domain may itself hold dots
 * (`<uuid>.consul`). Consul's partition form (`…internal-v1…`) is refused
 * by name: mesh-proxy has no admin partitions.
 */

/** A parsed service SNI. */
export interface ConsulSni {
  readonly service: string
  readonly namespace: string
  readonly datacenter: string
  readonly trustDomain: string
}

/** The SNI a sidecar sends to reach `service` (the outbound's form, in one place for the gateways). */
export function formatConsulSni (s: ConsulSni): string {
  return `${s.service}.${s.namespace}.${s.datacenter}.internal.${s.trustDomain}`
}

/** Parse `sni` (already a lower-case DNS name); a string says why it is not Consul's service form. */
export function parseConsulSni (sni: string): ConsulSni | string {
  const labels = sni.split('.')
  if (labels.includes('internal-v1')) return `${sni} is Consul's admin-partition form (internal-v1), which mesh-proxy does not route`
  const at = labels.indexOf('internal')
  if (at < 0) return `${sni} is not <service>.<namespace>.<datacenter>.internal.<trust-domain>`
  if (at !== 3) return `${sni} has ${at} labels before "internal", not 3 (<service>.<namespace>.<datacenter>)`
  const trustDomain = labels.slice(4).join('.')
  if (trustDomain === '') return `${sni} has no trust domain after "internal"`
  return { service: labels[0]!, namespace: labels[1]!, datacenter: labels[2]!, trustDomain }
}
