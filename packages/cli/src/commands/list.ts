/**
 * `crier list`: the broadcasts in the store, newest first, with their counts; `--json` prints a JSON array of the
 * summaries `status --json` prints.
 */
import * as ProgressStore from "@crier/core/ProgressStore"
import { Console, DateTime, Effect } from "effect"
import { Command, Flag } from "effect/cli"
import { explained, UsageError } from "../CliFailure.ts"
import { count } from "../RecipientFile.ts"
import * as Stores from "../Stores.ts"
import * as Summary from "../Summary.ts"

const columns = ["ID", "NAME", "TRANSPORT", "STATUS", "TOTAL", "DELIVERED", "READ", "FAILED", "CREATED"] as const

const table = (rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = columns.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)))
  // Numbers align right, text left.
  const right = new Set([4, 5, 6, 7])
  return rows.map((row) =>
    row.map((cell, i) => right.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)).join("  ").trimEnd()
  ).join("\n")
}

const ellipsis = (text: string, max: number) => text.length <= max ? text : `${text.slice(0, max - 1)}…`

export const list = Command.make(
  "list",
  {
    json: Flag.Boolean("json").pipe(Flag.withDescription("Print a JSON array of summaries"), Flag.withDefault(false)),
    limit: Flag.Int("limit").pipe(Flag.withDescription("Show the newest N"), Flag.withDefault(50)),
    store: Stores.flag
  },
  Effect.fn("crier.list")(function*(input) {
    if (input.limit < 1) return yield* new UsageError({ message: "--limit must be at least 1" })
    const location = yield* Stores.existing(yield* Stores.locate(input.store))
    const run = Effect.gen(function*() {
      const store = yield* ProgressStore.ProgressStore
      const broadcasts = yield* store.listBroadcasts({ limit: input.limit })
      const summaries = yield* Effect.forEach(broadcasts, (broadcast) =>
        Effect.map(
          Effect.all([store.counts(broadcast.id), store.failures(broadcast.id)]),
          ([counts, failures]) => ({ broadcast, summary: Summary.make(broadcast, counts, failures) })
        ))
      if (input.json) return yield* Console.log(JSON.stringify(summaries.map(({ summary }) => summary)))
      if (summaries.length === 0) return yield* Console.log(`No broadcasts in ${Stores.describe(location)}`)
      yield* Console.log(table([
        columns,
        ...summaries.map(({ broadcast, summary }) => [
          summary.id,
          ellipsis(summary.name, 32),
          summary.transport,
          summary.status,
          count(summary.total),
          count(summary.delivered + summary.read + summary.replied),
          count(summary.read + summary.replied),
          count(summary.failed),
          DateTime.formatIso(broadcast.createdAt).slice(0, 16).replace("T", " ")
        ])
      ]))
    })
    yield* run.pipe(Effect.provide(Stores.layer(location)), explained)
  })
).pipe(Command.withDescription("List the broadcasts in the store, newest first"))
