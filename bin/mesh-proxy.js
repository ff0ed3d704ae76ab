#!/usr/bin/env node
// Thin launcher: the program lives in src/cli/main.ts (compiled to dist/ by `npm install`).
import { setFlagsFromString } from 'node:v8'

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
const { main } = await import('../dist/src/cli/main.js')
process.exitCode = await main(process.argv)
