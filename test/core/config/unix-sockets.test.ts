// Why: a socket path is checked when the config is read, not when a listener
// binds: a path too long for sun_path, a mode that locks the owner out, two
// listeners on one file, or an upstream on the app's own socket are each an
// error naming the flag and the fix, all at once.
import t from 'tap'
import { resolveConfig } from '../../../src/core/config/resolve.js'
import { formatEndpoint, isUnix, parseSocketMode, parseUnixSocket } from '../../../src/core/config/endpoint.js'
import { publicConfig } from '../../../src/core/config/public.js'

function errorsOf (flags: Record<string, unknown>, file: Record<string, unknown> | null = null): string[] {
  try { resolveConfig({ flags, env: {}, file, fileName: 'sidecar.json' }); return [] } catch (err) { return (err as AggregateError).errors.map((e: Error) => e.message) }
}
const base = { service: 'web', meshDir: '/m' }

t.test('what --to and --upstream accept', async t => {
  const c = resolveConfig({ flags: { ...base, to: 'unix:/run/app.sock', upstream: ['db:unix:/run/db.sock', 'cache:unix:///run/cache.sock=10.0.0.5:21000', 'pay:9191'] }, env: {}, file: null })
  t.same(c.to, { path: '/run/app.sock' }, '--to unix:/path')
  t.same(c.upstreams.map(u => [u.service, u.bind, u.instances]), [
    ['db', { path: '/run/db.sock' }, null],
    ['cache', { path: '/run/cache.sock' }, [{ host: '10.0.0.5', port: 21000 }]],
    ['pay', { host: '127.0.0.1', port: 9191 }, null]
  ], 'a socket upstream, with instances; TCP unchanged')
  t.equal(c.unixSocketMode, 0o660, 'mode 0660 by default')
  t.equal(publicConfig(c).unixSocketMode, '0660', 'shown in octal (GET /config, --dry-run), as it is given')
  t.same(resolveConfig({ flags: { ...base, to: 'unix:app.sock' }, env: {}, file: null }).to, { path: 'app.sock' }, 'a relative path, relative to the working directory')
  t.same(errorsOf({ ...base, to: 'unix:/run/app.sock' }), [], 'a UNIX socket needs no --unsafe-target: it is local')
  t.equal(resolveConfig({ flags: base, env: {}, file: { to: 'unix:/run/app.sock', upstream: ['db:unix:/run/db.sock'], unixSocketMode: '0600' } }).unixSocketMode, 0o600, 'from the file, as a string')
})

t.test('the one text form, and the guard', async t => {
  t.equal(formatEndpoint({ path: '/run/a.sock' }), 'unix:/run/a.sock')
  t.equal(formatEndpoint({ host: '127.0.0.1', port: 1 }), '127.0.0.1:1')
  t.ok(isUnix(parseUnixSocket('unix:/x', 'f')))
})

t.test('bad input: one error each, naming the flag and the fix', async t => {
  const long = '/tmp/' + 'x'.repeat(103)
  const rows: Array<[string, Record<string, unknown>, Record<string, unknown> | null, RegExp]> = [
    ['no path', { ...base, to: 'unix:' }, null, /^--to: "unix:" names no socket file \(e\.g\. unix:\/run\/app\.sock\)$/],
    ['no path, with --listen (not also "--to is required")', { ...base, listen: '127.0.0.1:0', to: 'unix:' }, null, /^--to: "unix:" names no socket file/],
    ['unix:// with a relative path', { ...base, to: 'unix://run/app.sock' }, null, /^--to: "unix:\/\/run\/app\.sock": after unix:\/\/ the path must be absolute/],
    ['a path longer than sun_path', { ...base, upstream: [`db:unix:${long}`] }, null, /^--upstream: socket path \/tmp\/x+ is 108 bytes; a UNIX socket path is at most 107 bytes on Linux: choose a shorter path$/],
    ['a mode as a JSON number (660 is not 0660)', base, { upstream: ['db:unix:/run/db.sock'], unixSocketMode: 660 }, /^sidecar\.json: unixSocketMode: 660 is not a mode: give octal permission bits as a string, e\.g\. "0660"/],
    ['not octal', { ...base, upstream: ['db:unix:/run/db.sock'], unixSocketMode: '0690' }, null, /^--unix-socket-mode: "0690" is not a mode/],
    ['the owner locked out', { ...base, upstream: ['db:unix:/run/db.sock'], unixSocketMode: '0460' }, null, /^--unix-socket-mode: 0460 leaves the owner without read and write/],
    ['a mode with no socket to give it to', { ...base, upstream: ['db:9191'], unixSocketMode: '0600' }, null, /^--unix-socket-mode: is the mode of the UNIX sockets upstream listeners create, and no --upstream binds one/],
    ['two upstreams on one path', { ...base, upstream: ['db:unix:/run/x.sock', 'cache:unix:/run/x.sock'] }, null, /^--upstream cache: unix:\/run\/x\.sock is also used by --upstream db; every listener needs its own socket path$/],
    ['an upstream on the app\'s socket', { ...base, to: 'unix:/run/app.sock', upstream: ['db:unix:/run/app.sock'] }, null, /^--upstream db: unix:\/run\/app\.sock is also used by --to; every listener needs its own socket path$/],
    ['--workers with a socket upstream', { ...base, upstream: ['db:unix:/run/db.sock'], workers: '2' }, null, /^--workers: UNIX-socket upstreams \(db\) are not supported with --workers 2 yet; use --workers 1, or bind those upstreams to a loopback port$/]
  ]
  for (const [name, flags, file, want] of rows) {
    const errors = errorsOf(flags, file)
    t.equal(errors.length, 1, `${name}: one error`)
    t.match(errors[0], want, name)
  }
  t.equal(parseSocketMode('0777', 'X'), 0o777, 'any mode that keeps the owner\'s read and write')
})
