/**
 * `<mesh dir>/gateways.json`: where each datacenter's mesh gateways are,
 * for a mesh gateway of this one (which skips its own) (`{ "dc2": ["10.2.0.5:8443"] }`).
 * Optional: no file means none known (`--remote-gateway` adds to it). A
 * sidecar reads it too, for its upstreams in other datacenters: our own
 * datacenter's entry is where `--mesh-gateway-mode local` sends them.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { HostPort } from '../core/config/types.js'
import { ConfigError, errorCode, toError } from '../core/errors.js'
import { parseHostPort } from '../core/config/parse.js'
import type { Resolver } from '../core/resolver.js'

/** The file's path in the mesh dir at `root`. */
export function gatewaysFile (root: string): string {
  return join(root, 'gateways.json')
}

/** Read it: datacenter -> gateways; empty when there is no file. Errors name the file and the form. */
export async function readRemoteGateways (root: string): Promise<Map<string, HostPort[]>> {
  const file = gatewaysFile(root)
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return new Map()
    throw new ConfigError('--mesh-dir', `cannot read ${file}: ${toError(err).message}`)
  }
  const form = `{ "<datacenter>": ["<host:port>", ...] }`
  let doc: unknown
  try { doc = JSON.parse(text) } catch (err) { throw new ConfigError('--mesh-dir', `${file} is not valid JSON (${toError(err).message}); the form is ${form}`) }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new ConfigError('--mesh-dir', `${file} must be an object, ${form}`)
  const out = new Map<string, HostPort[]>()
  for (const [dc, list] of Object.entries(doc)) {
    if (!Array.isArray(list) || list.length === 0 || !list.every(a => typeof a === 'string')) throw new ConfigError('--mesh-dir', `${file}: "${dc}" must be a non-empty list of "host:port" strings`)
    out.set(dc, list.map(a => parseHostPort(a as string, `${file} ${dc}`)))
  }
  return out
}

/**
 * The mesh gateways of `datacenter` as a Resolver, for an upstream in another
 * datacenter: read from the file (cached for `cacheMs`), so that a moved
 * gateway is followed. None listed: an error that says where to add it.
 */
export function gatewayResolver (root: string, datacenter: string, why: string, cacheMs = 1000): Resolver {
  let cached: { at: number, gws: Promise<readonly HostPort[]> } | undefined
  return {
    instances: async () => {
      const now = Date.now()
      if (cached === undefined || now - cached.at >= cacheMs) cached = { at: now, gws: readRemoteGateways(root).then(m => m.get(datacenter) ?? []) }
      const gws = await cached.gws.catch((err: unknown) => { cached = undefined; throw err })
      if (gws.length === 0) throw new Error(`no mesh gateway of ${datacenter} is listed in ${gatewaysFile(root)} (${why}); add "${datacenter}": ["<host:port>"]`)
      return gws
    },
    close: () => { cached = undefined }
  }
}
