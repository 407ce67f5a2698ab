/**
 * Where a broadcast stands, for people and for programs: the one JSON object `send --json` and `status --json`
 * print, and the funnel a person reads.
 *
 * Counts are per current status and add up to `total` (a read message counts under `read`, not `delivered`).
 * Rates are shares of the messages the provider answered for (`accepted` through `replied`, plus `failed`):
 * `delivery_rate` counts delivered, read and replied ones, `read_rate` read and replied, `response_rate` replied.
 */
import type * as Broadcast from "@crier/core/Broadcast"
import * as ProgressStore from "@crier/core/ProgressStore"
import { DateTime, Duration, Effect } from "effect"
import * as Progress from "./Progress.ts"
import { count } from "./RecipientFile.ts"

export interface Failure {
  readonly reason: string
  readonly code: string | null
  readonly count: number
}

export interface Summary {
  readonly id: string
  readonly name: string
  readonly transport: string
  readonly status: string
  readonly total: number
  readonly pending: number
  readonly submitting: number
  readonly accepted: number
  readonly sent: number
  readonly delivered: number
  readonly read: number
  readonly replied: number
  readonly failed: number
  readonly skipped: number
  readonly in_doubt: number
  readonly delivery_rate: number
  readonly read_rate: number
  readonly response_rate: number
  readonly started_at: string | null
  readonly completed_at: string | null
  readonly failures: ReadonlyArray<Failure>
}

const share = (part: number, whole: number): number => whole === 0 ? 0 : Math.round((part / whole) * 10_000) / 10_000

const iso = (at: DateTime.Utc | undefined): string | null => at === undefined ? null : DateTime.formatIso(at)

export const make = (
  broadcast: Broadcast.Broadcast,
  counts: ProgressStore.Counts,
  failures: ReadonlyArray<ProgressStore.FailureCount>
): Summary => {
  const read = counts.read + counts.replied
  const delivered = counts.delivered + read
  const answered = counts.accepted + counts.sent + delivered + counts.failed
  return {
    id: broadcast.id,
    name: broadcast.name,
    transport: broadcast.transport,
    status: broadcast.status,
    total: counts.total,
    pending: counts.pending,
    submitting: counts.submitting,
    accepted: counts.accepted,
    sent: counts.sent,
    delivered: counts.delivered,
    read: counts.read,
    replied: counts.replied,
    failed: counts.failed,
    skipped: counts.skipped,
    in_doubt: counts.in_doubt,
    delivery_rate: share(delivered, answered),
    read_rate: share(read, answered),
    response_rate: share(counts.replied, answered),
    started_at: iso(broadcast.startedAt),
    completed_at: iso(broadcast.completedAt),
    failures: failures.map((failure) => ({ reason: failure.reason, code: failure.code ?? null, count: failure.count }))
  }
}

/** The broadcast's summary from the store, with the broadcast itself (for what the summary leaves out). */
export const load = Effect.fn("Summary.load")(function*(id: Broadcast.BroadcastId) {
  const store = yield* ProgressStore.ProgressStore
  const broadcast = yield* store.getBroadcast(id)
  const summary = make(broadcast, yield* store.counts(id), yield* store.failures(id))
  return { broadcast, summary }
})

const percent = (rate: number) => `${(rate * 100).toFixed(1)}%`

const statuses = [
  "pending",
  "submitting",
  "accepted",
  "sent",
  "delivered",
  "read",
  "replied",
  "failed",
  "in_doubt",
  "skipped"
] as const satisfies ReadonlyArray<keyof Summary>

const took = (broadcast: Broadcast.Broadcast): string => {
  if (broadcast.startedAt === undefined || broadcast.completedAt === undefined) return ""
  const millis = DateTime.toEpochMillis(broadcast.completedAt) - DateTime.toEpochMillis(broadcast.startedAt)
  return ` (took ${Progress.clock(Duration.millis(Math.max(0, millis)))})`
}

/** The funnel for a person: every status that has recipients, the rates, the failure reasons. */
export const human = (summary: Summary, broadcast: Broadcast.Broadcast): string => {
  const width = Math.max(5, count(summary.total).length)
  const lines = [
    `${summary.id} "${summary.name}" via ${summary.transport}: ${summary.status}${
      broadcast.statusReason === undefined ? "" : ` (${broadcast.statusReason})`
    }`,
    `  ${"total".padEnd(11)}${count(summary.total).padStart(width)}`
  ]
  for (const status of statuses) {
    const n = summary[status]
    if (n > 0) {
      const label = status.replace("_", " ")
      lines.push(`  ${label.padEnd(11)}${count(n).padStart(width)}  ${percent(share(n, summary.total)).padStart(6)}`)
    }
  }
  if (broadcast.scheduledAt !== undefined && summary.status === "scheduled") {
    lines.push(`  scheduled for ${DateTime.formatIso(broadcast.scheduledAt)}`)
  }
  if (summary.started_at !== null) {
    lines.push(
      `  started ${summary.started_at}${
        summary.completed_at === null
          ? ""
          : `, completed ${summary.completed_at}${took(broadcast)}`
      }`
    )
  }
  lines.push(
    `  delivery ${percent(summary.delivery_rate)} · read ${percent(summary.read_rate)} · replied ${
      percent(summary.response_rate)
    }`
  )
  return [...lines, ...failureLines(summary, width)].join("\n")
}

/** The failure reasons, most frequent first as the store gives them, with their counts right-aligned in `width`. */
const failureLines = (summary: Summary, width: number): ReadonlyArray<string> => {
  if (summary.failures.length === 0) return []
  const lines = ["Failures:"]
  for (const failure of summary.failures.slice(0, 10)) {
    lines.push(
      `  ${count(failure.count).padStart(width)} × ${failure.code === null ? "" : `${failure.code} `}${failure.reason}`
    )
  }
  if (summary.failures.length > 10) {
    lines.push(`  … ${summary.failures.length - 10} more reasons; --json lists every one`)
  }
  return lines
}

/**
 * How far the messages got, each step counting those that went further (a read message was delivered and sent),
 * as shares of the broadcast's recipients; then the failures and what is in doubt.
 */
export const funnel = (summary: Summary): string => {
  const replied = summary.replied
  const read = summary.read + replied
  const delivered = summary.delivered + read
  const sent = summary.sent + delivered
  const width = Math.max(5, count(summary.total).length)
  const step = (label: string, n: number) =>
    `  ${label.padEnd(11)}${count(n).padStart(width)}  ${percent(share(n, summary.total)).padStart(6)}`
  // Not there yet: still to send, or handed over with no status back.
  const waiting = summary.pending + summary.submitting + summary.accepted
  return [
    `Funnel of the ${count(summary.total)} recipients:`,
    step("sent", sent),
    step("delivered", delivered),
    step("read", read),
    step("replied", replied),
    step("failed", summary.failed),
    step("in doubt", summary.in_doubt),
    ...(waiting > 0 ? [step("no status", waiting)] : []),
    ...(summary.skipped > 0 ? [step("skipped", summary.skipped)] : []),
    ...failureLines(summary, width)
  ].join("\n")
}
