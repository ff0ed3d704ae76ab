/**
 * What this build is: mesh-proxy's version (package.json, read once), and the
 * Node and OpenSSL it runs on. `--version`, the `sidecar started` line and the
 * mesh_proxy_build_info gauge all say the same three things.
 */
import { readFileSync, existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface BuildInfo {
  readonly version: string
  /** process.version, e.g. v24.4.0 */
  readonly node: string
  /** process.versions.openssl, e.g. 3.0.15+quic */
  readonly openssl: string
}

let cached: BuildInfo | undefined

/** The nearest package.json above this module (dist/src/build.js: two levels up). */
function packageVersion (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const p = join(dir, 'package.json')
    if (existsSync(p)) {
      const pkg = JSON.parse(readFileSync(p, 'utf8')) as { name?: unknown, version?: unknown }
      if (pkg.name === 'mesh-proxy' && typeof pkg.version === 'string') return pkg.version
    }
    const up = dirname(dir)
    if (up === dir) return 'unknown'
    dir = up
  }
}

export function buildInfo (): BuildInfo {
  cached ??= { version: packageVersion(), node: process.version, openssl: process.versions.openssl ?? 'none' }
  return cached
}

/** `mesh-proxy 0.1.0 (node v24.4.0, openssl 3.0.15+quic)`: the name, then the version as the second word. */
export function versionLine (b: BuildInfo = buildInfo()): string {
  return `mesh-proxy ${b.version} (node ${b.node}, openssl ${b.openssl})`
}
