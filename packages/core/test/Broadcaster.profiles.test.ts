// Each MemoryTransport profile end to end: how the engine drives a remote campaign (kapso), bulk calls with polling
// and webhooks (keebai), and per-message hand-offs with concurrency and webhooks (meta).
import * as Broadcast from "@crier/core/Broadcast"
import { Broadcaster } from "@crier/core/Broadcaster"
import * as MemoryTransport from "@crier/core/MemoryTransport"
import { assert, describe, it } from "@effect/vitest"
import { DateTime, Effect, Fiber, Option } from "effect"
import { TestClock } from "effect/testing"
import {
  assertConsistent,
  counts,
  runFor,
  started,
  submitted,
  webhookIntake,
  withEngine
} from "./Broadcaster.fixtures.ts"

describe("Broadcaster profiles", () => {
  it.effect("kapso: remote campaign opened once, batches of 1,000, started once, polled to done", () =>
    Effect.gen(function*() {
      const broadcaster = yield* Broadcaster
      const memory = yield* MemoryTransport.MemoryTransport
      // Kapso paces its own campaigns: the engine must not add this rate on top.
      const id = yield* started(2500, { policy: new Broadcast.Policy({ messagesPerSecond: 1 }) })
      const sending = yield* broadcaster.get(id)
      assert.strictEqual(sending.remoteId, "remote-1")
      const done = yield* runFor(id, "10 minutes")
      // Kapso refuses a second `start` (422), which would have paused the broadcast: it was started once.
      assert.strictEqual(done.status, "completed")
      assert.isDefined(done.completedAt)
      const calls = yield* submitted
      assert.strictEqual(yield* memory.requests, 3)
      assert.strictEqual(calls.length, 2500)
      // Paced at 1/s by us, 2,500 messages would take 41 minutes: done within 10, nothing paced them.
      const final = yield* counts(id)
      assertConsistent(final)
      // The default lifecycle (sent after 1 s, delivered 1 s later), learned by polling.
      assert.strictEqual(final.delivered, 2500)
      // Completion waited for the remote side: after the last delivery, not at hand-off time.
      assert.isTrue(DateTime.toEpochMillis(done.completedAt!) >= 2000)
    }).pipe(withEngine({ profile: "kapso" })))

  it.effect("keebai: batches of 5,000, statuses from webhooks and polling", () => {
    const sizes: Array<number> = []
    const spy = (batch: ReadonlyArray<unknown>) => {
      sizes.push(batch.length)
      return Option.none()
    }
    return Effect.gen(function*() {
      const intake = yield* webhookIntake
      const id = yield* started(12_000)
      const done = yield* runFor(id, "10 minutes")
      assert.strictEqual(done.status, "completed")
      assert.deepStrictEqual(sizes, [5000, 5000, 2000])
      assert.strictEqual((yield* submitted).length, 12_000)
      const final = yield* counts(id)
      assertConsistent(final)
      assert.strictEqual(final.delivered, 12_000)
      yield* Fiber.interrupt(intake)
    }).pipe(withEngine({ profile: "keebai", reject: { requests: spy } }))
  })

  it.effect("meta: one message per call, `concurrency` in flight, webhooks after completion", () =>
    Effect.gen(function*() {
      const broadcaster = yield* Broadcaster
      const intake = yield* webhookIntake
      const id = yield* started(64, { policy: new Broadcast.Policy({ concurrency: 8 }) })
      const fiber = yield* Effect.forkChild(broadcaster.wait(id))
      // Each call takes 100 ms: 8 in flight means 8 answers every 100 ms, 64 messages in 800 ms.
      yield* TestClock.adjust("800 millis")
      const done = yield* Fiber.join(fiber)
      assert.strictEqual(done.status, "completed")
      const perTick = new Map<number, number>()
      for (const call of yield* submitted) {
        const at = DateTime.toEpochMillis(call.at)
        perTick.set(at, (perTick.get(at) ?? 0) + 1)
      }
      assert.deepStrictEqual([...perTick.entries()], [100, 200, 300, 400, 500, 600, 700, 800].map((t) => [t, 8]))
      assert.strictEqual((yield* counts(id)).accepted, 64)
      // Webhook statuses keep arriving after completion (sent after 1 s, delivered 1 s later).
      yield* TestClock.adjust("3 seconds")
      const final = yield* counts(id)
      assertConsistent(final)
      assert.strictEqual(final.delivered, 64)
      const row = yield* broadcaster.recipients(id, { status: "delivered", limit: 1 })
      assert.isTrue(Option.isSome(Option.fromUndefinedOr(row.items[0]?.providerMessageId)))
      yield* Fiber.interrupt(intake)
    }).pipe(withEngine({ profile: "meta", latency: "100 millis" })))
})
