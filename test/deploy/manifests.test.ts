// Why: there is no cluster here, so what can be checked without one is: the
// manifests have the fields Kubernetes requires and refer to one another
// correctly (volumes, ConfigMaps, ServiceAccounts, ports, probes, the SPIRE
// socket, the SPIFFE IDs of the entries); the sidecar's exact args parse
// against the real CLI with the pod's files in place; the real kubectl renders
// both kustomizations when it is installed; the Dockerfile builds on Node 24.
// That the pieces also work together is test/deploy/spire-k8s-e2e.test.ts.
import t from 'tap'
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { ROOT } from '../helpers/paths.js'
import { main } from '../../src/cli/main.js'
import { parseSpiffeId } from '../../src/core/identity/spiffe-id.js'
import { parseIdentityForm, spiffeIdOf, workloadOf } from '../../src/core/identity/forms.js'
import { K8S_DIR, container, find, kustomizationResources, layOutPod, loadObjects, podContainers, type Obj } from './manifests.js'

const spire = loadObjects('spire')
const demo = loadObjects('mesh-demo')
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
const hcl = (text: string, key: string): string => new RegExp(`^\\s*${key} = "?([^"\\n]+)"?$`, 'm').exec(text)![1]!
const serverConf = find(spire, 'ConfigMap', 'spire-server').data['server.conf'] as string
const agentConf = find(spire, 'ConfigMap', 'spire-agent').data['agent.conf'] as string
const TD = hcl(serverConf, 'trust_domain')
const entries = (JSON.parse(readFileSync(join(K8S_DIR, 'spire', 'entries.json'), 'utf8')) as { entries: Obj[] }).entries

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

t.test('every object has the fields Kubernetes requires; the kustomizations list every manifest', async t => {
  for (const sub of ['spire', 'mesh-demo']) {
    const listed = kustomizationResources(join(K8S_DIR, sub))
    const onDisk = readdirSync(join(K8S_DIR, sub)).filter(f => f.endsWith('.json') && f !== 'entries.json')
    t.same([...listed].sort(), onDisk.sort(), `${sub}: kustomization.yaml lists every manifest`)
  }
  for (const o of [...spire, ...demo]) {
    t.type(o.apiVersion, 'string', `${String(o.kind)} apiVersion`)
    t.type(o.kind, 'string')
    t.match(o.metadata?.name, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, `${String(o.kind)} metadata.name is a DNS label`)
    if (!['Namespace', 'ClusterRole', 'ClusterRoleBinding'].includes(o.kind)) t.type(o.metadata.namespace, 'string', `${String(o.kind)} ${String(o.metadata.name)} names its namespace`)
  }
  t.notOk([...spire, ...demo].some(o => o.kind === 'Secret'), 'no Secret: certificates come from SPIRE in the pod')
  t.notMatch(JSON.stringify([...spire, ...demo]), /REPLACE/, 'no placeholders')
})

t.test('images: pinned, published names; mesh-proxy is this version', async t => {
  for (const o of [...spire, ...demo].filter(o => o.spec?.template !== undefined)) {
    for (const c of podContainers(o.spec.template.spec)) {
      t.match(c.image, /^[a-z0-9.-]+(\/[a-z0-9._-]+)*:[0-9][\w.-]*$/, `${String(c.name)}: ${String(c.image)} has a version tag`)
      if (c.name === 'mesh-proxy') t.equal(c.image, `ghcr.io/mesh-proxy/mesh-proxy:${pkg.version}`)
      t.ok(c.resources?.requests && c.resources?.limits, `${String(o.metadata.name)}/${String(c.name)} has resources`)
    }
  }
  const kust = readFileSync(join(K8S_DIR, 'mesh-demo', 'kustomization.yaml'), 'utf8')
  t.match(kust, new RegExp(`newTag: ${pkg.version.replaceAll('.', '\\.')}$`, 'm'), 'the kustomization sets the same tag')
})

