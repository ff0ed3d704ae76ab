/**
 * `intention create|delete|get|list|match|check|default-policy` on the mesh
 * dir, with Consul's words (`intention create -allow web db`). Exit codes of
 * `check`: 0 allowed, 1 denied, 2 usage or store error.
 */
import { ConfigError, IntentionError } from '../core/errors.js'
import { stat } from 'node:fs/promises'
import { meshLayout } from '../meshdir/layout.js'
import { readIntentions, updateIntentions } from '../meshdir/intentions-store.js'
import { decide, decidedBy, matchIntentions, pairKey, parseServiceRef, precedenceOf, type Action, type Intention } from '../core/intentions/table.js'

type Say = (l: string) => void

/** Options of `intention create`. */
/**
 * The intentions file of a mesh dir that exists: a missing or mistyped
 * --mesh-dir is an error naming it, never an empty table (exit 0) or a stray
 * directory created on write. (An existing directory without mesh.json is
 * fine: intentions may be kept apart from a CA.)
 */
async function intentionsPath (meshDir: string): Promise<string> {
  const layout = meshLayout(meshDir)
  const s = await stat(layout.root).catch(() => undefined)
  if (s?.isDirectory() !== true) {
    throw new ConfigError('--mesh-dir', `${layout.root} ${s === undefined ? 'does not exist' : 'is not a directory'}; create the mesh dir with "mesh-proxy ca init --mesh-dir ${layout.root}" (or fix the path)`)
  }
  return layout.intentions
}

export interface CreateOptions {
  meshDir: string
  action: Action
  replace?: boolean
  description?: string
  meta?: string[]
  audit?: boolean
  sourceTrustDomain?: string
}

function parseMeta (pairs: string[] | undefined): Record<string, string> | undefined {
  if (pairs === undefined || pairs.length === 0) return undefined
  const out: Record<string, string> = {}
  for (const p of pairs) {
    const i = p.indexOf('=')
    if (i <= 0) throw new IntentionError(`-meta ${JSON.stringify(p)}: expected key=value`)
    out[p.slice(0, i)] = p.slice(i + 1)
  }
  return out
}

function describe (i: Intention): string {
  const prec = precedenceOf(parseServiceRef(i.source, 'source'), parseServiceRef(i.destination, 'destination'))
  const extra = [
    i.audit === true ? 'audit' : '',
    i.description === undefined ? '' : JSON.stringify(i.description),
    i.meta === undefined ? '' : Object.entries(i.meta).map(([k, v]) => `${k}=${v}`).join(',')
  ].filter(x => x !== '').join('  ')
  return `${i.source} => ${i.destination}  ${i.action}  precedence ${prec}${extra === '' ? '' : '  ' + extra}`
}

/** Create (or with replace, update) source -> destination. */
export async function intentionCreate (src: string, dst: string, o: CreateOptions, say: Say): Promise<number> {
  const td = o.sourceTrustDomain
  const k = pairKey(src, dst, td)
  const meta = parseMeta(o.meta)
  const doc = await updateIntentions(await intentionsPath(o.meshDir), cur => {
    const existing = cur.intentions.findIndex(i => pairKey(i.source, i.destination, i.sourceTrustDomain) === k)
    if (existing >= 0 && o.replace !== true) throw new IntentionError(`an intention ${k} already exists (${cur.intentions[existing]!.action}); use -replace to change it`)
    const next: Intention = {
      source: src,
      ...(td === undefined ? {} : { sourceTrustDomain: td }),
      destination: dst,
      action: o.action,
      ...(o.description === undefined ? {} : { description: o.description }),
      ...(meta === undefined ? {} : { meta }),
      ...(o.audit === true ? { audit: true } : {}),
      createIndex: existing >= 0 ? cur.intentions[existing]!.createIndex ?? cur.index + 1 : cur.index + 1,
      modifyIndex: cur.index + 1
    }
    const intentions = existing >= 0 ? cur.intentions.map((i, n) => n === existing ? next : i) : [...cur.intentions, next]
    return { ...cur, intentions }
  })
  say(`${o.replace === true ? 'Created or replaced' : 'Created'}: ${src}${td === undefined ? '' : ` (${td})`} => ${dst} (${o.action}${o.audit === true ? ', audit' : ''}) [index ${doc.index}]`)
  return 0
}

