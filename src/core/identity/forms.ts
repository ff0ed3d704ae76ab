/**
 * Identity forms: how a SPIFFE ID names a workload (namespace, service and,
 * for Consul, datacenter), both ways: a peer's ID to the service intentions
 * name, and an upstream's service to the ID its server must present.
 *
 * - consul (the default): `spiffe://<td>/ns/<namespace>/dc/<datacenter>/svc/<service>`
 * - kubernetes: `spiffe://<td>/ns/<namespace>/sa/<service account>` (SPIRE's
 *   k8s registrar, Istio, cert-manager csi-driver-spiffe): the service is the
 *   service account;
 * - a template, e.g. `spiffe://{trustDomain}/workload/{service}`: each
 *   placeholder is a whole path segment (`{service}` required, `{namespace}`
 *   and `{datacenter}` optional, at most once each); the trust domain is
 *   `{trustDomain}` or a literal name. Without `{namespace}` the namespace is
 *   `default`.
 *
 * Pure; every error names the form and what to write instead.
 */
import { parseTrustDomain, spiffeIdFromSegments, type SpiffeId } from './spiffe-id.js'

/** A part of a workload a path segment can carry. */
export type FormField = 'namespace' | 'service' | 'datacenter'
type Segment = { readonly literal: string } | { readonly field: FormField }

/** A compiled identity form. */
export interface IdentityForm {
  /** `consul`, `kubernetes`, or the template as given. */
  readonly name: string
  /** The template this form matches, for messages (`spiffe://{trustDomain}/ns/{namespace}/sa/{service}`). */
  readonly template: string
  /** A literal trust domain, or null for `{trustDomain}` (any: the trust bundle decides). */
  readonly trustDomain: string | null
  readonly segments: readonly Segment[]
}

/** What an ID of a form says about its workload. */
export interface Workload {
  readonly trustDomain: string
  readonly namespace: string
  readonly service: string
  /** Only the Consul form (and templates with `{datacenter}`) carry one. */
  readonly datacenter: string | null
}

/** A form that cannot be compiled. */
export class IdentityFormError extends Error {
  override name = 'IdentityFormError'
}

/** The named forms. */
export const NAMED_FORMS: Readonly<Record<string, string>> = {
  consul: 'spiffe://{trustDomain}/ns/{namespace}/dc/{datacenter}/svc/{service}',
  kubernetes: 'spiffe://{trustDomain}/ns/{namespace}/sa/{service}'
}

const FIELDS: readonly FormField[] = ['namespace', 'service', 'datacenter']
const USAGE = 'give consul, kubernetes, or a template such as spiffe://{trustDomain}/workload/{service}'

/** Compile `consul`, `kubernetes` or a template; throws IdentityFormError. */
export function parseIdentityForm (s: string): IdentityForm {
  const template = NAMED_FORMS[s] ?? s
  const m = /^spiffe:\/\/([^/]+)((?:\/[^/]*)*)$/.exec(template)
  if (m === null) throw new IdentityFormError(`${JSON.stringify(s)} is not an identity form: ${USAGE}`)
  const trustDomain = m[1] === '{trustDomain}' ? null : literalTrustDomain(s, m[1]!)
  const segments = (m[2] ?? '').split('/').slice(1).map(seg => segmentOf(s, seg))
  const fields = segments.flatMap(x => 'field' in x ? [x.field] : [])
  for (const f of FIELDS) {
    if (fields.filter(x => x === f).length > 1) throw new IdentityFormError(`${JSON.stringify(s)}: {${f}} appears twice; each placeholder at most once`)
  }
  if (!fields.includes('service')) throw new IdentityFormError(`${JSON.stringify(s)} has no {service}: the service name must come from the ID (${USAGE})`)
  return { name: s, template, trustDomain, segments }
}

function literalTrustDomain (form: string, td: string): string {
  try { return parseTrustDomain(td) } catch (err) {
    throw new IdentityFormError(`${JSON.stringify(form)}: ${JSON.stringify(td)} is neither {trustDomain} nor a trust domain name (${(err as Error).message})`)
  }
}

