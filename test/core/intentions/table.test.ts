// Why: intentions must decide exactly as Consul does; every precedence cell,
// the default policy and every validation rule are a row here.
import t from 'tap'
import { compileAuthorizer, decide, matchIntentions, parseServiceRef, precedenceOf, validateIntentionsDoc, type Intention } from '../../../src/core/intentions/table.js'
import { IntentionError } from '../../../src/core/errors.js'

t.test('precedence table (Consul UpdatePrecedence)', async t => {
  const rows: Array<[string, string, number]> = [
    ['ns/web', 'ns/db', 9], ['ns/*', 'ns/db', 8], ['*/*', 'ns/db', 7],
    ['ns/web', 'ns/*', 6], ['ns/*', 'ns/*', 5], ['*/*', 'ns/*', 4],
    ['ns/web', '*/*', 3], ['ns/*', '*/*', 2], ['*/*', '*/*', 1],
    // default namespace spellings
    ['web', 'db', 9], ['*', 'db', 8], ['web', '*', 6], ['*', '*', 5]
  ]
  for (const [s, d, p] of rows) t.equal(precedenceOf(parseServiceRef(s, 's'), parseServiceRef(d, 'd')), p, `${s} -> ${d}`)
})

t.test('highest precedence match decides; default policy otherwise', async t => {
  const doc = (intentions: Array<Partial<Intention>>, defaultPolicy: 'allow' | 'deny' = 'deny') => validateIntentionsDoc({ index: 1, defaultPolicy, intentions }, 'test')
  const rows: Array<[Array<Partial<Intention>>, 'allow' | 'deny', string, string, boolean, string]> = [
    [[], 'deny', 'web', 'db', false, 'default policy'],
    [[], 'allow', 'web', 'db', true, 'default policy'],
    [[{ source: 'web', destination: 'db', action: 'allow' }], 'deny', 'web', 'db', true, 'web => db'],
    [[{ source: 'web', destination: 'db', action: 'allow' }], 'deny', 'billing', 'db', false, 'default policy'],
    [[{ source: '*', destination: 'db', action: 'deny' }, { source: 'web', destination: 'db', action: 'allow' }], 'allow', 'web', 'db', true, 'web => db'],
    [[{ source: '*', destination: 'db', action: 'deny' }, { source: 'web', destination: 'db', action: 'allow' }], 'allow', 'billing', 'db', false, '* => db'],
    [[{ source: 'web', destination: '*', action: 'deny' }, { source: '*', destination: 'db', action: 'allow' }], 'deny', 'web', 'db', true, '* => db'],
    [[{ source: 'web', destination: '*', action: 'deny' }], 'allow', 'web', 'cache', false, 'web => *'],
    [[{ source: '*', destination: '*', action: 'allow' }, { source: 'web', destination: '*', action: 'deny' }], 'deny', 'web', 'db', false, 'web => *'],
    [[{ source: 'prod/*', destination: 'db', action: 'allow' }], 'deny', 'prod/web', 'db', true, 'prod/* => db'],
    [[{ source: 'prod/*', destination: 'db', action: 'allow' }], 'deny', 'web', 'db', false, 'default policy'],
    [[{ source: '*/*', destination: 'db', action: 'allow' }, { source: 'prod/*', destination: 'db', action: 'deny' }], 'deny', 'prod/web', 'db', false, 'prod/* => db']
  ]
  for (const [ixns, dp, src, dst, allowed, by] of rows) {
    const d = decide(doc(ixns, dp), src, dst)
    t.equal(d.allowed, allowed, `${src} -> ${dst} with ${JSON.stringify(ixns)}`)
    t.equal(d.intention === 'default' ? 'default policy' : `${d.intention.source} => ${d.intention.destination}`, by)
  }
})

t.test('authorizer is compiled for one destination', async t => {
  const doc = validateIntentionsDoc({ intentions: [{ source: 'web', destination: 'db', action: 'allow' }, { source: 'web', destination: 'cache', action: 'deny' }] }, 'x')
  const authorize = compileAuthorizer(doc, { namespace: 'default', name: 'db' })
  t.equal(authorize({ namespace: 'default', name: 'web' }).allowed, true)
  t.equal(authorize({ namespace: 'other', name: 'web' }).allowed, false, 'namespace matters')
  t.match(authorize({ namespace: 'default', name: 'web' }).reason, /web => db \(allow, precedence 9\)/)
})

t.test('validation errors name the field and the value', async t => {
  const rows: Array<[unknown, RegExp]> = [
    [{ intentions: [{ source: 'we*', destination: 'db', action: 'allow' }] }, /intentions\[0\]\.source: wildcard character '\*' cannot be used with partial values/],
    [{ intentions: [{ source: '*/web', destination: 'db', action: 'allow' }] }, /intentions\[0\]\.source: exact value cannot follow wildcard namespace/],
    [{ intentions: [{ source: 'web', destination: '', action: 'allow' }] }, /intentions\[0\]\.destination: must be a service name/],
    [{ intentions: [{ source: 'web', destination: 'db', action: 'permit' }] }, /intentions\[0\]\.action: must be "allow" or "deny", got "permit"/],
    [{ intentions: [{ source: 'web', destination: 'd b', action: 'allow' }] }, /name "d b" is not a valid service name/],
    [{ intentions: [{ source: 'web', destination: 'db', action: 'allow' }, { source: 'default/web', destination: 'db', action: 'deny' }] }, /intentions\[1\]: duplicate web -> db \(also intentions\[0\]\)/],
    [{ intentions: [{ source: 'web', destination: 'db', action: 'allow', color: 'red' }] }, /unknown field "color"/],
    [{ defaultPolicy: 'maybe' }, /defaultPolicy must be "allow" or "deny"/],
    [{ index: -1 }, /index must be a non-negative integer/],
    [[], /expected a JSON object/]
  ]
  for (const [doc, re] of rows) t.throws(() => validateIntentionsDoc(doc, 'f.json'), new IntentionError('x') && { message: re }, re.source)
})

