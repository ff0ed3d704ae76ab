/**
 * `intention create|delete|list|check` on the mesh dir, with Consul's words
 * (`intention create -allow web db`). Exit codes of `check`: 0 allowed,
 * 1 denied, 2 usage or store error.
 */
import { IntentionError } from '../errors.js'
import { meshLayout } from '../meshdir/layout.js'
import { readIntentions, updateIntentions } from '../intentions/store.js'
import { decide, decidedBy, formatServiceRef, parseServiceRef, type Action, type Intention } from '../intentions/table.js'

const key = (s: string, d: string): string => `${formatServiceRef(parseServiceRef(s, 'source'))} -> ${formatServiceRef(parseServiceRef(d, 'destination'))}`

/** Create (or with replace, update) source -> destination. */
export async function intentionCreate (src: string, dst: string, o: { meshDir: string, action: Action, replace?: boolean, description?: string }, say: (l: string) => void): Promise<number> {
  parseServiceRef(src, 'source')
  parseServiceRef(dst, 'destination')
  const path = meshLayout(o.meshDir).intentions
  const doc = await updateIntentions(path, cur => {
    const k = key(src, dst)
    const existing = cur.intentions.findIndex(i => key(i.source, i.destination) === k)
    if (existing >= 0 && o.replace !== true) throw new IntentionError(`an intention ${k} already exists (${cur.intentions[existing]!.action}); use -replace to change it`)
    const next: Intention = { source: src, destination: dst, action: o.action, ...(o.description === undefined ? {} : { description: o.description }), createIndex: existing >= 0 ? cur.intentions[existing]!.createIndex ?? cur.index + 1 : cur.index + 1, modifyIndex: cur.index + 1 }
    const intentions = existing >= 0 ? cur.intentions.map((i, n) => n === existing ? next : i) : [...cur.intentions, next]
    return { ...cur, intentions }
  })
  say(`Created: ${src} => ${dst} (${o.action}) [index ${doc.index}]`)
  return 0
}

/** Delete source -> destination. */
export async function intentionDelete (src: string, dst: string, o: { meshDir: string }, say: (l: string) => void): Promise<number> {
  const path = meshLayout(o.meshDir).intentions
  await updateIntentions(path, cur => {
    const k = key(src, dst)
    const rest = cur.intentions.filter(i => key(i.source, i.destination) !== k)
    if (rest.length === cur.intentions.length) throw new IntentionError(`no intention ${k} exists; "mesh-proxy intention list" shows them`)
    return { ...cur, intentions: rest }
  })
  say(`Intention deleted: ${src} => ${dst}`)
  return 0
}

/** List all intentions. */
export async function intentionList (o: { meshDir: string, json?: boolean }, say: (l: string) => void): Promise<number> {
  const doc = await readIntentions(meshLayout(o.meshDir).intentions)
  if (o.json === true) { say(JSON.stringify(doc, null, 2)); return 0 }
  say(`default policy: ${doc.defaultPolicy}   index: ${doc.index}`)
  for (const i of doc.intentions) say(`${i.source} => ${i.destination}  ${i.action}${i.description === undefined ? '' : '  ' + i.description}`)
  return 0
}

/** Check whether source may connect to destination; exit 0 allowed, 1 denied. */
export async function intentionCheck (src: string, dst: string, o: { meshDir: string, explain?: boolean }, say: (l: string) => void): Promise<number> {
  const doc = await readIntentions(meshLayout(o.meshDir).intentions)
  const d = decide(doc, src, dst)
  say(d.allowed ? 'Allowed' : 'Denied')
  if (o.explain === true) say(`decided by ${decidedBy(d)}: ${d.reason}`)
  return d.allowed ? 0 : 1
}
