// Why: metric names and the exposition format are API that dashboards and
// alerts depend on; this pins both.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { MetricsRegistry, METRICS } from '../../src/metrics/metrics.js'
import { ROOT } from '../helpers/paths.js'

t.test('Prometheus text format 0.0.4', async t => {
  const m = new MetricsRegistry()
  m.connection('inbound', 'allowed')
  m.connection('inbound', 'allowed')
  m.connection('inbound', 'denied_intention')
  const undo = m.trackActive('outbound')
  undo()
  undo()
  m.duration('inbound', 0.02)
  m.duration('inbound', 2)
  m.certExpiry('spiffe://td/ns/default/dc/dc1/svc/web', 1_800_000_000)
  m.intentionsVersion(7)
  m.handshakeFailure('weird "reason"\n')
  const text = m.render()
  t.match(text, '# TYPE mesh_proxy_connections_total counter\nmesh_proxy_connections_total{direction="inbound",result="allowed"} 2\nmesh_proxy_connections_total{direction="inbound",result="denied_intention"} 1\n')
  t.match(text, 'mesh_proxy_connections_active{direction="outbound"} 0', 'undo is idempotent')
  t.match(text, 'mesh_proxy_connection_duration_seconds_bucket{direction="inbound",le="0.05"} 1\n')
  t.match(text, 'mesh_proxy_connection_duration_seconds_bucket{direction="inbound",le="+Inf"} 2\nmesh_proxy_connection_duration_seconds_sum{direction="inbound"} 2.02\nmesh_proxy_connection_duration_seconds_count{direction="inbound"} 2\n')
  t.match(text, 'mesh_proxy_cert_expiry_timestamp_seconds{spiffe_id="spiffe://td/ns/default/dc/dc1/svc/web"} 1800000000')
  t.match(text, 'mesh_proxy_intentions_version 7')
  t.match(text, 'mesh_proxy_handshake_failures_total{reason="weird \\"reason\\"\\n"} 1', 'label values escaped')
  for (const f of Object.values(METRICS)) t.match(f.name, /^mesh_proxy_[a-z_]+$/)
})

t.test('mesh_proxy_build_info: 1, labelled with the version, Node and OpenSSL', async t => {
  const text = new MetricsRegistry({ version: '9.9.9', node: 'v24.0.0', openssl: '3.5.0' }).render()
  t.match(text, '# TYPE mesh_proxy_build_info gauge\nmesh_proxy_build_info{version="9.9.9",node="v24.0.0",openssl="3.5.0"} 1\n')
  const own = new MetricsRegistry().render()
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
  t.match(own, `mesh_proxy_build_info{version="${pkg.version}",node="${process.version}",openssl="${process.versions.openssl}"} 1`, 'this process: package.json and process.versions')
})
