// Crash recovery under both in-doubt policies: rows another (dead) worker claimed and never recorded, and an engine
// interrupted in the middle of its hand-offs.
import * as Broadcast from "@crier/core/Broadcast"
import type { Broadcaster } from "@crier/core/Broadcaster"
import * as MemoryTransport from "@crier/core/MemoryTransport"
import * as ProgressStore from "@crier/core/ProgressStore"
import { assert, describe, it } from "@effect/vitest"
import { Context, DateTime, type Duration, Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { assertConsistent, backing, counts, engineOver, phone, recipients, template } from "./Broadcaster.fixtures.ts"

const policy = (inDoubt: Broadcast.InDoubtPolicy, fields: ConstructorParameters<typeof Broadcast.Policy>[0] = {}) =>
  new Broadcast.Policy({ inDoubt, ...fields })

const waitOn = (
  engine: { readonly broadcaster: Broadcaster["Service"] },
  id: Broadcast.BroadcastId,
  by: Duration.Input
) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(engine.broadcaster.wait(id))
    yield* TestClock.adjust(by)
    return yield* Fiber.join(fiber)
  })

/** A sending broadcast whose first `claimed` rows a dead worker holds under a one-minute lease. */
const abandoned = (inDoubt: Broadcast.InDoubtPolicy, claimed: number) =>
  Effect.gen(function*() {
    const context = yield* backing()
    const store = Context.get(context, ProgressStore.ProgressStore)
    const engine = yield* engineOver(context)
    const broadcast = yield* engine.broadcaster.create({
      name: "crashed",
      template,
      sender: "s",
      policy: policy(inDoubt)
    })
    yield* engine.broadcaster.addRecipients(broadcast.id, recipients(10))
    yield* store.transitionBroadcast(broadcast.id, { from: ["draft"], to: "sending" })
    yield* store.claim(broadcast.id, { limit: claimed, owner: "dead", leaseMillis: 60_000, now: yield* DateTime.now })
    return { context, engine, id: broadcast.id }
  })