t.test('audit mode: a deny that only reports', async t => {
  const doc = validateIntentionsDoc({ intentions: [{ source: 'web', destination: 'db', action: 'deny', audit: true }, { source: '*', destination: 'db', action: 'allow' }] }, 'x')
  const d = decide(doc, 'web', 'db')
  t.equal(d.allowed, true, 'allowed')
  t.equal(d.audit, true, 'flagged as audit')
  t.match(d.reason, /^would deny: intention web => db \(deny, audit, precedence 9\)/)
  t.equal(decide(doc, 'billing', 'db').audit, undefined, 'other sources unaffected')
  t.throws(() => validateIntentionsDoc({ intentions: [{ source: 'web', destination: 'db', action: 'allow', audit: true }] }, 'f'), { message: /intentions\[0\]\.audit: only a deny can be in audit mode/ })
  t.throws(() => validateIntentionsDoc({ intentions: [{ source: 'web', destination: 'db', action: 'deny', audit: 'yes' }] }, 'f'), { message: /audit: must be true or false/ })
})

t.test('match by destination and by source, in precedence order', async t => {
  const doc = validateIntentionsDoc({
    intentions: [
      { source: '*', destination: '*', action: 'deny' },
      { source: 'web', destination: '*', action: 'allow' },
      { source: '*', destination: 'db', action: 'deny' },
      { source: 'web', destination: 'db', action: 'allow' },
      { source: 'web', destination: 'cache', action: 'allow' }
    ]
  }, 'x')
  const show = (r: ReturnType<typeof matchIntentions>): string[] => r.map(x => `${x.intention.source}>${x.intention.destination}:${x.precedence}`)
  t.same(show(matchIntentions(doc, 'destination', 'db')), ['web>db:9', '*>db:8', 'web>*:6', '*>*:5'])
  t.same(show(matchIntentions(doc, 'source', 'web')), ['web>cache:9', 'web>db:9', '*>db:8', 'web>*:6', '*>*:5'])
})

t.test('federated sources: matched only by intentions naming their trust domain; the default policy never admits them', async t => {
  const doc = validateIntentionsDoc({
    index: 1,
    defaultPolicy: 'allow',
    intentions: [
      { source: 'web', destination: 'db', action: 'deny' },
      { source: 'web', sourceTrustDomain: 'other.org', destination: 'db', action: 'allow' },
      { source: '*', sourceTrustDomain: 'third.org', destination: 'db', action: 'deny' }
    ]
  }, 'test')
  const authorize = compileAuthorizer(doc, { namespace: 'default', name: 'db' })
  const rows: Array<[string, { namespace: string, name: string, trustDomain?: string }, boolean, RegExp]> = [
    ['our web: the local intention', { namespace: 'default', name: 'web' }, false, /intention web => db \(deny/],
    ['our billing: the default policy (allow)', { namespace: 'default', name: 'billing' }, true, /default policy is allow/],
    ['web of other.org: its own intention', { namespace: 'default', name: 'web', trustDomain: 'other.org' }, true, /intention web \(other\.org\) => db \(allow.*matched web \(other\.org\) => db/],
    ['billing of other.org: nothing names it, denied although the default is allow', { namespace: 'default', name: 'billing', trustDomain: 'other.org' }, false, /no intention names a source of trust domain other\.org/],
    ['anyone of third.org: the wildcard of third.org', { namespace: 'default', name: 'web', trustDomain: 'third.org' }, false, /intention \* \(third\.org\) => db \(deny/],
    ['a trust domain no intention mentions', { namespace: 'default', name: 'web', trustDomain: 'fourth.org' }, false, /trust domain fourth\.org/]
  ]
  for (const [name, source, allowed, reason] of rows) {
    const d = authorize(source)
    t.equal(d.allowed, allowed, name)
    t.match(d.reason, reason, name)
  }
  t.throws(() => validateIntentionsDoc({ intentions: [{ source: 'web', sourceTrustDomain: 'Bad Domain', destination: 'db', action: 'allow' }] }, 'f'), /sourceTrustDomain: "Bad Domain" is not a trust domain name/)
  t.doesNotThrow(() => validateIntentionsDoc({ intentions: [{ source: 'web', destination: 'db', action: 'allow' }, { source: 'web', sourceTrustDomain: 'other.org', destination: 'db', action: 'deny' }] }, 'f'), 'the same pair from two trust domains is two intentions')
  t.throws(() => validateIntentionsDoc({ intentions: [{ source: 'web', sourceTrustDomain: 'other.org', destination: 'db', action: 'allow' }, { source: 'web', sourceTrustDomain: 'other.org', destination: 'db', action: 'deny' }] }, 'f'), /duplicate web \(other\.org\) -> db/)
})
