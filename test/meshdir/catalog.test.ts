// Why: every new outbound connection asks the catalog for the upstream's
// instances. Within cacheMs they come from memory; when the cache has expired,
// the connections that arrive during the directory read must share it (under
// load each of them used to read the directory itself).
import t from 'tap'
import { MeshCatalog, type CatalogEntry } from '../../src/meshdir/catalog.js'

/** A catalog that counts its directory reads. */
class CountingCatalog extends MeshCatalog {
  reads = 0
  override async entries (service: string): Promise<CatalogEntry[]> {
    this.reads++
    return await super.entries(service)
  }
}

t.test('connections asking at once share one directory read', async t => {
  const dir = t.testdir({})
  const catalog = new CountingCatalog(dir, { cacheMs: 60_000 })
  const reg = await catalog.register('db', '127.0.0.1', 7001)
  t.teardown(() => reg.close())
  const answers = await Promise.all(Array.from({ length: 20 }, () => catalog.instances('db')))
  t.equal(catalog.reads, 1, 'one read for twenty concurrent asks')
  for (const a of answers) t.same(a, [{ host: '127.0.0.1', port: 7001 }])
  t.same(await catalog.instances('db'), [{ host: '127.0.0.1', port: 7001 }])
  t.equal(catalog.reads, 1, 'and within cacheMs the answer comes from memory')
  await catalog.instances('web')
  t.equal(catalog.reads, 2, 'another service is read on its own')
})

t.test('cacheMs 0: every ask reads, so a new instance is seen at once', async t => {
  const dir = t.testdir({})
  const catalog = new CountingCatalog(dir, { cacheMs: 0 })
  const one = await catalog.register('db', '127.0.0.1', 7001)
  t.same(await catalog.instances('db'), [{ host: '127.0.0.1', port: 7001 }])
  const two = await catalog.register('db', '127.0.0.1', 7002)
  t.same(await catalog.instances('db'), [{ host: '127.0.0.1', port: 7001 }, { host: '127.0.0.1', port: 7002 }])
  await one.close()
  t.same(await catalog.instances('db'), [{ host: '127.0.0.1', port: 7002 }], 'a closed registration is gone')
  await two.close()
  t.same(await catalog.instances('db'), [])
  t.equal(catalog.reads, 4)
})
