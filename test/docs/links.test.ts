// Why: the README's reference moved into docs/ by topic, and the pages link to
// one another, to the README and to files of the repository. A link to a file
// that moved, or to a README section that is no longer there, fails here.
import t from 'tap'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { ROOT } from '../helpers/paths.js'

const pages = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter(f => f.endsWith('.md')).map(f => join('docs', f))]

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes. */
function slug (heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-')
}

function anchors (file: string): Set<string> {
  const text = readFileSync(join(ROOT, file), 'utf8').replace(/```[\s\S]*?```/g, '')
  return new Set([...text.matchAll(/^#{1,6} (.+)$/gm)].map(m => slug(m[1] ?? '')))
}

t.test('every relative link of README.md and docs/*.md reaches a file, and its #anchor a heading', async t => {
  for (const page of pages) {
    const text = readFileSync(join(ROOT, page), 'utf8').replace(/```[\s\S]*?```/g, '')
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1] ?? ''
      if (/^[a-z]+:/.test(target)) continue
      const [path = '', anchor] = target.split('#')
      const file = path === '' ? page : join(dirname(page), path)
      t.ok(existsSync(join(ROOT, file)), `${page}: ${target} exists`)
      if (anchor !== undefined && file.endsWith('.md') && existsSync(join(ROOT, file))) t.ok(anchors(file).has(anchor), `${page}: ${target} names a heading of ${file}`)
    }
  }
})
