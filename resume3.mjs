import tls from 'node:tls'; import fs from 'node:fs'
const M='/tmp/exp/mesh'
const cli = { cert: fs.readFileSync(M+'/certs/web.pem'), key: fs.readFileSync(M+'/certs/web.key'), ca: fs.readFileSync(M+'/bundle.pem'), servername: 'db', checkServerIdentity: () => undefined, host: '127.0.0.1' }
const conn = (port, session) => new Promise(r => { const c = tls.connect({ ...cli, port, session }); let s, re; c.on('session', x => { s = x }); c.on('secureConnect', () => { re = c.isSessionReused(); c.write('hi') }); c.on('data', () => c.end()); c.on('close', () => r({ reused: re, session: s })); c.on('error', e => {}) })
const a = await conn(6310)
console.log('A->A', (await conn(6310, a.session)).reused, 'A ticket -> B', (await conn(6311, a.session)).reused)
