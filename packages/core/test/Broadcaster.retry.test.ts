// Retry timing per reason, bounded attempts, whole-batch retries, and the breaker.
import * as Broadcast from "@crier/core/Broadcast"
import { Broadcaster } from "@crier/core/Broadcaster"
import * as MemoryTransport from "@crier/core/MemoryTransport"
import * as RecipientStatus from "@crier/core/RecipientStatus"
import * as StatusEvent from "@crier/core/StatusEvent"
import * as TransportError from "@crier/core/TransportError"
import { assert, describe, it } from "@effect/vitest"
import { DateTime, Duration, Effect, Option } from "effect"
import { TestClock } from "effect/testing"
import {
  assertConsistent,
  counts,
  metaError,
  phone,
  refuseTimes,
  rowOf,
  runFor,
  started,
  statusOf,
  submitted,
  withEngine
} from "./Broadcaster.fixtures.ts"

/** When each hand-off to `seq` was answered, in millis. */
const handOffsOf = (seq: number) =>
  Effect.map(
    submitted,
    (calls) => calls.filter((call) => call.seq === seq).map((call) => DateTime.toEpochMillis(call.at))
  )

const oneAtATime = (fields: ConstructorParameters<typeof Broadcast.Policy>[0] = {}) =>
  new Broadcast.Policy({ concurrency: 1, ...fields })

describe("Broadcaster retries", () => {
  it.effect("retryAfter is honoured exactly, and holds the whole sender meanwhile", () =>
    Effect.gen(function*() {
      const id = yield* started(5, { policy: oneAtATime() })
      const done = yield* runFor(id)
      assert.strictEqual(done.status, "completed")
      assert.deepStrictEqual(yield* handOffsOf(3), [0, 7000])
      // The rows behind it waited for the hold, and were never counted as tried before it.
      assert.deepStrictEqual(yield* handOffsOf(4), [7000])
      assert.deepStrictEqual(yield* handOffsOf(5), [7000])
      assert.strictEqual((yield* rowOf(id, 4)).attempts, 1)
      assert.strictEqual((yield* rowOf(id, 3)).attempts, 2)
    }).pipe(withEngine({ reject: { items: refuseTimes(phone(3), metaError(130429, Duration.seconds(7)), 1) } })))

  it.effect("a pair rate limit (131056) retries that recipient only, after 4^attempt seconds", () =>
    Effect.gen(function*() {
      const id = yield* started(5, { policy: oneAtATime() })
      const done = yield* runFor(id)
      assert.strictEqual(done.status, "completed")
      assert.deepStrictEqual(yield* handOffsOf(2), [0, 4000, 20_000])
      for (const seq of [1, 3, 4, 5]) assert.deepStrictEqual(yield* handOffsOf(seq), [0])
      assert.strictEqual((yield* statusOf(id, 2))._tag, "accepted")
    }).pipe(withEngine({ reject: { items: refuseTimes(phone(2), metaError(131056), 2) } })))

  it.effect("transient errors back off exponentially, and attempts are bounded: failed with the last reason", () =>
    Effect.gen(function*() {
      const id = yield* started(3, { policy: oneAtATime({ maxAttempts: 4 }) })
      const done = yield* runFor(id)
      assert.strictEqual(done.status, "completed")
      const times = yield* handOffsOf(1)
      assert.strictEqual(times.length, 4)
      const gaps = times.slice(1).map((time, i) => time - times[i]!)
      const floors = [1000, 2000, 4000]
      gaps.forEach((gap, i) => {
        assert.isAtLeast(gap, floors[i]!)
        assert.isBelow(gap, floors[i]! * 1.5)
      })
      const row = yield* rowOf(id, 1)
      assert.strictEqual(row.attempts, 4)
      assert.strictEqual(row.status._tag, "failed")
      assert.isTrue(row.status._tag === "failed" && row.status.code === "131000")
      assert.include(row.status._tag === "failed" ? row.status.reason : "", "ProviderUnavailable")
      assert.deepStrictEqual(yield* handOffsOf(2), [0])
    }).pipe(withEngine({ reject: { items: refuseTimes(phone(1), metaError(131000)) } })))

  it.effect("a permanent recipient failure is never retried", () =>
    Effect.gen(function*() {
      const id = yield* started(3)
      assert.strictEqual((yield* runFor(id)).status, "completed")
      assert.deepStrictEqual(yield* handOffsOf(2), [0])
      const status = yield* statusOf(id, 2)
      assert.isTrue(status._tag === "failed" && status.code === "131026")
      const final = yield* counts(id)
      assertConsistent(final)
      assert.strictEqual(final.failed, 1)
    }).pipe(withEngine({ reject: { items: refuseTimes(phone(2), metaError(131026)) } })))

  it.effect("a batch that fails as a whole is retried after the backoff, without burning the rest of the list", () => {
    let calls = 0
    return Effect.gen(function*() {
      const id = yield* started(300, { policy: new Broadcast.Policy({ batchSize: 100 }) })
      assert.strictEqual((yield* runFor(id)).status, "completed")
      const times = [...new Set((yield* submitted).map((call) => DateTime.toEpochMillis(call.at)))]
      assert.strictEqual(times.length, 3)
      assert.isTrue(times[1]! >= 1000 && times[1]! < 1500)
      assert.isTrue(times[2]! - times[1]! >= 2000 && times[2]! - times[1]! < 3000)
      assert.strictEqual((yield* rowOf(id, 1)).attempts, 3)
      assert.strictEqual((yield* rowOf(id, 101)).attempts, 1)
      assert.strictEqual((yield* rowOf(id, 300)).attempts, 1)
      assert.strictEqual(calls, 5)
    }).pipe(withEngine({
      profile: "keebai",
      reject: { requests: () => ++calls <= 2 ? Option.some(metaError(131000)) : Option.none() }
    }))
  })
})

