/**
 * A running broadcast on screen, on stderr (stdout keeps the result): on a terminal, a bar redrawn in place with
 * the counts per status, the rate and the time left; anywhere else (a pipe, a worker's log) one plain line every
 * few seconds, and whenever the status changes.
 */
import type * as Broadcaster from "@crier/core/Broadcaster"
import type * as BroadcastStatus from "@crier/core/BroadcastStatus"
import type * as ProgressStore from "@crier/core/ProgressStore"
import { Console, DateTime, Duration, Effect, Option, Stdio, Stream } from "effect"
import { count } from "./RecipientFile.ts"

export type Mode = "bar" | "lines"

/** `bar` when stderr is a terminal; `lines` is forced for a worker writing to its log. */
export const mode = (preferred: "auto" | "lines"): Effect.Effect<Mode, never, Stdio.Stdio> =>
  preferred === "lines"
    ? Effect.succeed("lines")
    : Effect.flatMap(Stdio.Stdio, (stdio) => Effect.map(stdio.stderrIsTerminal, (tty) => tty ? "bar" : "lines"))

/** How often the engine is asked for a snapshot. */
export const every = (mode: Mode): Duration.Duration => mode === "bar" ? Duration.millis(200) : Duration.seconds(1)

/** Plain lines come at most this often while nothing but the counts changes. */
export const lineEvery = Duration.seconds(5)

const shown = [
  "accepted",
  "sent",
  "delivered",
  "read",
  "replied",
  "failed",
  "in_doubt",
  "skipped"
] as const satisfies ReadonlyArray<keyof ProgressStore.Counts>

const isOver = (status: BroadcastStatus.BroadcastStatus) =>
  status !== "draft" && status !== "scheduled" && status !== "sending"

/** "7s", "2m 05s", "1h 02m". */
export const clock = (duration: Duration.Duration): string => {
  const seconds = Math.round(Duration.toSeconds(duration))
  if (seconds < 60) return `${seconds}s`
  const minutes = Math.floor(seconds / 60)
  if (minutes < 60) return `${minutes}m ${String(seconds % 60).padStart(2, "0")}s`
  return `${Math.floor(minutes / 60)}h ${String(minutes % 60).padStart(2, "0")}m`
}

const settled = (counts: ProgressStore.Counts) => counts.total - counts.pending - counts.submitting

const parts = (snapshot: Broadcaster.Snapshot): ReadonlyArray<string> => {
  const { counts } = snapshot
  const statuses = shown.filter((status) => counts[status] > 0).map((status) =>
    `${status.replace("_", " ")} ${count(counts[status])}`
  )
  const pace = snapshot.status !== "sending"
    ? []
    : settled(counts) === counts.total
    ? ["all handed over; waiting for the provider to finish"]
    : [
      `${snapshot.ratePerSecond.toFixed(snapshot.ratePerSecond < 10 ? 1 : 0)}/s`,
      ...Option.match(snapshot.eta, { onNone: () => [], onSome: (eta) => [`ETA ${clock(eta)}`] })
    ]
  // The pace first: on a narrow terminal, the bar's end is what gets cut.
  return [...pace, ...statuses]
}

const percentDone = (counts: ProgressStore.Counts) =>
  counts.total === 0 ? 100 : Math.floor((settled(counts) * 100) / counts.total)

/** One plain line: `bc_… sending 412/1,000 (41%) · 82/s · ETA 7s · accepted 400 · failed 12`. */
export const line = (snapshot: Broadcaster.Snapshot): string =>
  [
    `${snapshot.broadcastId} ${snapshot.status} ${count(settled(snapshot.counts))}/${count(snapshot.counts.total)} (${
      percentDone(snapshot.counts)
    }%)`,
    ...parts(snapshot)
  ].join(" · ")

const barWidth = 24

/** The bar, cut to the terminal's width so that redrawing it in place never wraps. */
export const bar = (snapshot: Broadcaster.Snapshot, columns: number): string => {
  const percent = percentDone(snapshot.counts)
  const filled = Math.round((percent / 100) * barWidth)
  const text = [
    `${snapshot.status} ${"█".repeat(filled)}${"░".repeat(barWidth - filled)} ${String(percent).padStart(3)}% ${
      count(settled(snapshot.counts))
    }/${count(snapshot.counts.total)}`,
    ...parts(snapshot)
  ].join("  ")
  return text.length < columns ? text : `${text.slice(0, Math.max(0, columns - 2))}…`
}

// A terminal that does not say its width (0, as a bare pty) gets the classic 80 columns.
const terminalColumns = Effect.sync(() => process.stderr.columns > 20 ? process.stderr.columns : 80)

/** Shows the snapshots until the stream ends (the broadcast is over). */
export const show = <E, R>(
  snapshots: Stream.Stream<Broadcaster.Snapshot, E, R>,
  mode: Mode
): Effect.Effect<void, E, R | Stdio.Stdio> =>
  Effect.gen(function*() {
    const stdio = yield* Stdio.Stdio
    if (mode === "bar") {
      const write = (text: string) => Stream.run(Stream.make(text), stdio.stderr()).pipe(Effect.ignore)
      // The bar's line is ended however the stream ends, so what follows starts on a line of its own.
      yield* snapshots.pipe(
        Stream.runForEach((snapshot) =>
          Effect.flatMap(terminalColumns, (columns) => write(`\r\x1b[2K${bar(snapshot, columns)}`))
        ),
        Effect.ensuring(write("\n"))
      )
      return
    }
    let last: { readonly at: number; readonly status: BroadcastStatus.BroadcastStatus } | undefined
    yield* Stream.runForEach(snapshots, (snapshot) => {
      const at = DateTime.toEpochMillis(snapshot.at)
      const due = last === undefined || last.status !== snapshot.status || isOver(snapshot.status) ||
        at - last.at >= Duration.toMillis(lineEvery)
      if (!due) return Effect.void
      last = { at, status: snapshot.status }
      return Console.error(line(snapshot))
    })
  })
