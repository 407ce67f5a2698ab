/**
 * `crier status ID`: where a broadcast stands — the funnel, or one JSON object with `--json`. `--watch` follows it
 * until it is over (completed, paused or cancelled), wherever it runs, and then exits as `send` would.
 */
import * as Broadcast from "@crier/core/Broadcast"
import * as Broadcaster from "@crier/core/Broadcaster"
import { Console, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { explained } from "../CliFailure.ts"
import * as Progress from "../Progress.ts"
import * as Runner from "../Runner.ts"
import * as Stores from "../Stores.ts"
import * as Transports from "../Transports.ts"
import * as Workers from "../Workers.ts"

export const broadcastId = Argument.String("id").pipe(
  Argument.withSchema(Broadcast.BroadcastId),
  Argument.withDescription("The broadcast's id (bc_…), as send printed it and crier list shows it")
)

export const status = Command.make(
  "status",
  {
    id: broadcastId,
    json: Flag.Boolean("json").pipe(Flag.withDescription("Print one JSON object"), Flag.withDefault(false)),
    watch: Flag.Boolean("watch").pipe(
      Flag.withDescription("Follow it until it is over, then exit as send would (0, 1 or 3)"),
      Flag.withDefault(false)
    ),
    store: Stores.flag
  },
  Effect.fn("crier.status")(function*(input) {
    const location = yield* Stores.existing(yield* Stores.locate(input.store))
    const run = Effect.gen(function*() {
      const engine = yield* Broadcaster.Broadcaster
      const broadcast = yield* engine.get(input.id)
      if (!input.watch) return yield* Runner.report(input.id, { json: input.json, importProblems: 0, query: true })
      // Who runs it can only be known on this machine: a PostgreSQL store's workers may be elsewhere.
      if (broadcast.status === "sending" && location._tag === "Sqlite") {
        const runner = yield* Workers.runner(Stores.folder(location), input.id)
        if (Option.isNone(runner)) {
          yield* Console.error(`No crier process runs ${input.id} now (did its worker stop?): crier resume ${input.id}`)
        }
      }
      const mode = yield* Progress.mode("auto")
      yield* Progress.show(engine.progress(input.id, { every: Progress.every(mode) }), mode)
      return yield* Runner.report(input.id, { json: input.json, importProblems: 0 })
    })
    yield* run.pipe(Effect.provide(Transports.readOnly), Effect.provide(Stores.layer(location)), explained)
  })
).pipe(
  Command.withDescription("Show where a broadcast stands: counts per status, rates, failure reasons"),
  Command.withExamples([
    { command: "crier status bc_01JZ8M3K2Q4R5S6T7V8W9X0Y1Z --watch", description: "Follow it to the end" },
    { command: "crier status bc_01JZ8M3K2Q4R5S6T7V8W9X0Y1Z --json", description: "For a program" }
  ])
)
