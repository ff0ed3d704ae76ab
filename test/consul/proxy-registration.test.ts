// Why: a Consul user's existing service definition must mean what it means to
// Consul's built-in proxy (connect/proxy/config.go): the same defaults, the
// same -sidecar-for errors, and an error naming the field and the fix for
// what we do not support. And upstream names (SNI, expected SPIFFE ID) must
// follow the upstream's namespace, datacenter and partition as Consul spells them.
import t from 'tap'
import { proxySettings, sidecarProxyId } from '../../src/consul/proxy-registration.js'
import { colonHex } from '../../src/consul/authorize.js'
import { parseIdentityForm, upstreamIdOf, upstreamSni } from '../../src/core/identity/forms.js'
import { resolveConfig, withUpstreams } from '../../src/core/config/resolve.js'
import { consulFixture } from '../helpers/consul-double.js'
import { freePort } from '../helpers/ports.js'

type Reg = Record<string, unknown> & { Proxy: Record<string, unknown> & { Upstreams: Array<Record<string, unknown>>, Config: Record<string, unknown> } }
const fixture = (): Reg => consulFixture<Reg>('agent-service-web-sidecar-proxy.json')

t.test('the documented registration, with Consul\'s defaults', async t => {
  // The ports are the documented registration's own (test/fixtures/consul): values parsed, never bound.
  const doc = fixture()
  const [dbBind, billingBind] = doc.Proxy.Upstreams.map(u => u.LocalBindPort as number)
  t.same(proxySettings(doc, 'web-sidecar-proxy'), {
    id: 'web-sidecar-proxy',
    service: 'web',
    namespace: undefined,
    listen: { host: '0.0.0.0', port: doc.Port },
    to: { host: '127.0.0.1', port: doc.Proxy.LocalServicePort },
    handshakeTimeoutMs: 10_000,
    localConnectTimeoutMs: 1000,
    upstreams: [
      { service: 'db', bind: { host: '127.0.0.1', port: dbBind }, instances: null, target: {}, connectTimeoutMs: 10_000 },
      { service: 'billing', bind: { host: '127.0.0.1', port: billingBind }, instances: null, target: {}, connectTimeoutMs: 5000 }
    ]
  })
  const r = fixture()
  const bindPort = await freePort()
  const s = proxySettings({ ...r, Address: '10.0.0.5', Proxy: { ...r.Proxy, Config: { bind_address: '127.0.0.1', bind_port: bindPort }, Upstreams: [{ DestinationName: 'db', DestinationNamespace: 'ns1', Datacenter: 'dc2', DestinationPartition: 'ap1', LocalBindAddress: '127.0.0.3', LocalBindPort: 0 }] } }, 'x')
  t.same(s.listen, { host: '127.0.0.1', port: bindPort }, 'Proxy.Config.bind_address/bind_port win over Address/Port')
  t.same(s.upstreams[0]!.target, { namespace: 'ns1', datacenter: 'dc2', partition: 'ap1' })
  t.same(proxySettings({ ...r, Address: '10.0.0.5' }, 'x').listen, { host: '10.0.0.5', port: r.Port }, 'Address/Port otherwise')
})

t.test('what does not fit is an error naming the field and the fix', async t => {
  const r = fixture()
  const up = (u: Record<string, unknown>): Reg => ({ ...r, Proxy: { ...r.Proxy, Upstreams: [u] } })
  const cases: Array<[unknown, RegExp]> = [
    [{ ...r, Kind: '' }, /^proxy registration x: Kind: is "", not "connect-proxy"/],
    [{ ...r, Proxy: { ...r.Proxy, DestinationServiceName: '' } }, /Proxy\.DestinationServiceName: is missing/],
    [{ ...r, Proxy: { ...r.Proxy, LocalServicePort: 0 } }, /Proxy\.LocalServicePort: is missing: the port of the local web app/],
    [{ ...r, Proxy: { ...r.Proxy, Mode: 'transparent' } }, /Proxy\.Mode: transparent proxying is not supported/],
    [{ ...r, Proxy: { ...r.Proxy, Config: { handshake_timeout_ms: '10s' } } }, /handshake_timeout_ms: must be a whole number of milliseconds above 0, got "10s"/],
    [{ ...r, Port: 70000 }, /: Port: must be a port \(0-65535\), got 70000/],
    [up({ DestinationType: 'prepared_query', DestinationName: 'db', LocalBindPort: 1 }), /Upstreams\[0\]\.DestinationType: "prepared_query" is not supported/],
    [up({ DestinationName: 'db', LocalBindSocketPath: 'unix:/x'.repeat(30) }), /LocalBindSocketPath: socket path .* is \d+ bytes; a UNIX socket path is at most 107 bytes/],
    [up({ DestinationName: 'db', LocalBindSocketPath: '/tmp/db.sock', LocalBindSocketMode: 'rw' }), /LocalBindSocketMode: /],
    [up({ DestinationName: 'db', DestinationPeer: 'other', LocalBindPort: 1 }), /DestinationPeer: cluster peering is not supported/],
    [up({ DestinationName: 'db' }), /LocalBindPort: is missing: the local port the app connects to for db/],
    [up({ LocalBindPort: 1 }), /DestinationName: is missing/],
    [up({ DestinationName: 'db', LocalBindPort: 1, Config: { connect_timeout_ms: -1 } }), /Config\.connect_timeout_ms: must be a whole number/]
  ]
  for (const [body, message] of cases) t.throws(() => proxySettings(body, 'x'), { code: 'MP_ERR_CONFIG', message })
})

