#!/usr/bin/env node
// Thin launcher: the program lives in src/cli/main.ts (compiled to dist/ by `npm install`).
import { setFlagsFromString } from 'node:v8'
import { existsSync } from 'node:fs'

// `run` under jemalloc when the system has it (Debian/Ubuntu: libjemalloc2): glibc's
// malloc kept the memory of released connections and grew with every round of them;
// jemalloc with a 1 s decay hands it back (bench/RESULTS.md, "Memory is given back").
// The process replaces itself (same pid) with LD_PRELOAD set, before anything else
// runs; Node 20 has no process.execve, there preload it yourself (docs/memory.md).
// MESH_PROXY_ALLOCATOR=system keeps glibc's.
const JEMALLOC = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/local/lib', '/usr/lib'].map(d => `${d}/libjemalloc.so.2`)
if (process.argv[2] === 'run' && process.platform === 'linux' && typeof process.execve === 'function' &&
    process.env.MESH_PROXY_ALLOCATOR !== 'system' && !(process.env.LD_PRELOAD ?? '').includes('jemalloc')) {
  const lib = JEMALLOC.find(p => existsSync(p))
  if (lib !== undefined) {
    process.execve(process.execPath, [process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
      ...process.env,
      LD_PRELOAD: [lib, process.env.LD_PRELOAD].filter(Boolean).join(':'),
      MALLOC_CONF: process.env.MALLOC_CONF ?? 'background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:1000'
    })
  }
}

// V8 tuning for a relay, set before anything else is loaded (bench/RESULTS.md,
// "GC tuning"). A relay allocates little on the JS heap but a lot off it (one
// Buffer per socket read, one per 16 KiB TLS record). With V8's defaults those
// Buffers are freed by a full incremental Mark-Compact forced by V8's
// external-memory limit every ~30 MB relayed (60-80 per GiB: +30-50 % CPU per
// byte). A young generation held at 1 MiB is scavenged (cheaply) before that
// limit is reached, and without incremental marking external-memory pressure is
// answered with a scavenge too. The heap of a sidecar is small (~10 MB), so an
// occasional atomic Mark-Compact is a few milliseconds. Any GC flag of your own
// (on the command line or in NODE_OPTIONS) switches this off.
const own = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].some(a => /semi-space|incremental-marking/.test(a))
if (!own) {
  setFlagsFromString('--max-semi-space-size=1')
  setFlagsFromString('--semi-space-growth-factor=1')
  setFlagsFromString('--no-incremental-marking')
}
// A closed stdout (`mesh-proxy run --help | head -3`) is a normal end, as SIGPIPE is for
// C tools: what is left to print has no reader, and the command still ends with its own
// exit code, without an 'Error: write EPIPE' stack trace. Other stdout errors: one line.
process.stdout.on('error', err => {
  if (err.code === 'EPIPE') return
  process.stderr.write(`mesh-proxy: error: stdout: ${err.message}\n`)
  process.exitCode = 1
})
const { main } = await import('../dist/src/cli/main.js')
process.exitCode = await main(process.argv)
