/**
 * `crier worker ID` (not listed): the background process `--detach` starts. It runs the broadcast like `resume`,
 * writing plain progress lines and the summary to its log, and exits when the broadcast is over. Stopping it
 * (SIGTERM) pauses the broadcast; `crier resume ID` picks it up again.
 */
import * as ProgressStore from "@crier/core/ProgressStore"
import { Console, Effect, Option } from "effect"
import { Command } from "effect/cli"
import { explained } from "../CliFailure.ts"
import * as Logging from "../Logging.ts"
import * as Runner from "../Runner.ts"
import * as Stores from "../Stores.ts"
import { broadcastId } from "./status.ts"

export const worker = Command.make(
  "worker",
  { id: broadcastId },
  Effect.fn("crier.worker")(function*(input) {
    const location = yield* Stores.existing(yield* Stores.locate(Option.none()))
    const run = Effect.gen(function*() {
      const store = yield* ProgressStore.ProgressStore
      const broadcast = yield* store.getBroadcast(input.id)
      yield* Console.error(
        `crier worker ${process.pid}: ${input.id} via ${broadcast.transport}, store ${Stores.describe(location)}`
      )
      yield* Runner.runHere(location, input.id, {
        json: false,
        importProblems: 0,
        display: "lines",
        interruptReason: "its background worker was stopped"
      })
    })
    yield* run.pipe(Effect.scoped, Effect.provide(Stores.layer(location)), explained, Logging.atLeast("Info"))
  })
).pipe(Command.withDescription("Run a broadcast in the background (started by --detach)"), Command.unlisted)
