/**
 * `crier cancel ID`: give a broadcast up. Its pending recipients are skipped (cancelled), the process that runs it
 * stops after the batch in flight, and the provider is asked to stop where it can (Kapso and Keebai cannot; what
 * Meta accepted goes out). Needs the broadcast's transport settings, to reach its provider.
 */
import * as Broadcaster from "@crier/core/Broadcaster"
import * as ProgressStore from "@crier/core/ProgressStore"
import { Console, Effect } from "effect"
import { Command } from "effect/cli"
import { explained } from "../CliFailure.ts"
import { count } from "../RecipientFile.ts"
import * as Stores from "../Stores.ts"
import * as Transports from "../Transports.ts"
import { broadcastId } from "./status.ts"

export const cancel = Command.make(
  "cancel",
  { id: broadcastId, store: Stores.flag },
  Effect.fn("crier.cancel")(function*(input) {
    const location = yield* Stores.existing(yield* Stores.locate(input.store))
    const run = Effect.gen(function*() {
      const store = yield* ProgressStore.ProgressStore
      const engine = yield* Transports.engineFor(yield* store.getBroadcast(input.id))
      yield* Effect.gen(function*() {
        yield* (yield* Broadcaster.Broadcaster).cancel(input.id)
        const counts = yield* store.counts(input.id)
        yield* Console.log(
          `Cancelled ${input.id}: ${count(counts.skipped)} of ${count(counts.total)} recipients were not sent`
        )
      }).pipe(Effect.provide(engine))
    })
    yield* run.pipe(Effect.provide(Stores.layer(location)), explained)
  })
).pipe(Command.withDescription("Cancel a broadcast: recipients not sent yet are skipped"))