/** Delete source -> destination. */
export async function intentionDelete (src: string, dst: string, o: { meshDir: string }, say: Say): Promise<number> {
  const k = pairKey(src, dst)
  await updateIntentions(await intentionsPath(o.meshDir), cur => {
    const rest = cur.intentions.filter(i => pairKey(i.source, i.destination) !== k)
    if (rest.length === cur.intentions.length) throw new IntentionError(`no intention ${k} exists; "mesh-proxy intention list" shows them`)
    return { ...cur, intentions: rest }
  })
  say(`Intention deleted: ${src} => ${dst}`)
  return 0
}

/** Show one intention. */
export async function intentionGet (src: string, dst: string, o: { meshDir: string, json?: boolean }, say: Say): Promise<number> {
  const k = pairKey(src, dst)
  const doc = await readIntentions(await intentionsPath(o.meshDir))
  const hit = doc.intentions.find(i => pairKey(i.source, i.destination) === k)
  if (hit === undefined) throw new IntentionError(`no intention ${k} exists; "mesh-proxy intention list" shows them`)
  say(o.json === true ? JSON.stringify(hit, null, 2) : describe(hit))
  return 0
}

/** List all intentions. */
export async function intentionList (o: { meshDir: string, json?: boolean }, say: Say): Promise<number> {
  const doc = await readIntentions(await intentionsPath(o.meshDir))
  if (o.json === true) { say(JSON.stringify(doc, null, 2)); return 0 }
  say(`default policy: ${doc.defaultPolicy}   index: ${doc.index}`)
  for (const i of doc.intentions) say(describe(i))
  return 0
}

/** Intentions that apply to a destination (or with `source`, to a source), in precedence order. */
export async function intentionMatch (name: string, o: { meshDir: string, source?: boolean, json?: boolean }, say: Say): Promise<number> {
  const doc = await readIntentions(await intentionsPath(o.meshDir))
  const ranked = matchIntentions(doc, o.source === true ? 'source' : 'destination', name)
  if (o.json === true) { say(JSON.stringify(ranked, null, 2)); return 0 }
  for (const r of ranked) say(describe(r.intention))
  return 0
}

/** Check whether source may connect to destination; exit 0 allowed, 1 denied. */
export async function intentionCheck (src: string, dst: string, o: { meshDir: string, explain?: boolean }, say: Say): Promise<number> {
  const doc = await readIntentions(await intentionsPath(o.meshDir))
  const d = decide(doc, src, dst)
  say(d.allowed ? 'Allowed' : 'Denied')
  if (o.explain === true) say(`decided by ${decidedBy(d)}${d.precedence > 0 ? ` (precedence ${d.precedence})` : ''}: ${d.reason}`)
  return d.allowed ? 0 : 1
}

/** Show, or with an argument set, the mesh dir's default policy. */
export async function intentionDefaultPolicy (policy: string | undefined, o: { meshDir: string }, say: Say): Promise<number> {
  const path = await intentionsPath(o.meshDir)
  if (policy === undefined) {
    say((await readIntentions(path)).defaultPolicy)
    return 0
  }
  if (policy !== 'allow' && policy !== 'deny') throw new IntentionError(`default policy must be "allow" or "deny", got ${JSON.stringify(policy)}`)
  const doc = await updateIntentions(path, cur => ({ ...cur, defaultPolicy: policy }))
  say(`default policy: ${policy} [index ${doc.index}]`)
  return 0
}