t.test('SPIRE: the agent reaches the server, the pods reach the agent socket', async t => {
  const svc = find(spire, 'Service', 'spire-server')
  const sts = find(spire, 'StatefulSet', 'spire-server')
  t.equal(svc.spec.ports[0].port, Number(hcl(serverConf, 'bind_port')), 'Service port = server bind_port')
  t.equal(hcl(agentConf, 'server_port'), hcl(serverConf, 'bind_port'))
  t.equal(hcl(agentConf, 'server_address'), `${String(svc.metadata.name)}.${String(svc.metadata.namespace)}.svc`)
  t.equal(hcl(agentConf, 'trust_domain'), TD)
  t.same(svc.spec.selector, sts.spec.template.metadata.labels)
  for (const [o, conf, file] of [[sts, 'spire-server', 'server.conf'], [find(spire, 'DaemonSet', 'spire-agent'), 'spire-agent', 'agent.conf']] as const) {
    const spec = o.spec.template.spec as Obj
    const c = spec.containers[0] as Obj
    t.same(c.args, ['-config', `${String(c.volumeMounts.find((m: Obj) => (spec.volumes as Obj[]).find(v => v.name === m.name)?.configMap?.name === conf).mountPath)}/${file}`], `${conf} runs with its ConfigMap's ${file}`)
    for (const m of c.volumeMounts as Obj[]) t.ok((spec.volumes as Obj[]).some(v => v.name === m.name) || (o.spec.volumeClaimTemplates as Obj[] | undefined)?.some(v => v.metadata.name === m.name), `${String(m.name)} is defined`)
  }
  const agentDs = find(spire, 'DaemonSet', 'spire-agent').spec.template.spec as Obj
  t.equal(agentDs.hostPID, true, 'the k8s workload attestor needs the host PID namespace')
  const socket = hcl(agentConf, 'socket_path')
  const agentMount = (agentDs.containers[0].volumeMounts as Obj[]).find(m => socket.startsWith(m.mountPath + '/'))!
  const hostPath = (agentDs.volumes as Obj[]).find(v => v.name === agentMount.name)!.hostPath.path as string
  const tokenPath = (agentDs.volumes as Obj[]).find(v => v.projected !== undefined)!.projected.sources[0].serviceAccountToken
  t.equal(tokenPath.audience, 'spire-server', 'k8s_psat token audience')
  t.ok((agentDs.containers[0].volumeMounts as Obj[]).some(m => m.mountPath === '/var/run/secrets/tokens'), 'where k8s_psat reads its token by default')
  for (const name of ['web', 'db']) {
    const spec = find(demo, 'Deployment', name).spec.template.spec as Obj
    const helper = container(spec, 'spiffe-helper')
    const conf = find(demo, 'ConfigMap', `${name}-spiffe-helper`).data['helper.conf'] as string
    const address = hcl(conf, 'agent_address')
    const m = (helper.volumeMounts as Obj[]).find(x => address.startsWith(x.mountPath + '/'))!
    t.ok(m, `${name}: spiffe-helper's agent_address is on a mount`)
    t.equal((spec.volumes as Obj[]).find(v => v.name === m.name)!.hostPath?.path, hostPath, `${name}: that mount is the agent's socket directory on the node`)
    t.equal(address.slice(m.mountPath.length), socket.slice(agentMount.mountPath.length), `${name}: the same socket file`)
  }
})

t.test('entries: Kubernetes-form IDs, trust domain + namespace + ServiceAccount, the form the sidecars are told', async t => {
  const alias = entries.find(e => e.parent_id === `spiffe://${TD}/spire/server`)!
  t.ok(alias, 'a node alias for the agents')
  const cluster = /clusters = \{ "([^"]+)"/.exec(serverConf)![1]!
  t.same(alias.selectors, [{ type: 'k8s_psat', value: `cluster:${cluster}` }, { type: 'k8s_psat', value: 'agent_ns:spire' }, { type: 'k8s_psat', value: 'agent_sa:spire-agent' }])
  t.match(agentConf, new RegExp(`cluster = "${cluster}"`), 'the agents attest in that cluster')
  for (const name of ['web', 'db']) {
    const deploy = find(demo, 'Deployment', name)
    const ns = deploy.metadata.namespace as string
    const sa = deploy.spec.template.spec.serviceAccountName as string
    t.equal(sa, name, `${name}: the ServiceAccount is the service name`)
    find(demo, 'ServiceAccount', sa)
    const mpConf = JSON.parse(find(demo, 'ConfigMap', `${name}-mesh-proxy`).data['mesh-proxy.json'] as string) as Obj
    t.equal(mpConf.identityForm, 'kubernetes', `${name}: mesh-proxy is told the form SPIRE issues on Kubernetes`)
    t.equal(mpConf.namespace, ns, `${name}: mesh-proxy's namespace is the pod's`)
    const form = parseIdentityForm(mpConf.identityForm as string)
    const e = entries.find(x => x.hint === name)!
    t.equal(e.spiffe_id, `spiffe://${TD}/ns/${ns}/sa/${sa}`, `${name}: the entry's ID is trust domain + namespace + ServiceAccount`)
    t.equal(e.spiffe_id, spiffeIdOf(form, { trustDomain: TD, namespace: ns, service: sa, datacenter: 'dc1' }).uri, `${name}: ... which is the ID mesh-proxy's form gives the service`)
    t.same(workloadOf(form, parseSpiffeId(e.spiffe_id as string)), { trustDomain: TD, namespace: ns, service: name, datacenter: null }, `${name}: and it maps back to ${ns}/${name}, the name intentions use`)
    t.equal(e.parent_id, alias.spiffe_id, `${name}: issued through the agents' alias`)
    t.same(e.selectors, [{ type: 'k8s', value: `ns:${ns}` }, { type: 'k8s', value: `sa:${sa}` }])
    t.equal(hcl(find(demo, 'ConfigMap', `${name}-spiffe-helper`).data['helper.conf'], 'hint'), name, `${name}: spiffe-helper asks for this entry`)
    t.ok(e.x509_svid_ttl <= 3600, 'a short-lived SVID, renewed by the agent at half-life')
  }
})

