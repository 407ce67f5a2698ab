/**
 * `crier pause ID`: stop sending a broadcast, wherever it runs. The process that runs it stops after the messages
 * already in flight are recorded (this command waits for that, briefly); `crier resume ID` goes on from there.
 */
import * as Broadcaster from "@crier/core/Broadcaster"
import { Console, Duration, Effect, Option, Schedule } from "effect"
import { Command } from "effect/cli"
import { explained } from "../CliFailure.ts"
import * as Runner from "../Runner.ts"
import * as Stores from "../Stores.ts"
import * as Transports from "../Transports.ts"
import * as Workers from "../Workers.ts"
import { broadcastId } from "./status.ts"

/** The reason a broadcast paused with `crier pause` shows. */
export const pausedByUser = "paused with crier pause"

export const pause = Command.make(
  "pause",
  { id: broadcastId, store: Stores.flag },
  Effect.fn("crier.pause")(function*(input) {
    const location = yield* Stores.existing(yield* Stores.locate(input.store))
    const run = Effect.gen(function*() {
      const engine = yield* Broadcaster.Broadcaster
      yield* engine.pause(input.id, pausedByUser)
      // The process that runs it records its batch in flight, then lets go; without one here, watch the rows.
      const folder = Stores.folder(location)
      const drained = Option.isSome(yield* Workers.runner(folder, input.id))
        ? yield* Workers.runner(folder, input.id).pipe(
          Effect.repeat({ schedule: Schedule.spaced(Duration.millis(100)), until: Option.isNone }),
          Effect.timeoutOption(Duration.sum(Runner.drainTimeout, Duration.seconds(5))),
          Effect.map(Option.isSome)
        )
        : yield* Runner.drain(input.id)
      yield* Console.log(
        drained
          ? `Paused ${input.id}. Resume with: crier resume ${input.id}`
          : `Paused ${input.id}; messages still being handed over are recorded when their process gets to them. Resume with: crier resume ${input.id}`
      )
    })
    yield* run.pipe(Effect.provide(Transports.readOnly), Effect.provide(Stores.layer(location)), explained)
  })
).pipe(Command.withDescription("Pause a sending broadcast; crier resume goes on where it stopped"))
