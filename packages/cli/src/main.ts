// The command line on Node services, run by Node's runtime (exit codes, Ctrl-C as interruption).
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Effect } from "effect"
import { run } from "./Cli.ts"

export const main = (args: ReadonlyArray<string>): void =>
  run(args).pipe(Effect.provide(NodeServices.layer), NodeRuntime.runMain)