describe("Broadcaster timeouts", () => {
  const timeout = new TransportError.TransportError({
    provider: "memory",
    operation: "submit",
    reason: new TransportError.Timeout({ message: "no answer within 30s" })
  })
  const inDoubt = (policy: Broadcast.InDoubtPolicy, fields: ConstructorParameters<typeof Broadcast.Policy>[0] = {}) =>
    new Broadcast.Policy({ inDoubt: policy, ...fields })

  it.effect("at-most-once: a message with no answer is left in doubt, never sent again; its webhook settles it", () =>
    Effect.gen(function*() {
      const broadcaster = yield* Broadcaster
      const id = yield* started(3, { policy: inDoubt("at-most-once", { concurrency: 1 }) })
      assert.strictEqual((yield* runFor(id)).status, "completed")
      assert.deepStrictEqual(yield* handOffsOf(2), [0])
      const row = yield* rowOf(id, 2)
      assert.deepStrictEqual(row.status, RecipientStatus.inDoubt)
      assert.strictEqual(row.attempts, 1)
      assert.include(row.lastError ?? "", "no answer within 30s")
      const final = yield* counts(id)
      assertConsistent(final)
      assert.deepStrictEqual([final.accepted, final.in_doubt], [2, 1])
      // The provider had sent it after all: the status webhook names the recipient.
      yield* broadcaster.applyStatusEvents([
        new StatusEvent.StatusEvent({
          ref: { _tag: "ById", broadcastId: id, seq: 2 },
          status: RecipientStatus.delivered,
          at: DateTime.makeUnsafe(5_000)
        })
      ])
      assert.deepStrictEqual(yield* statusOf(id, 2), RecipientStatus.delivered)
    }).pipe(withEngine({ reject: { items: refuseTimes(phone(2), timeout, 1) } })))

  it.effect("at-least-once: a message with no answer is retried", () =>
    Effect.gen(function*() {
      const id = yield* started(3, { policy: inDoubt("at-least-once", { concurrency: 1 }) })
      assert.strictEqual((yield* runFor(id)).status, "completed")
      const times = yield* handOffsOf(2)
      assert.strictEqual(times.length, 2)
      assert.strictEqual((yield* statusOf(id, 2))._tag, "accepted")
      assert.strictEqual((yield* counts(id)).in_doubt, 0)
    }).pipe(withEngine({ reject: { items: refuseTimes(phone(2), timeout, 1) } })))

  it.effect("at-most-once: a whole batch with no answer is left in doubt; the rest of the list goes on", () => {
    let calls = 0
    return Effect.gen(function*() {
      const id = yield* started(300, { policy: inDoubt("at-most-once", { batchSize: 100 }) })
      assert.strictEqual((yield* runFor(id)).status, "completed")
      assert.strictEqual(calls, 3)
      const final = yield* counts(id)
      assertConsistent(final)
      assert.deepStrictEqual([final.in_doubt, final.delivered], [100, 200])
      assert.deepStrictEqual((yield* rowOf(id, 1)).status, RecipientStatus.inDoubt)
      assert.deepStrictEqual((yield* rowOf(id, 101)).status, RecipientStatus.delivered)
    }).pipe(withEngine({
      profile: "keebai",
      reject: { requests: () => ++calls === 1 ? Option.some(timeout) : Option.none() }
    }))
  })

  it.effect("at-most-once: after 3 calls in a row with no answer the broadcast pauses, the rest untouched", () => {
    let silent = true
    return Effect.gen(function*() {
      const broadcaster = yield* Broadcaster
      const id = yield* started(10, { policy: inDoubt("at-most-once", { concurrency: 1 }) })
      const paused = yield* runFor(id)
      assert.strictEqual(paused.status, "paused")
      assert.include(paused.statusReason ?? "", "gave no answer to 3 calls in a row")
      const atPause = yield* counts(id)
      assertConsistent(atPause)
      assert.deepStrictEqual([atPause.in_doubt, atPause.pending], [3, 7])
      // The provider answers again; the operator resumes: the rest goes, and the doubt is not forgotten.
      silent = false
      yield* broadcaster.resume(id)
      assert.strictEqual((yield* runFor(id)).status, "completed")
      const final = yield* counts(id)
      assert.deepStrictEqual([final.in_doubt, final.accepted], [3, 7])
      for (const seq of [1, 2, 3]) assert.deepStrictEqual(yield* handOffsOf(seq), [0])
    }).pipe(withEngine({ reject: { requests: () => silent ? Option.some(timeout) : Option.none() } }))
  })

  it.effect("calls that get no answer only in a row pause: an answer in between starts the count again", () => {
    let calls = 0
    return Effect.gen(function*() {
      const id = yield* started(12, { policy: inDoubt("at-most-once", { concurrency: 1 }) })
      assert.strictEqual((yield* runFor(id)).status, "completed")
      const final = yield* counts(id)
      assert.deepStrictEqual([final.in_doubt, final.accepted], [8, 4])
    }).pipe(withEngine({ reject: { requests: () => ++calls % 3 === 0 ? Option.none() : Option.some(timeout) } }))
  })

  it.effect("adding to a remote campaign (Kapso) sends nothing yet: a batch with no answer is added again", () => {
    let calls = 0
    return Effect.gen(function*() {
      const id = yield* started(300, { policy: inDoubt("at-most-once", { batchSize: 100 }) })
      assert.strictEqual((yield* runFor(id)).status, "completed")
      assert.strictEqual(calls, 4)
      const final = yield* counts(id)
      assertConsistent(final)
      assert.strictEqual(final.in_doubt, 0)
      assert.strictEqual((yield* rowOf(id, 1)).attempts, 2)
    }).pipe(withEngine({
      profile: "kapso",
      reject: { requests: () => ++calls === 1 ? Option.some(timeout) : Option.none() }
    }))
  })
})

