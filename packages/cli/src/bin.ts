#!/usr/bin/env node
// The process edge: Node's compile cache and warnings, then the program on Node services with the runtime's exit
// codes, nothing else. The program is imported after the cache is on, so its modules load from the cache.
import "./internal/quietWarnings.ts"
import { enableCompileCache } from "node:module"

enableCompileCache()
const { main } = await import("./main.ts")
main(process.argv.slice(2))
