import tls from 'node:tls'; import fs from 'node:fs'
const M='/tmp/exp/mesh'
const cli = { cert: fs.readFileSync(M+'/certs/web.pem'), key: fs.readFileSync(M+'/certs/web.key'), ca: fs.readFileSync(M+'/bundle.pem'), servername: 'db', checkServerIdentity: () => undefined, host: '127.0.0.1', port: 6310 }
const conn = (session) => new Promise(r => { const c = tls.connect({ ...cli, session }); let s, re; c.on('session', x => { s = x }); c.on('secureConnect', () => { re = c.isSessionReused(); c.write('hi') }); c.on('data', () => c.end()); c.on('close', () => r({ reused: re, session: s })); c.on('error', e => {}) })
let s = (await conn()).session; const out = []
for (let i = 0; i < 10; i++) { const r = await conn(s); out.push(r.reused); if (r.session) s = r.session }
console.log(out.join(' '))
