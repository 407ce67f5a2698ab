/**
 * What the examples share: the template they send, a sample of `examples/data/recipients.csv`, and the way they
 * print a broadcast's import report and final summary. Nothing here is specific to a provider.
 */
import type * as Broadcast from "@crier/core/Broadcast"
import * as Broadcaster from "@crier/core/Broadcaster"
import * as ProgressStore from "@crier/core/ProgressStore"
import * as TemplateSpec from "@crier/core/TemplateSpec"
import { Console, Effect, FileSystem, Result } from "effect"
import { join } from "node:path"

/** The approved template, inferred from its body text: two named parameters, `first_name` and `order_id`. */
export const template = Result.getOrThrow(
  TemplateSpec.fromText("Hi {{first_name}}, your order {{order_id}} ships today.", {
    name: "order_update",
    language: "en"
  })
)

/** The sample file: `phone_number`, `first_name`, `order_id` and `city` (kept as metadata). */
const sampleFile = join(import.meta.dirname, "data", "recipients.csv")

/** The header and the first `rows` rows of the sample file, as a file that is removed when the scope closes. */
export const sampleCsv = Effect.fn("sampleCsv")(function*(rows: number) {
  const fs = yield* FileSystem.FileSystem
  const lines = (yield* fs.readFileString(sampleFile)).split("\n").slice(0, rows + 1)
  const path = join(yield* fs.makeTempDirectoryScoped({ prefix: "crier-example-" }), "recipients.csv")
  yield* fs.writeFileString(path, `${lines.join("\n")}\n`)
  return path
})

/** What `addRecipients` did with the file: counts, then the first few rows it refused. */
export const printImport = (report: Broadcaster.AddReport) =>
  Effect.gen(function*() {
    yield* Console.log(
      `imported: ${report.added} added, ${report.rejected} rejected, ${report.duplicates} duplicates`
    )
    const shown = 3
    for (const issue of report.issues.slice(0, shown)) {
      yield* Console.log(
        issue._tag === "Rejected"
          ? `  line ${issue.line}: ${issue.reason}`
          : `  line ${issue.line}: ${issue.address} repeats line ${issue.firstLine ?? "?"}`
      )
    }
    if (report.issues.length > shown) yield* Console.log(`  … and ${report.issues.length - shown} more`)
  })

/** The same shape for every transport, so runs can be compared. */
export interface Summary {
  readonly transport: string
  readonly status: string
  readonly total: number
  /** Recipients per current status; they add up to `total`. */
  readonly counts: Readonly<Record<string, number>>
  /** Messages that reached each step, or went further: `delivered` counts read and replied ones too. */
  readonly funnel: {
    readonly sent: number
    readonly delivered: number
    readonly read: number
    readonly replied: number
  }
  readonly failures: ReadonlyArray<
    { readonly code: string | undefined; readonly reason: string; readonly count: number }
  >
}

export const summarize = Effect.fn("summarize")(function*(id: Broadcast.BroadcastId) {
  const broadcast = yield* (yield* Broadcaster.Broadcaster).get(id)
  const store = yield* ProgressStore.ProgressStore
  const counts = yield* store.counts(id)
  const replied = counts.replied
  const read = counts.read + replied
  const delivered = counts.delivered + read
  return {
    transport: broadcast.transport,
    status: broadcast.status,
    total: counts.total,
    counts: {
      pending: counts.pending + counts.submitting,
      accepted: counts.accepted,
      sent: counts.sent,
      delivered: counts.delivered,
      read: counts.read,
      replied: counts.replied,
      failed: counts.failed,
      skipped: counts.skipped,
      in_doubt: counts.in_doubt
    },
    funnel: { sent: counts.sent + delivered, delivered, read, replied },
    failures: yield* store.failures(id)
  } satisfies Summary
})

export const printSummary = (summary: Summary) =>
  Effect.gen(function*() {
    const { counts, funnel } = summary
    yield* Console.log(`${summary.transport}: broadcast ${summary.status}, ${summary.total} recipients`)
    yield* Console.log(
      `  statuses  ${Object.entries(counts).map(([status, n]) => `${status} ${n}`).join(" · ")}`
    )
    yield* Console.log(
      `  funnel    sent ${funnel.sent} → delivered ${funnel.delivered} → read ${funnel.read} → replied ${funnel.replied}`
    )
    for (const failure of summary.failures) {
      yield* Console.log(`  failed    ${failure.count} × ${failure.code ?? "-"} ${failure.reason}`)
    }
  })