describe("Broadcaster breaker", () => {
  it.effect("template paused mid-send: paused with the reason, the rest still pending, nothing more sent", () => {
    let calls = 0
    return Effect.gen(function*() {
      const broadcaster = yield* Broadcaster
      const memory = yield* MemoryTransport.MemoryTransport
      const id = yield* started(200, { policy: oneAtATime() })
      const paused = yield* runFor(id)
      assert.strictEqual(paused.status, "paused")
      assert.include(paused.statusReason ?? "", "TemplateRejected")
      assert.include(paused.statusReason ?? "", "132015")
      const atPause = yield* counts(id)
      assertConsistent(atPause)
      assert.strictEqual(atPause.accepted, 30)
      assert.strictEqual(atPause.pending, 170)
      assert.strictEqual(atPause.submitting, 0)
      yield* TestClock.adjust("1 hour")
      assert.strictEqual(yield* memory.requests, 31)
      // The operator fixes the template and resumes: the rest goes, each address once.
      yield* memory.setBehaviour({ reject: {} })
      const resumed = yield* broadcaster.resume(id)
      assert.strictEqual(resumed.statusReason, undefined)
      const done = yield* runFor(id)
      assert.strictEqual(done.status, "completed")
      assert.strictEqual((yield* counts(id)).accepted, 200)
      assert.strictEqual((yield* rowOf(id, 31)).attempts, 1)
      for (const n of [1, 31, 200]) assert.strictEqual(yield* memory.sentCount(phone(n)), 1)
    }).pipe(withEngine({
      reject: { requests: () => ++calls > 30 ? Option.some(metaError(132015)) : Option.none() }
    }))
  })

  it.effect("one item refused with a broadcast-scope reason trips it too; the rest of its batch is recorded", () =>
    Effect.gen(function*() {
      const id = yield* started(200, { policy: new Broadcast.Policy({ batchSize: 100 }) })
      const paused = yield* runFor(id)
      assert.strictEqual(paused.status, "paused")
      const atPause = yield* counts(id)
      assert.strictEqual(atPause.accepted, 99)
      assert.strictEqual(atPause.pending, 101)
      assert.deepStrictEqual(yield* statusOf(id, 10), RecipientStatus.pending)
      assert.strictEqual((yield* rowOf(id, 10)).attempts, 0)
    }).pipe(withEngine({ profile: "keebai", reject: { items: refuseTimes(phone(10), metaError(131048)) } })))

  it.effect("an account-scope reason (bad token) pauses every broadcast sending on the transport", () => {
    let failing = true
    return Effect.gen(function*() {
      const broadcaster = yield* Broadcaster
      const slow = yield* started(100, {
        name: "slow",
        from: 1000,
        policy: new Broadcast.Policy({ messagesPerSecond: 1 })
      })
      yield* TestClock.adjust("5 seconds")
      const bad = yield* started(10, { name: "bad" })
      yield* TestClock.adjust("1 second")
      for (const id of [bad, slow]) {
        const broadcast = yield* broadcaster.get(id)
        assert.strictEqual(broadcast.status, "paused", broadcast.name)
        assert.include(broadcast.statusReason ?? "", "Unauthorized")
      }
      failing = false
      yield* broadcaster.resume(slow)
      assert.strictEqual((yield* runFor(slow, "5 minutes")).status, "completed")
    }).pipe(withEngine({
      reject: {
        requests: (_, broadcast) => failing && broadcast.name === "bad" ? Option.some(metaError(190)) : Option.none()
      }
    }))
  })
})