t.test('-sidecar-for: the one proxy whose DestinationServiceID is the ID, case-insensitively, as Consul', async t => {
  const services = consulFixture<Record<string, unknown>>('agent-services.json')
  t.equal(sidecarProxyId(services, 'web'), 'web-sidecar-proxy')
  t.equal(sidecarProxyId(services, 'WEB'), 'web-sidecar-proxy')
  t.throws(() => sidecarProxyId(services, 'db'), { message: /^-sidecar-for: No sidecar proxy registered for db / })
})

t.test('upstream SNI and identity in another namespace, datacenter, partition', async t => {
  const consul = parseIdentityForm('consul')
  const w = { trustDomain: 'td.consul', service: 'db', namespace: 'default', datacenter: 'dc1' }
  t.equal(upstreamSni(w), 'db.default.dc1.internal.td.consul')
  t.equal(upstreamIdOf(consul, w).uri, 'spiffe://td.consul/ns/default/dc/dc1/svc/db')
  t.equal(upstreamSni({ ...w, namespace: 'ns1', datacenter: 'dc2' }), 'db.ns1.dc2.internal.td.consul')
  t.equal(upstreamIdOf(consul, { ...w, namespace: 'ns1', datacenter: 'dc2', partition: 'default' }).uri, 'spiffe://td.consul/ns/ns1/dc/dc2/svc/db', 'the default partition is not named')
  t.equal(upstreamSni({ ...w, partition: 'ap1' }), 'db.default.ap1.dc1.internal-v1.td.consul', 'a partition: Consul\'s internal-v1 form')
  t.equal(upstreamIdOf(consul, { ...w, partition: 'ap1' }).uri, 'spiffe://td.consul/ap/ap1/ns/default/dc/dc1/svc/db')
  t.throws(() => upstreamIdOf(parseIdentityForm('kubernetes'), { ...w, partition: 'ap1' }), { message: /admin partition ap1, which only the consul identity form names/ })
})

t.test('the client certificate serial as Consul encodes it', async t => {
  t.equal(colonHex('0400000000001154B5AC394'), '00:40:00:00:00:00:01:15:4b:5a:c3:94')
  t.equal(colonHex('0A:0b'), '0a:0b')
})

t.test('upstreams from a registration are checked like --upstream', async t => {
  // Values checked, never bound: kernel-chosen all the same.
  const [listen, app, bind, other] = [await freePort(), await freePort(), await freePort(), await freePort()]
  const config = resolveConfig({ flags: { service: 'web', listen: `127.0.0.1:${listen}`, to: `127.0.0.1:${app}`, controlPlane: 'consul', admin: 'off' }, env: {}, file: null })
  const db = { service: 'db', bind: { host: '127.0.0.1', port: bind }, instances: null }
  t.equal(withUpstreams(config, [db]).upstreams.length, 1)
  t.throws(() => withUpstreams(config, [db, { ...db, bind: { host: '127.0.0.1', port: other } }]), { errors: [{ message: /--upstream: db is given twice/ }] })
  t.throws(() => withUpstreams(config, [{ ...db, bind: { host: '127.0.0.1', port: listen } }]), { errors: [{ message: new RegExp(`127\\.0\\.0\\.1:${listen} is also used by --listen`) }] })
  t.throws(() => resolveConfig({ flags: { service: 'web', listen: '127.0.0.1:0', to: '127.0.0.1:1', authorizeViaAgent: true, meshDir: '/x' }, env: {}, file: null }), { errors: [{ message: /--authorize-via-agent needs the Consul agent: add --control-plane consul/ }] })
  t.throws(() => resolveConfig({ flags: { service: 'web', upstream: ['db:1'], consulRegister: true, controlPlane: 'consul' }, env: {}, file: null }), { errors: [{ message: /--consul-register: registers the public listener, and there is none/ }] })
  t.throws(() => resolveConfig({ flags: { service: 'web', listen: '127.0.0.1:0', to: '127.0.0.1:1', authorizeViaAgent: true, enforceOnChange: true, controlPlane: 'consul' }, env: {}, file: null }), { errors: [{ message: /--enforce-on-change: re-checks live connections against the local intention table/ }] })
})
