// Why: we cannot run Docker or a cluster here, so we test what can be tested:
// the manifests have the fields Kubernetes requires, every mesh-proxy argument
// in them parses against the real CLI, the probes and ports agree with the
// flags, and the Dockerfile's entrypoint and inputs exist.
import t from 'tap'
import { readFileSync, readdirSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT } from '../helpers/paths.js'
import { main } from '../../src/cli/main.js'

type Obj = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

const dir = join(ROOT, 'deploy', 'kubernetes')
const objects: Obj[] = readdirSync(dir).filter(f => f.endsWith('.json')).flatMap(f => {
  const o = JSON.parse(readFileSync(join(dir, f), 'utf8')) as Obj
  return o.kind === 'List' ? o.items as Obj[] : [o]
})

async function dryRun (args: string[]): Promise<{ code: number, config: Obj }> {
  const writes: string[] = []
  const orig = process.stdout.write.bind(process.stdout)
  process.stdout.write = ((s: string) => { writes.push(String(s)); return true }) as typeof process.stdout.write
  try {
    const code = await main(['node', 'mesh-proxy', ...args, '--dry-run'])
    return { code, config: code === 0 ? JSON.parse(writes.join('')) as Obj : {} }
  } finally {
    process.stdout.write = orig
  }
}

t.test('every object has the fields Kubernetes requires', async t => {
  t.ok(objects.length >= 5)
  for (const o of objects) {
    t.type(o.apiVersion, 'string', `${String(o.kind)} apiVersion`)
    t.type(o.kind, 'string')
    t.match(o.metadata?.name, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, `${String(o.kind)} metadata.name is a DNS label`)
  }
})

t.test('the sidecar container: args parse, probes and ports agree', async t => {
  const deployments = objects.filter(o => o.kind === 'Deployment')
  t.equal(deployments.length, 1)
  const d = deployments[0]!
  t.same(d.spec.selector.matchLabels, d.spec.template.metadata.labels, 'selector matches the pod labels')
  const containers = d.spec.template.spec.containers as Obj[]
  for (const c of containers) { t.type(c.name, 'string'); t.type(c.image, 'string') }
  const sidecar = containers.find(c => c.name === 'mesh-proxy')!
  const { code, config } = await dryRun(sidecar.args as string[])
  t.equal(code, 0, 'mesh-proxy accepts every flag in the manifest')
  t.match(config, { service: 'web', listen: { port: 21000 }, to: { host: '127.0.0.1', port: 8080 }, admin: { host: '0.0.0.0', port: 19000 } })
  t.equal(sidecar.readinessProbe.httpGet.path, '/ready')
  t.equal(sidecar.readinessProbe.httpGet.port, config.admin.port)
  t.equal(sidecar.livenessProbe.httpGet.path, '/healthz')
  t.ok(sidecar.ports.some((p: Obj) => p.containerPort === config.listen.port), 'mTLS port exposed')
  t.equal(sidecar.securityContext.readOnlyRootFilesystem, true)
  t.ok(sidecar.lifecycle.preStop, 'preStop lets endpoints update before the drain')
  t.ok(d.spec.template.spec.terminationGracePeriodSeconds * 1000 > config.timeouts.drainTimeoutMs, 'grace period covers the drain')
  for (const m of sidecar.volumeMounts as Obj[]) t.ok((d.spec.template.spec.volumes as Obj[]).some(v => v.name === m.name), `volume ${String(m.name)} defined`)
  const files = [config.plane.cert, config.plane.key, config.plane.ca, config.intentionsFile] as string[]
  for (const f of files) t.ok((sidecar.volumeMounts as Obj[]).some(m => f.startsWith(m.mountPath + '/')), `${f} is on a mounted volume`)
  for (const c of containers) t.ok(c.resources?.requests && c.resources?.limits, `${String(c.name)} has resources`)
})

t.test('the Service exposes only the sidecar mTLS port', async t => {
  const svc = objects.find(o => o.kind === 'Service')!
  t.equal(svc.spec.ports.length, 1)
  t.equal(svc.spec.ports[0].targetPort, 'mesh-mtls')
  const intentions = objects.find(o => o.kind === 'ConfigMap' && o.metadata.name === 'mesh-intentions')!
  t.ok(JSON.parse(intentions.data['intentions.json']), 'the intentions ConfigMap holds valid JSON')
})

t.test('Dockerfile', async t => {
  const text = readFileSync(join(ROOT, 'deploy', 'Dockerfile'), 'utf8')
  t.match(text, /^ENTRYPOINT \["mesh-proxy"\]$/m)
  t.match(text, /^USER node$/m, 'non-root')
  t.match(text, /npm ci --omit=dev/, 'production dependencies only in the runtime stage')
  t.match(text, /^FROM node:24-bookworm-slim AS runtime$/m, 'on Node 24, the primary target')
  t.match(text, /LD_PRELOAD=\/usr\/local\/lib\/libjemalloc\.so\.2/, 'jemalloc preloaded (test/integration/jemalloc-preload.test.ts runs a sidecar so)')
  t.match(text, /MALLOC_CONF=background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:1000/)
  for (const m of text.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
    for (const src of m[1]!.split(' ')) t.ok(existsSync(join(ROOT, src)), `COPY source ${src} exists`)
  }
  const cmd = JSON.parse(/^CMD (.+)$/m.exec(text)![1]!) as string[]
  t.same(cmd, ['--help'])
})
