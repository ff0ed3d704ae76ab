/**
 * Upstreams in another datacenter (issue 22): `--upstream-dc db=dc2` names
 * the datacenter of an upstream, whose SNI and expected identity then carry
 * it, and `--mesh-gateway-mode` says which mesh gateway its connections go
 * to, as Consul's gateway modes: `local` (our datacenter's) or `remote` (the
 * destination's). Consul's `none` (straight to the remote instances) needs
 * the remote catalog, which a mesh dir does not have. Pure.
 */
import { ConfigError } from '../errors.js'
import type { Parser } from './parse.js'
import type { UpstreamConfig } from './types.js'

export const MESH_GATEWAY_MODES = ['local', 'remote', 'none'] as const
export type MeshGatewayMode = typeof MESH_GATEWAY_MODES[number]

const NAME = /^[a-zA-Z0-9]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?$/

/** `--upstream-dc db=dc2` (repeatable; in the file an array of such strings): service -> datacenter. */
export const upstreamDcs: Parser<ReadonlyMap<string, string>> = (v, where) => {
  const out = new Map<string, string>()
  for (const s of Array.isArray(v) ? v : [v]) {
    const m = typeof s === 'string' ? /^([^=]+)=(.+)$/.exec(s) : null
    if (m === null || !NAME.test(m[1]!) || !NAME.test(m[2]!)) throw new ConfigError(where, `${JSON.stringify(s)} is not <upstream service>=<datacenter> (e.g. db=dc2)`)
    if (out.has(m[1]!)) throw new ConfigError(where, `${m[1]!} is given twice; an upstream is in one datacenter`)
    out.set(m[1]!, m[2]!)
  }
  return out
}

/** The upstreams with their datacenters set. */
export function withDatacenters (ups: readonly UpstreamConfig[], dcs: ReadonlyMap<string, string> | undefined): UpstreamConfig[] {
  return ups.map(u => { const dc = dcs?.get(u.service); return dc === undefined ? u : { ...u, target: { ...u.target, datacenter: dc } } })
}

/** An `--upstream-dc` for no upstream, or one that can find no gateway (no mesh dir for gateways.json, no listed instances). */
export function upstreamDcErrors (ups: readonly UpstreamConfig[], dcs: ReadonlyMap<string, string> | undefined, meshDir: string | null, controlPlane: string, mode: MeshGatewayMode = 'local'): ConfigError[] {
  const errors: ConfigError[] = []
  for (const [service, dc] of dcs ?? []) {
    const u = ups.find(x => x.service === service)
    if (u === undefined) errors.push(new ConfigError('--upstream-dc', `${service}=${dc} names no --upstream; give --upstream ${service}:<port> too`))
    // none: no gateway; a mesh dir has no other datacenter's catalog, so the instances are the ones listed.
    else if (mode === 'none' && u.instances === null && controlPlane !== 'consul') errors.push(new ConfigError('--mesh-gateway-mode', `none sends ${service} (in ${dc}) straight to its instances, and none are listed: give them (--upstream ${service}:<port>=<host:port>,...), or use local or remote`))
    // (With the mesh plane and no mesh dir, rules.ts already says the upstream has no instances.)
    // (Consul resolves the instances in that datacenter itself: no gateways.json needed.)
    else if (u.instances === null && meshDir === null && controlPlane !== 'mesh' && controlPlane !== 'consul') errors.push(new ConfigError('--upstream-dc', `${service} is in ${dc}: its mesh gateways are read from the mesh dir's gateways.json; give --mesh-dir, or list the gateway (--upstream ${service}:${'port' in u.bind ? u.bind.port : '<port>'}=<gateway host:port>)`))
  }
  return errors
}