t.test('the pods: volumes, the sidecar args against the real CLI, probes and ports', async t => {
  const root = mkdtempSync(join(tmpdir(), 'mp-k8s-dry-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  const configs: Record<string, Obj> = {}
  for (const name of ['web', 'db']) {
    const d = find(demo, 'Deployment', name)
    const spec = d.spec.template.spec as Obj
    t.same(d.spec.selector.matchLabels, { app: name })
    t.match(d.spec.template.metadata.labels, { app: name, mesh: 'enabled' })
    for (const c of podContainers(spec)) {
      for (const m of (c.volumeMounts ?? []) as Obj[]) t.ok((spec.volumes as Obj[]).some(v => v.name === m.name), `${name}/${String(c.name)}: volume ${String(m.name)} defined`)
    }
    const paths = layOutPod(root, name, spec, demo.filter(o => o.kind === 'ConfigMap'))
    const helper = container(spec, 'spiffe-helper')
    t.equal(helper.restartPolicy, 'Always', 'spiffe-helper is a native sidecar: it runs for the pod\'s life and starts before mesh-proxy')
    t.ok((spec.initContainers as Obj[]).includes(helper))
    const helperConf = find(demo, 'ConfigMap', `${name}-spiffe-helper`).data['helper.conf'] as string
    t.equal(helper.startupProbe.httpGet.port, Number(hcl(helperConf, 'bind_port')), 'its startupProbe asks its health listener')
    t.equal(helper.startupProbe.httpGet.path, hcl(helperConf, 'readiness_path'), '... whether the files are written')
    t.equal(hcl(helperConf, 'daemon_mode'), 'true', 'it keeps renewing')

    const mp = container(spec, 'mesh-proxy')
    const local = paths('mesh-proxy')
    const args = (mp.args as string[]).map(a => a.startsWith('/') ? local(a) : a)
    const { code, config } = await dryRun(args)
    t.equal(code, 0, `${name}: mesh-proxy accepts the manifest's args and config file`)
    configs[name] = config
    t.match(config, { service: name, namespace: d.metadata.namespace, identityForm: 'kubernetes', plane: { kind: 'files' }, admin: { host: '0.0.0.0' } })
    // The certificate files are what spiffe-helper writes, on the volume both containers mount
    // (the paths in the pod, mapped to where each container's mount is laid out here).
    const helperLocal = paths('spiffe-helper')
    const certDir = hcl(helperConf, 'cert_dir')
    t.equal(local(config.plane.cert), helperLocal(`${certDir}/${hcl(helperConf, 'svid_file_name')}`), `${name}: --cert is spiffe-helper's svid_file_name`)
    t.equal(local(config.plane.key), helperLocal(`${certDir}/${hcl(helperConf, 'svid_key_file_name')}`), `${name}: --key is its svid_key_file_name`)
    t.equal(local(config.plane.ca), helperLocal(`${certDir}/${hcl(helperConf, 'svid_bundle_file_name')}`), `${name}: --ca is its svid_bundle_file_name`)
    const svidVolume = (spec.volumes as Obj[]).find(v => v.name === (mp.volumeMounts as Obj[]).find(m => m.mountPath === certDir)?.name)
    t.ok(svidVolume?.emptyDir, `${name}: the SVID lives in a pod-local emptyDir`)
    t.equal(svidVolume?.emptyDir?.medium, 'Memory', '... in memory, the key never on the node\'s disk')
    if (config.intentionsFile !== null) t.ok(JSON.parse(readFileSync(local(config.intentionsFile), 'utf8')), 'the intentions file is valid JSON')

    t.equal(mp.readinessProbe.httpGet.path, '/ready')
    t.equal(mp.readinessProbe.httpGet.port, config.admin.port)
    t.equal(mp.livenessProbe.httpGet.path, '/healthz')
    t.equal(mp.livenessProbe.httpGet.port, config.admin.port)
    t.equal(mp.securityContext.readOnlyRootFilesystem, true)
    t.ok(mp.lifecycle.preStop, 'preStop lets endpoints update before the drain')
    t.ok(spec.terminationGracePeriodSeconds * 1000 > config.timeouts.drainTimeoutMs + 5000, 'grace period covers preStop and the drain')
    t.equal(spec.automountServiceAccountToken, false, 'the pod needs no API token: the SPIRE agent attests it from the kubelet')
    if (config.listen !== null) t.ok((mp.ports as Obj[]).some(p => p.name === 'mesh-mtls' && p.containerPort === config.listen.port), 'mesh-mtls is the listen port')
  }
  t.match(configs.db, { listen: { host: '0.0.0.0', port: 21000 }, to: { host: '127.0.0.1' } })
  const dbApp = container(find(demo, 'Deployment', 'db').spec.template.spec, 'db')
  t.equal(dbApp.args[dbApp.args.indexOf('--bind') + 1], configs.db!.to.host, 'the db app listens on loopback only: mTLS is the one way in')
  t.equal(Number(dbApp.args[dbApp.args.indexOf('--port') + 1]), configs.db!.to.port, '... on the port mesh-proxy relays to')
  const up = configs.web!.upstreams[0]
  const dbSvc = find(demo, 'Service', 'db')
  t.same(up.instances, [{ host: `db.${String(dbSvc.metadata.namespace)}.svc.cluster.local`, port: dbSvc.spec.ports[0].port }], 'web\'s upstream is the db Service')
  t.match(container(find(demo, 'Deployment', 'web').spec.template.spec, 'web').command.join(' '), new RegExp(`-p ${String(up.bind.port)} `), 'the web app talks to the upstream port')
  const intentions = JSON.parse(find(demo, 'ConfigMap', 'db-mesh-proxy').data['intentions.json']) as Obj
  t.match(intentions, { defaultPolicy: 'deny', intentions: [{ source: 'mesh-demo/web', destination: 'mesh-demo/db', action: 'allow' }] })
})

t.test('the db Service and the NetworkPolicy admit only the mTLS port', async t => {
  const svc = find(demo, 'Service', 'db')
  t.equal(svc.spec.ports.length, 1)
  t.equal(svc.spec.ports[0].targetPort, 'mesh-mtls')
  t.same(svc.spec.selector, { app: 'db' })
  const np = demo.filter(o => o.kind === 'NetworkPolicy')
  t.equal(np.length, 1)
  const p = np[0]!.spec as Obj
  t.same(p.policyTypes, ['Ingress'])
  t.same(p.podSelector, { matchLabels: { mesh: 'enabled' } }, 'it selects the mesh pods')
  t.same(p.ingress, [{ from: [{ podSelector: { matchLabels: { mesh: 'enabled' } } }], ports: [{ protocol: 'TCP', port: 21000 }] }], 'one rule: the mTLS port, from mesh pods')
  for (const name of ['web', 'db']) t.match(find(demo, 'Deployment', name).spec.template.metadata.labels, p.podSelector.matchLabels)
})

const kubectl = ['/usr/local/bin/kubectl', '/usr/bin/kubectl'].find(p => existsSync(p))
t.test('kubectl kustomize renders both directories', { skip: kubectl === undefined ? 'kubectl not installed' : false }, async t => {
  for (const [sub, objects] of [['spire', spire], ['mesh-demo', demo]] as const) {
    const { stdout } = await promisify(execFile)(kubectl!, ['kustomize', join(K8S_DIR, sub)])
    t.equal(stdout.split(/^---$/m).length, objects.length, `${sub}: every object rendered`)
    for (const o of objects) t.match(stdout, new RegExp(`^kind: ${String(o.kind)}$`, 'm'))
  }
})

t.test('Dockerfile', async t => {
  const text = readFileSync(join(ROOT, 'deploy', 'Dockerfile'), 'utf8')
  t.match(text, /^ENTRYPOINT \["mesh-proxy"\]$/m)
  t.match(text, /^USER node$/m, 'non-root')
  t.match(text, /npm ci --omit=dev/, 'production dependencies only in the runtime stage')
  t.match(text, /^FROM node:24-bookworm-slim AS build$/m, 'built on Node 24')
  t.match(text, /^FROM node:24-bookworm-slim AS runtime$/m, 'runs on Node 24, the primary target')
  t.match(text, new RegExp(`ghcr\\.io/mesh-proxy/mesh-proxy:${pkg.version.replaceAll('.', '\\.')}`), 'the build line names the tag the manifests use')
  t.match(text, /LD_PRELOAD=\/usr\/local\/lib\/libjemalloc\.so\.2/, 'jemalloc preloaded (test/integration/jemalloc-preload.test.ts runs a sidecar so)')
  t.match(text, /MALLOC_CONF=background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:1000/)
  for (const m of text.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
    for (const src of m[1]!.split(' ')) t.ok(existsSync(join(ROOT, src)), `COPY source ${src} exists`)
  }
  const cmd = JSON.parse(/^CMD (.+)$/m.exec(text)![1]!) as string[]
  t.same(cmd, ['--help'])
})
