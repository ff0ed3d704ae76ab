// The Kubernetes manifests under deploy/kubernetes/, read as kubectl would
// read them (the files a kustomization.yaml lists, a List's items flattened),
// and a pod's volumes laid out in a local directory so that its containers'
// commands can run as local processes with the paths they would see in the pod.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT } from '../helpers/paths.js'

export type Obj = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

export const K8S_DIR = join(ROOT, 'deploy', 'kubernetes')

/** The `resources:` of a kustomization.yaml (a plain block list of file names). */
export function kustomizationResources (dir: string): string[] {
  const text = readFileSync(join(dir, 'kustomization.yaml'), 'utf8')
  const block = /^resources:\n((?: {2}- .+\n)+)/m.exec(text)
  if (block === null) throw new Error(`${dir}/kustomization.yaml has no resources: block`)
  return block[1]!.trim().split('\n').map(l => l.replace(/^\s*- /, '').trim())
}

/** Every object of a kustomization directory, Lists flattened, each tagged with its file. */
export function loadObjects (sub: string): Obj[] {
  const dir = join(K8S_DIR, sub)
  return kustomizationResources(dir).flatMap(f => {
    const o = JSON.parse(readFileSync(join(dir, f), 'utf8')) as Obj
    return (o.kind === 'List' ? o.items as Obj[] : [o]).map(x => Object.defineProperty(x, '$file', { value: f, enumerable: false }))
  })
}

export function find (objects: Obj[], kind: string, name: string): Obj {
  const o = objects.find(x => x.kind === kind && x.metadata?.name === name)
  if (o === undefined) throw new Error(`no ${kind} ${name}`)
  return o
}

/** A pod template's containers, native sidecars (initContainers) included. */
export function podContainers (podSpec: Obj): Obj[] {
  return [...(podSpec.initContainers ?? []) as Obj[], ...podSpec.containers as Obj[]]
}

export function container (podSpec: Obj, name: string): Obj {
  const c = podContainers(podSpec).find(x => x.name === name)
  if (c === undefined) throw new Error(`no container ${name}`)
  return c
}

/**
 * Lay out a pod's volumes under `root`: a pod-local volume (emptyDir,
 * configMap) at `root/<pod>/<volume>`, a hostPath at `root/host/<path>` (shared
 * by every pod on the "node", as the SPIRE agent socket is), ConfigMap data
 * written as its files. Returns, per container, the map from the paths it sees
 * to local ones.
 */
export function layOutPod (root: string, pod: string, podSpec: Obj, configMaps: Obj[]): (containerName: string) => (path: string) => string {
  const volumeDir = new Map<string, string>()
  for (const v of podSpec.volumes as Obj[]) {
    const local = v.hostPath !== undefined ? join(root, 'host', v.hostPath.path as string) : join(root, pod, v.name as string)
    mkdirSync(local, { recursive: true })
    if (v.configMap !== undefined) {
      const cm = configMaps.find(c => c.metadata.name === v.configMap.name)
      if (cm === undefined) throw new Error(`volume ${String(v.name)}: no ConfigMap ${String(v.configMap.name)}`)
      for (const [k, text] of Object.entries(cm.data as Record<string, string>)) writeFileSync(join(local, k), text)
    }
    volumeDir.set(v.name as string, local)
  }
  return (containerName: string) => {
    const mounts = (container(podSpec, containerName).volumeMounts as Obj[])
      .map(m => ({ at: m.mountPath as string, local: volumeDir.get(m.name as string)! }))
      .sort((a, b) => b.at.length - a.at.length)
    return (path: string) => {
      const m = mounts.find(x => path === x.at || path.startsWith(x.at + '/'))
      if (m === undefined) throw new Error(`${containerName}: ${path} is on no mounted volume`)
      return m.local + path.slice(m.at.length)
    }
  }
}

/** Every absolute path in quotes in `text` (an HCL config) mapped; paths on no mount are left as they are. */
export function mapQuotedPaths (text: string, map: (p: string) => string): string {
  return text.replace(/"(\/[^"]*)"/g, (all, p: string) => { try { return JSON.stringify(map(p)) } catch { return all } })
}

/** `line` replaced by `by` in `text`; throws if the line is not there (the manifest changed under the test). */
export function replaceLine (text: string, line: RegExp, by: string): string {
  if (!line.test(text)) throw new Error(`no line matching ${String(line)} in:\n${text}`)
  return text.replace(new RegExp(line.source, line.flags.includes('g') ? line.flags : line.flags + 'g'), by)
}
