// Pacing through the whole engine: exact message rates, request budgets, a provider's RateLimited answers, and the
// progress snapshots a caller watches meanwhile.
import * as Broadcast from "@crier/core/Broadcast"
import { Broadcaster, type Snapshot } from "@crier/core/Broadcaster"
import { assert, describe, it } from "@effect/vitest"
import { DateTime, Duration, Effect, Fiber, Option, Stream } from "effect"
import { TestClock } from "effect/testing"
import {
  assertConsistent,
  rowOf,
  runFor,
  stallingLimiter,
  started,
  submitted,
  withEngine
} from "./Broadcaster.fixtures.ts"

/** The most hand-offs in any window [t, t + width) of the sorted times. */
const busiest = (times: ReadonlyArray<number>, width: number): number => {
  let most = 0
  for (let i = 0, j = 0; i < times.length; i++) {
    while (times[i]! - times[j]! >= width) j++
    most = Math.max(most, i - j + 1)
  }
  return most
}

const handOffTimes = Effect.map(
  submitted,
  (calls) => calls.map((call) => DateTime.toEpochMillis(call.at)).sort((a, b) => a - b)
)

describe("Broadcaster pacing", () => {
  it.effect("meta: 1,000 messages at 50/s take 20 s, and no second sees more than 50", () =>
    Effect.gen(function*() {
      const id = yield* started(1000, { policy: new Broadcast.Policy({ messagesPerSecond: 50 }) })
      const done = yield* runFor(id, "1 minute")
      assert.strictEqual(done.status, "completed")
      const times = yield* handOffTimes
      assert.strictEqual(times.length, 1000)
      assert.strictEqual(times[0], 0)
      assert.strictEqual(times[999], 19_980)
      assert.strictEqual(busiest(times, 1000), 50)
      assert.strictEqual(DateTime.toEpochMillis(done.completedAt!), 19_980)
    }).pipe(withEngine({ profile: "meta" })))

  it.effect("meta: after a stall, the overdue messages catch up, but no second sees more than 50", () =>
    Effect.gen(function*() {
      const id = yield* started(1000, { policy: new Broadcast.Policy({ messagesPerSecond: 50 }) })
      const done = yield* runFor(id, "1 minute")
      assert.strictEqual(done.status, "completed")
      const times = yield* handOffTimes
      assert.strictEqual(times.length, 1000)
      // Every worker due from 5,010 to 5,300 woke at 5,300 (a GC pause, a busy CPU): they go together, once.
      assert.strictEqual(times.filter((time) => time === 5300).length, 15)
      assert.strictEqual(busiest(times, 1000), 50)
      assert.strictEqual(times[999], 19_980)
    }).pipe(withEngine({ profile: "meta" }, stallingLimiter(5010, 5300))))

  it.effect("keebai: a paced batch transport sends one second's worth per call, on the second", () => {
    const sizes: Array<number> = []
    return Effect.gen(function*() {
      const id = yield* started(1000, { policy: new Broadcast.Policy({ messagesPerSecond: 50 }) })
      const done = yield* runFor(id, "1 minute")
      assert.strictEqual(done.status, "completed")
      assert.deepStrictEqual(sizes, Array.from({ length: 20 }, () => 50))
      const times = yield* handOffTimes
      assert.strictEqual(times[999], 19_980)
      assert.strictEqual(busiest(times, 1000), 50)
    }).pipe(withEngine({
      profile: "keebai",
      reject: {
        requests: (batch) => {
          sizes.push(batch.length)
          return Option.none()
        }
      }
    }))
  })

  it.effect("a request budget of 60/min: one call a second, never 61 in a minute", () =>
    Effect.gen(function*() {
      const budget = new Broadcast.RequestBudget({ limit: 60, windowMillis: 60_000 })
      const id = yield* started(1500, { policy: new Broadcast.Policy({ batchSize: 10, requestBudgets: [budget] }) })
      const done = yield* runFor(id, "10 minutes")
      assert.strictEqual(done.status, "completed")
      const calls = [...new Set(yield* handOffTimes)]
      assert.strictEqual(calls.length, 150)
      assert.deepStrictEqual(calls, Array.from({ length: 150 }, (_, k) => k * 1000))
      assert.strictEqual(busiest(calls, 60_000), 60)
    }).pipe(withEngine({ profile: "keebai" })))

  it.effect("a RateLimited answer slows the sender until retryAfter, then sending goes on at the paced rate", () =>
    Effect.gen(function*() {
      const broadcaster = yield* Broadcaster
      const id = yield* started(250, { policy: new Broadcast.Policy({ batchSize: 100 }) })
      const done = yield* runFor(id, "10 minutes")
      assert.strictEqual(done.status, "completed")
      const calls = yield* submitted
      const accepted = calls.filter((call) => call.outcome._tag === "Accepted")
      const refused = calls.filter((call) => call.outcome._tag === "Failed")
      const at = (list: typeof calls) => [...new Set(list.map((call) => DateTime.toEpochMillis(call.at)))]
      // The transport allows 100 messages per minute: each refused batch waits exactly for the next window.
      assert.deepStrictEqual(at(accepted), [0, 60_000, 120_000])
      assert.deepStrictEqual(at(refused), [0, 60_000])
      assert.strictEqual(accepted.length, 250)
      assert.strictEqual((yield* rowOf(id, 150)).attempts, 2)
      assert.strictEqual((yield* rowOf(id, 50)).attempts, 1)
      // Polled to the end: every message delivered, none lost to the rate limit.
      const page = yield* broadcaster.recipients(id, { status: "delivered", limit: 1000 })
      assert.strictEqual(page.items.length, 250)
    }).pipe(withEngine({ profile: "keebai", rate: { limit: 100, windowMillis: 60_000 } })))

  it.effect("progress: snapshots add up to the total at every step, with rate and ETA, until completed", () =>
    Effect.gen(function*() {
      const broadcaster = yield* Broadcaster
      const id = yield* started(1000, { policy: new Broadcast.Policy({ messagesPerSecond: 50 }) })
      const fiber = yield* Effect.forkChild(Stream.runCollect(broadcaster.progress(id)))
      yield* TestClock.adjust("30 seconds")
      const snapshots: ReadonlyArray<Snapshot> = yield* Fiber.join(fiber)
      for (const snapshot of snapshots) {
        assertConsistent(snapshot.counts)
        assert.strictEqual(snapshot.counts.total, 1000)
      }
      const last = snapshots[snapshots.length - 1]!
      assert.strictEqual(last.status, "completed")
      assert.strictEqual(last.counts.accepted, 1000)
      // One snapshot a second, the last one as soon as it is over (at 20 s, the first second it is seen).
      assert.strictEqual(snapshots.length, 21)
      const middle = snapshots[10]!
      assert.strictEqual(middle.status, "sending")
      assert.closeTo(middle.ratePerSecond, 50, 1)
      assert.closeTo(Duration.toSeconds(Option.getOrThrow(middle.eta)), 10, 0.5)
      assert.isTrue(
        snapshots.every((snapshot) =>
          snapshot.counts.pending + snapshot.counts.accepted + snapshot.counts.submitting === 1000
        )
      )
    }).pipe(withEngine({ profile: "meta" })))

  it.effect("progress of an unknown broadcast fails with BroadcastNotFound", () =>
    Effect.gen(function*() {
      const broadcaster = yield* Broadcaster
      const error = yield* Effect.flip(
        Stream.runCollect(broadcaster.progress(Broadcast.BroadcastId.make("bc_01ARZ3NDEKTSV4RRFFQ69G5FAV")))
      )
      assert.strictEqual(error._tag, "BroadcastNotFound")
    }).pipe(withEngine()))
})
