// The progress display: a bar redrawn in place on a terminal, throttled plain lines anywhere else.
import * as Broadcast from "@crier/core/Broadcast"
import type * as Broadcaster from "@crier/core/Broadcaster"
import type * as BroadcastStatus from "@crier/core/BroadcastStatus"
import * as ProgressStore from "@crier/core/ProgressStore"
import { assert, describe, it } from "@effect/vitest"
import { DateTime, Duration, Effect, Option, Sink, Stdio, Stream } from "effect"
import { TestConsole } from "effect/testing"
import * as Progress from "../src/Progress.ts"

const id = Broadcast.BroadcastId.make("bc_01M803X1RJ7K7ZMDFDJVKYP446")

const snapshot = (
  seconds: number,
  status: BroadcastStatus.BroadcastStatus,
  counts: Partial<ProgressStore.Counts>
): Broadcaster.Snapshot => {
  const all = { ...ProgressStore.emptyCounts, ...counts }
  return {
    broadcastId: id,
    status,
    statusReason: Option.none(),
    counts: { ...all, total: all.pending + all.submitting + all.accepted + all.failed + all.in_doubt },
    ratePerSecond: 82,
    eta: Option.some(Duration.seconds(7)),
    at: DateTime.makeUnsafe(seconds * 1000)
  }
}

const running = [
  snapshot(0, "sending", { pending: 1000 }),
  snapshot(1, "sending", { pending: 588, accepted: 400, failed: 12 }),
  snapshot(2, "completed", { accepted: 985, failed: 12, in_doubt: 3 })
]

/** A Stdio whose stderr is (or is not) a terminal, and what was written to it. */
const terminal = (isTerminal: boolean) => {
  const written: Array<string> = []
  const layer = Stdio.layerTest({
    stderrIsTerminal: Effect.succeed(isTerminal),
    stderr: () =>
      Sink.forEach((chunk: string | Uint8Array) =>
        Effect.sync(() => written.push(typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk)))
      )
  })
  return { written, layer }
}

describe("Progress", () => {
  it.effect("a bar on a terminal, lines elsewhere, lines when forced", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* Progress.mode("auto").pipe(Effect.provide(terminal(true).layer)), "bar")
      assert.strictEqual(yield* Progress.mode("auto").pipe(Effect.provide(terminal(false).layer)), "lines")
      assert.strictEqual(yield* Progress.mode("lines").pipe(Effect.provide(terminal(true).layer)), "lines")
    }))

  it.effect("the bar is redrawn in place for each snapshot, and its line is ended", () =>
    Effect.gen(function*() {
      const { written, layer } = terminal(true)
      yield* Progress.show(Stream.fromIterable(running), "bar").pipe(Effect.provide(layer))
      assert.strictEqual(written.length, running.length + 1)
      for (const redraw of written.slice(0, -1)) assert.isTrue(redraw.startsWith("\r\x1b[2K"), JSON.stringify(redraw))
      // Cut to 80 columns (the width of a terminal that does not say), the pace before the counts.
      assert.strictEqual(
        written[1],
        "\r\x1b[2Ksending ██████████░░░░░░░░░░░░░░  41% 412/1,000  82/s  ETA 7s  accepted 400  f…"
      )
      assert.strictEqual(
        written[2],
        "\r\x1b[2Kcompleted ████████████████████████ 100% 1,000/1,000  accepted 985  failed 12  …"
      )
      assert.strictEqual(written.at(-1), "\n")
    }))

  it.effect("the bar's line is ended when the stream fails too", () =>
    Effect.gen(function*() {
      const { written, layer } = terminal(true)
      const failing = Stream.concat(Stream.fromIterable(running.slice(0, 1)), Stream.fail("store gone"))
      const error = yield* Effect.flip(Progress.show(failing, "bar").pipe(Effect.provide(layer)))
      assert.strictEqual(error, "store gone")
      assert.strictEqual(written.at(-1), "\n")
    }))

  it("the bar is cut to the terminal's width, never wrapping", () => {
    for (const columns of [30, 60, 80, 200]) {
      const text = Progress.bar(running[1]!, columns)
      assert.isBelow(text.length, columns)
    }
    assert.isTrue(Progress.bar(running[1]!, 40).endsWith("…"))
  })

  it.effect("plain lines: one every 5 s while only the counts change, and one at each status change", () =>
    Effect.gen(function*() {
      const snapshots = [
        snapshot(0, "scheduled", { pending: 100 }),
        snapshot(1, "sending", { pending: 90, accepted: 10 }),
        snapshot(2, "sending", { pending: 80, accepted: 20 }),
        snapshot(5, "sending", { pending: 50, accepted: 50 }),
        snapshot(6, "sending", { pending: 40, accepted: 60 }),
        snapshot(7, "paused", { pending: 30, accepted: 70 })
      ]
      yield* Progress.show(Stream.fromIterable(snapshots), "lines").pipe(Effect.provide(terminal(false).layer))
      const lines = (yield* TestConsole.errorLines).map(String)
      assert.deepStrictEqual(lines, [
        `${id} scheduled 0/100 (0%)`,
        `${id} sending 10/100 (10%) · 82/s · ETA 7s · accepted 10`,
        `${id} sending 60/100 (60%) · 82/s · ETA 7s · accepted 60`,
        `${id} paused 70/100 (70%) · accepted 70`
      ])
    }).pipe(Effect.provide(TestConsole.layer)))
})
