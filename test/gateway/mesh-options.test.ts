// Why: where a mesh gateway sends other datacenters' traffic comes from two
// places, the flags and the mesh dir's gateways.json; a typo in either must
// stop the gateway with the file or flag named, not route nowhere.
import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { makeMesh } from '../helpers/mesh.js'
import { resolveMeshGateway } from '../../src/gateway/options.js'
import { gatewaysFile } from '../../src/meshdir/gateways.js'

t.test('gateways.json and --remote-gateway: the flag wins for the datacenters it names', async t => {
  const mesh = await makeMesh(t, [])
  await writeFile(gatewaysFile(mesh.dir), JSON.stringify({ dc2: ['10.2.0.5:8443', '10.2.0.6:8443'], dc3: ['10.3.0.5:8443'], dc1: ['10.1.0.9:8443'] }))
  const c = await resolveMeshGateway({ meshDir: mesh.dir, remoteGateway: ['dc3=127.0.0.1:9443'] }, {})
  t.same(Object.fromEntries(c.remoteGateways), {
    dc3: [{ host: '127.0.0.1', port: 9443 }],
    dc2: [{ host: '10.2.0.5', port: 8443 }, { host: '10.2.0.6', port: 8443 }]
  }, 'dc3 from the flag, dc2 from the file, our own dc1 ignored')
  t.match(c, { datacenter: 'dc1', listen: { host: '0.0.0.0', port: 8443 }, catalogDir: mesh.layout.catalog })
})

t.test('a broken gateways.json names the file and the form', async t => {
  const mesh = await makeMesh(t, [])
  const cases: ReadonlyArray<[string, RegExp]> = [
    ['{', /gateways\.json is not valid JSON .*the form is \{ "<datacenter>": \["<host:port>", \.\.\.\] \}/],
    ['[]', /gateways\.json must be an object/],
    ['{"dc2": "10.2.0.5:8443"}', /"dc2" must be a non-empty list of "host:port" strings/],
    ['{"dc2": ["nowhere"]}', /gateways\.json dc2: "nowhere" is not host:port/]
  ]
  for (const [text, why] of cases) {
    await writeFile(gatewaysFile(mesh.dir), text)
    await t.rejects(resolveMeshGateway({ meshDir: mesh.dir }, {}), { errors: [{ message: why }] }, text)
  }
})
