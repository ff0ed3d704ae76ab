// Where the shared conformance vectors live: ../shared/conformance beside the repo.
import { existsSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

function repoRoot (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir)
  return dir
}

export const ROOT = repoRoot()
export const CONFORMANCE = resolve(ROOT, '..', 'shared', 'conformance')