describe("Broadcaster.recover", () => {
  it.effect("at-most-once: abandoned rows go in_doubt once their lease runs out, and are never resent", () =>
    Effect.gen(function*() {
      const { context, engine, id } = yield* abandoned("at-most-once", 4)
      const memory = Context.get(context, MemoryTransport.MemoryTransport)
      // The lease is still alive: nothing is taken from the other worker.
      const early = yield* engine.broadcaster.recover()
      assert.deepStrictEqual(early, [{ broadcastId: id, inDoubt: 0, requeued: 0 }])
      yield* TestClock.adjust("30 seconds")
      const meanwhile = yield* counts(id).pipe(Effect.provideContext(context))
      assert.strictEqual(meanwhile.accepted, 6)
      assert.strictEqual(meanwhile.submitting, 4)
      assert.strictEqual((yield* engine.broadcaster.get(id)).status, "sending")
      yield* TestClock.adjust("31 seconds")
      const late = yield* engine.broadcaster.recover()
      assert.deepStrictEqual(late, [{ broadcastId: id, inDoubt: 4, requeued: 0 }])
      const done = yield* waitOn(engine, id, "1 minute")
      assert.strictEqual(done.status, "completed")
      const final = yield* counts(id).pipe(Effect.provideContext(context))
      assertConsistent(final)
      assert.strictEqual(final.in_doubt, 4)
      assert.strictEqual(final.accepted, 6)
      assert.strictEqual(yield* memory.sentCount(phone(1)), 0)
    }))

  it.effect("at-least-once with takeOver: abandoned rows are sent again at once", () =>
    Effect.gen(function*() {
      const { context, engine, id } = yield* abandoned("at-least-once", 4)
      yield* engine.crash
      const restarted = yield* engineOver(context)
      const report = yield* restarted.broadcaster.recover({ takeOver: true })
      assert.deepStrictEqual(report, [{ broadcastId: id, inDoubt: 0, requeued: 4 }])
      const done = yield* waitOn(restarted, id, "1 second")
      assert.strictEqual(done.status, "completed")
      const final = yield* counts(id).pipe(Effect.provideContext(context))
      assert.strictEqual(final.accepted, 10)
      assert.strictEqual(final.in_doubt, 0)
    }))

  for (const inDoubt of ["at-most-once", "at-least-once"] as const) {
    it.effect(`${inDoubt}: an engine interrupted mid-submit; a new one recovers`, () =>
      Effect.gen(function*() {
        const context = yield* backing({ latency: "1 second" })
        const memory = Context.get(context, MemoryTransport.MemoryTransport)
        const first = yield* engineOver(context)
        const broadcast = yield* first.broadcaster.create({
          name: "interrupted",
          template,
          sender: "s",
          policy: policy(inDoubt, { concurrency: 4 })
        })
        yield* first.broadcaster.addRecipients(broadcast.id, recipients(20))
        yield* first.broadcaster.start(broadcast.id)
        yield* TestClock.adjust("1500 millis")
        yield* first.crash
        // 4 answered, 4 in flight when the process died; the 12 never handed over went back untouched.
        const atCrash = yield* counts(broadcast.id).pipe(Effect.provideContext(context))
        assert.deepStrictEqual([atCrash.accepted, atCrash.submitting, atCrash.pending], [4, 4, 12])
        const second = yield* engineOver(context)
        const report = yield* second.broadcaster.recover({ takeOver: true })
        assert.deepStrictEqual(report, [{
          broadcastId: broadcast.id,
          inDoubt: inDoubt === "at-most-once" ? 4 : 0,
          requeued: inDoubt === "at-most-once" ? 0 : 4
        }])
        const done = yield* waitOn(second, broadcast.id, "1 minute")
        assert.strictEqual(done.status, "completed")
        const final = yield* counts(broadcast.id).pipe(Effect.provideContext(context))
        assertConsistent(final)
        if (inDoubt === "at-most-once") {
          assert.deepStrictEqual([final.accepted, final.in_doubt], [16, 4])
        } else {
          assert.deepStrictEqual([final.accepted, final.in_doubt], [20, 0])
        }
        // Nobody got two messages: the interrupted calls never reached the provider.
        for (let n = 1; n <= 20; n++) assert.isAtMost(yield* memory.sentCount(phone(n)), 1)
      }))
  }

  it.effect("at-most-once, Kapso campaign: rows being added when the process died are added again, sent once", () =>
    Effect.gen(function*() {
      const context = yield* backing({ profile: "kapso", latency: "1 second" })
      const memory = Context.get(context, MemoryTransport.MemoryTransport)
      const first = yield* engineOver(context)
      const broadcast = yield* first.broadcaster.create({
        name: "adding",
        template,
        sender: "s",
        policy: policy("at-most-once")
      })
      yield* first.broadcaster.addRecipients(broadcast.id, recipients(20))
      yield* first.broadcaster.start(broadcast.id)
      yield* TestClock.adjust("500 millis")
      yield* first.crash
      assert.strictEqual((yield* counts(broadcast.id).pipe(Effect.provideContext(context))).submitting, 20)
      const second = yield* engineOver(context)
      const report = yield* second.broadcaster.recover({ takeOver: true })
      assert.deepStrictEqual(report, [{ broadcastId: broadcast.id, inDoubt: 0, requeued: 20 }])
      const done = yield* waitOn(second, broadcast.id, "1 minute")
      assert.strictEqual(done.status, "completed")
      const final = yield* counts(broadcast.id).pipe(Effect.provideContext(context))
      assertConsistent(final)
      assert.strictEqual(final.in_doubt, 0)
      for (let n = 1; n <= 20; n++) assert.strictEqual(yield* memory.sentCount(phone(n)), 1)
    }))

  it.effect("a broadcast this process is sending is left alone", () =>
    Effect.gen(function*() {
      const context = yield* backing()
      const engine = yield* engineOver(context)
      const broadcast = yield* engine.broadcaster.create({
        name: "live",
        template,
        sender: "s",
        policy: new Broadcast.Policy({ messagesPerSecond: 1, concurrency: 1 })
      })
      yield* engine.broadcaster.addRecipients(broadcast.id, recipients(5))
      yield* engine.broadcaster.start(broadcast.id)
      const report = yield* engine.broadcaster.recover({ takeOver: true })
      assert.deepStrictEqual(report, [{ broadcastId: broadcast.id, inDoubt: 0, requeued: 0 }])
      const done = yield* waitOn(engine, broadcast.id, "1 minute")
      assert.strictEqual(done.status, "completed")
      assert.strictEqual((yield* counts(broadcast.id).pipe(Effect.provideContext(context))).accepted, 5)
    }))
})