function segmentOf (form: string, seg: string): Segment {
  const p = /^\{([A-Za-z]+)\}$/.exec(seg)
  if (p !== null) {
    if (!FIELDS.includes(p[1] as FormField)) throw new IdentityFormError(`${JSON.stringify(form)}: unknown placeholder {${p[1]!}}; use {service}, {namespace}, {datacenter} (and {trustDomain} after spiffe://)`)
    return { field: p[1] as FormField }
  }
  if (seg.includes('{') || seg.includes('}')) throw new IdentityFormError(`${JSON.stringify(form)}: ${JSON.stringify(seg)}: a placeholder must be a whole path segment (e.g. /{service}, not /svc-{service})`)
  try { spiffeIdFromSegments('x', [seg]) } catch (err) {
    throw new IdentityFormError(`${JSON.stringify(form)}: path segment ${JSON.stringify(seg)} is not valid in a SPIFFE ID (${(err as Error).message})`)
  }
  return { literal: seg }
}

/** The workload `id` names under `form`, or null when it is not of that form. */
export function workloadOf (form: IdentityForm, id: SpiffeId): Workload | null {
  if (form.trustDomain !== null && form.trustDomain !== id.trustDomain) return null
  const parts = id.path.split('/').slice(1)
  if (parts.length !== form.segments.length || id.path === '') return null
  const got: Partial<Record<FormField, string>> = {}
  for (let i = 0; i < parts.length; i++) {
    const seg = form.segments[i]!
    if ('literal' in seg) { if (seg.literal !== parts[i]) return null } else got[seg.field] = parts[i]!
  }
  return { trustDomain: id.trustDomain, namespace: got.namespace ?? 'default', service: got.service!, datacenter: got.datacenter ?? null }
}

/** The ID of `w` under `form`; throws (SpiffeIdError) when a value is not a valid path segment. */
export function spiffeIdOf (form: IdentityForm, w: { trustDomain: string, namespace: string, service: string, datacenter: string }): SpiffeId {
  const value: Record<FormField, string> = { namespace: w.namespace, service: w.service, datacenter: w.datacenter }
  return spiffeIdFromSegments(form.trustDomain ?? w.trustDomain, form.segments.map(s => 'literal' in s ? s.literal : value[s.field]))
}

/**
 * The ID an upstream's server must present, in an admin partition when one
 * other than `default` is given: Consul's `/ap/<partition>/ns/...` (only the
 * consul form has partitions).
 */
export function upstreamIdOf (form: IdentityForm, w: { trustDomain: string, namespace: string, service: string, datacenter: string, partition?: string }): SpiffeId {
  const p = w.partition
  if (p === undefined || p === '' || p === 'default') return spiffeIdOf(form, w)
  if (form.name !== 'consul') throw new IdentityFormError(`upstream ${w.service} is in admin partition ${p}, which only the consul identity form names (${NAMED_FORMS.consul}); remove the partition or use --identity-form consul`)
  return spiffeIdFromSegments(w.trustDomain, ['ap', p, 'ns', w.namespace, 'dc', w.datacenter, 'svc', w.service])
}

/** Consul's SNI for an upstream (connect.ServiceSNI): `internal-v1` with a partition other than default. */
export function upstreamSni (w: { trustDomain: string, namespace: string, service: string, datacenter: string, partition?: string }): string {
  const p = w.partition
  return p === undefined || p === '' || p === 'default'
    ? `${w.service}.${w.namespace}.${w.datacenter}.internal.${w.trustDomain}`
    : `${w.service}.${w.namespace}.${p}.${w.datacenter}.internal-v1.${w.trustDomain}`
}

/** For messages: `spiffe://<td>/ns/<namespace>/sa/<service>`. */
export function describeForm (form: IdentityForm): string {
  return form.template.replace('{trustDomain}', '<td>').replace(/\{(\w+)\}/g, '<$1>')
}

/** Why `uri` maps to no service under `form`, and the fix. */
export function notOfForm (form: IdentityForm, uri: string): string {
  return form.name === 'consul'
    ? `${uri} is not a Consul service identity (${describeForm(form)}); if your SPIFFE IDs have another form, say which with --identity-form (kubernetes, or a template)`
    : `${uri} does not have the identity form of --identity-form ${form.name} (${describeForm(form)})`
}
