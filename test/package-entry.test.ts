// Why: package.json "main" is what `import 'mesh-proxy'` loads; it must exist
// (it named a file that did not) and carry the public API, and importing it
// must start nothing.
import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { ROOT } from './helpers/paths.js'

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { main: string }
const entry = join(ROOT, pkg.main)

t.test('package.json "main" exists and exports the public API', async t => {
  t.ok(existsSync(entry), `${pkg.main} exists (after the build)`)
  const api = await import(pathToFileURL(entry).href) as Record<string, unknown>
  for (const name of ['Sidecar', 'resolveConfig', 'createLogger', 'MetricsRegistry', 'MeshProxyError', 'ConfigError', 'ListenError', 'CertificateError', 'SpiffeIdError', 'IntentionError', 'HandshakeTimeoutError', 'ConnectError', 'PeerIdentityError', 'ConsulError']) {
    t.type(api[name], 'function', name)
  }
  const ERR = api.ERR as Record<string, string>
  t.type(ERR, 'object', 'ERR')
  t.equal(ERR.CONFIG, 'MP_ERR_CONFIG')
  t.type(api.METRICS, 'object', 'METRICS')
  t.ok(new (api.ConfigError as new (f: string, m: string) => Error)('--listen', 'x') instanceof (api.MeshProxyError as typeof Error), 'error classes are the ones the package throws')
})

t.test('the entry resolves a configuration without starting anything', async t => {
  const api = await import(pathToFileURL(entry).href) as { resolveConfig: (s: unknown) => { service: string } }
  const config = api.resolveConfig({ flags: { service: 'web', meshDir: '/nonexistent', to: '127.0.0.1:8080' }, env: {}, file: null })
  t.equal(config.service, 'web')
})
