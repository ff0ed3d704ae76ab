/**
 * `demo --keep`: what runs where, how to try it with nothing but node, the
 * `mesh-proxy run` lines that would run the same mesh, and the wait for
 * SIGINT/SIGTERM (demo.ts then stops the mesh and removes a temporary dir).
 */
import { existsSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { ConfigError } from '../core/errors.js'
import type { HostPort } from '../core/config/types.js'
import type { SidecarAddresses } from '../sidecar/sidecar.js'

/** db's admin port with --keep when --admin-port is not given; web's and billing's are the next two. */
export const DEMO_ADMIN_PORT = 19000

/** The running demo mesh, as --keep describes it. */
export interface DemoMesh {
  readonly dir: string
  readonly appPort: number
  readonly db: SidecarAddresses
  readonly webPort: number
  readonly billingPort: number
  /** Admin address by service (with --keep). */
  readonly admins: ReadonlyMap<string, HostPort>
}

/** `--admin-port`: a port for db (web and billing take the next two), or 0 for any free ports. */
export function adminAt (value: string | undefined): number {
  if (value === undefined) return DEMO_ADMIN_PORT
  const n = Number(value)
  if (!/^\d+$/.test(value) || n > 65533) throw new ConfigError('--admin-port', `must be a port from 1 to 65533 (db's; web and billing take the next two) or 0 for any free ports, got ${JSON.stringify(value)}`)
  return n
}

/** The first SIGINT or SIGTERM, from now on. */
export function untilSignal (): { received: Promise<string>, dispose: () => void } {
  let dispose = (): void => {}
  const received = new Promise<string>(resolve => {
    const on = (sig: NodeJS.Signals) => (): void => { dispose(); resolve(sig) }
    const int = on('SIGINT')
    const term = on('SIGTERM')
    process.once('SIGINT', int)
    process.once('SIGTERM', term)
    dispose = () => { process.off('SIGINT', int); process.off('SIGTERM', term) }
  })
  return { received, dispose: () => { dispose() } }
}

/** Print what runs where, how to try it, and the equivalent `mesh-proxy run` lines. */
export function printKeep (m: DemoMesh, o: { temp: boolean }, say: (l: string) => void): void {
  const admin = (s: string): string => { const a = m.admins.get(s); return a === undefined ? 'off' : `${a.host}:${a.port}` }
  const db = m.db.inbound!
  say('Mesh running (--keep):')
  say(`  db app       plain TCP 127.0.0.1:${m.appPort} (in this process)`)
  say(`  db sidecar   mTLS listener ${db.host}:${db.port} -> 127.0.0.1:${m.appPort}   admin http://${admin('db')}`)
  say(`  web sidecar  upstream db on 127.0.0.1:${m.webPort}   admin http://${admin('web')}`)
  say(`  billing      upstream db on 127.0.0.1:${m.billingPort}   admin http://${admin('billing')}`)
  say('')
  say('Try it (node only):')
  say(`  ${tryLine(m.webPort, 'hi from web')}       # db answers`)
  say(`  ${tryLine(m.billingPort, 'hi from billing')}   # refused: prints refused: ECONNRESET`)
  say(`  node -e "fetch('http://${admin('web')}/certs').then(r => r.text()).then(console.log)"`)
  if (onPath('curl')) say(`  curl -s http://${admin('db')}/intentions`)
  say('')
  say('The same mesh by hand (stop this demo first; the db app is yours):')
  say(`  mesh-proxy run --service db --listen ${db.host}:${db.port} --to 127.0.0.1:${m.appPort} --mesh-dir ${m.dir} --admin ${admin('db')}`)
  say(`  mesh-proxy run --service web --upstream db:${m.webPort} --mesh-dir ${m.dir} --admin ${admin('web')}`)
  say(`  mesh-proxy run --service billing --upstream db:${m.billingPort} --mesh-dir ${m.dir} --admin ${admin('billing')}`)
  if (o.temp) say(`  (${m.dir} is removed when the demo stops; give --mesh-dir <dir> to keep one)`)
  say('')
  say('Ctrl-C (SIGINT) or SIGTERM stops the mesh.')
}

/** A one-line TCP client: send `text`, print the answer, or how the connection ended without one (a refusal is a reset). */
function tryLine (port: number, text: string): string {
  return `node -e "const s = require('net').connect(${port}, '127.0.0.1', () => s.end('${text}\\n')); let r = ''; s.on('data', d => r += d).on('error', e => r ||= 'refused: ' + e.code).on('close', () => console.log(r || 'connection closed, no answer'))"`
}

function onPath (cmd: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some(d => d !== '' && existsSync(join(d, cmd)))
}
