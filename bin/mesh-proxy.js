#!/usr/bin/env node
// Thin launcher: the program lives in src/cli/main.ts (compiled to dist/ by `npm install`).
import { main } from '../dist/src/cli/main.js'
process.exitCode = await main(process.argv)
