/**
 * `crier resume ID`: get a broadcast going again in this process and follow it like `send` (or hand it to a
 * background worker with `--detach`): a paused one resumes, a draft starts, and one whose process died (it still
 * says sending or scheduled) is recovered — messages that were mid-hand-off are reported in doubt, not resent,
 * unless the broadcast's policy is at-least-once.
 */
import * as BroadcastStatus from "@crier/core/BroadcastStatus"
import * as ProgressStore from "@crier/core/ProgressStore"
import { Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { explained, UsageError } from "../CliFailure.ts"
import * as Runner from "../Runner.ts"
import * as Stores from "../Stores.ts"
import * as Transports from "../Transports.ts"
import * as Workers from "../Workers.ts"
import { broadcastId } from "./status.ts"

export const resume = Command.make(
  "resume",
  {
    id: broadcastId,
    detach: Flag.Boolean("detach").pipe(
      Flag.withDescription("Leave it to a background worker and exit at once"),
      Flag.withDefault(false)
    ),
    json: Flag.Boolean("json").pipe(Flag.withDescription("Print one JSON object"), Flag.withDefault(false)),
    store: Stores.flag
  },
  Effect.fn("crier.resume")(function*(input) {
    const location = yield* Stores.existing(yield* Stores.locate(input.store))
    const run = Effect.gen(function*() {
      const store = yield* ProgressStore.ProgressStore
      const broadcast = yield* store.getBroadcast(input.id)
      if (BroadcastStatus.isTerminal(broadcast.status)) {
        return yield* new UsageError({
          message: `broadcast ${input.id} is ${broadcast.status}: there is nothing to resume`
        })
      }
      const runner = yield* Workers.runner(Stores.folder(location), input.id)
      if (Option.isSome(runner)) {
        return yield* new UsageError({
          message:
            `broadcast ${input.id} is being sent by process ${runner.value}: follow it with crier status ${input.id} --watch`
        })
      }
      if (!input.detach) {
        return yield* Runner.runHere(location, input.id, {
          json: input.json,
          importProblems: 0,
          display: "auto",
          interruptReason: Runner.interruptedByUser
        })
      }
      if (broadcast.transport === "memory") {
        return yield* new UsageError({
          message:
            `broadcast ${input.id} uses the memory transport, which lives in one process: resume it without --detach`
        })
      }
      // The worker reads the same settings: a missing one is reported here, not in its log.
      yield* Transports.engineFor(broadcast)
      yield* Runner.detach(input.id, location, input.json)
    })
    yield* run.pipe(Effect.scoped, Effect.provide(Stores.layer(location)), explained)
  })
).pipe(Command.withDescription("Resume a paused broadcast, or one whose process stopped, and follow it"))
