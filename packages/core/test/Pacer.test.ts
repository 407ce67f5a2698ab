import * as Broadcast from "@crier/core/Broadcast"
import type { Capabilities } from "@crier/core/BroadcastTransport"
import * as Pacer from "@crier/core/Pacer"
import * as TemplateSpec from "@crier/core/TemplateSpec"
import { assert, describe, it } from "@effect/vitest"
import { Clock, DateTime, Effect, Fiber, Option } from "effect"
import { TestClock } from "effect/testing"
import { limiter, stallingLimiter } from "./Broadcaster.fixtures.ts"

const capabilities: Capabilities = {
  maxBatchSize: 1,
  remoteCampaign: false,
  startsOnSubmit: true,
  tracking: "webhook",
  providerDedupe: false,
  providerPaced: false,
  requestBudgets: []
}

const template = new TemplateSpec.TemplateSpec({
  name: "promo",
  language: "en",
  body: { _tag: "positional", count: 0 },
  header: "none",
  buttons: []
})

const broadcast = (policy: ConstructorParameters<typeof Broadcast.Policy>[0], sender = "sender") =>
  Effect.map(Broadcast.makeId, (id) =>
    new Broadcast.Broadcast({
      id,
      name: "pacing",
      transport: "memory",
      sender,
      template,
      policy: new Broadcast.Policy(policy),
      status: "sending",
      createdAt: DateTime.makeUnsafe(0)
    }))

/** Runs `times` acquisitions (with `concurrency` in flight) and returns when each was granted, in millis. */
const grants = (
  pacer: Pacer.Pacer,
  target: Broadcast.Broadcast,
  times: number,
  options: { readonly concurrency?: number; readonly messages?: number; readonly caps?: Capabilities } = {}
) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(
      Effect.forEach(
        Array.from({ length: times }),
        () => pacer.acquire(target, options.caps ?? capabilities, options.messages ?? 1, Clock.currentTimeMillis),
        { concurrency: options.concurrency ?? 1 }
      )
    )
    yield* TestClock.adjust("10 hours")
    return (yield* Fiber.join(fiber)).slice().sort((a, b) => a - b)
  })

/** The most grants (weighted) in any window [t, t + width) of the timeline. */
const busiest = (times: ReadonlyArray<number>, width: number, weight = 1): number => {
  let most = 0
  for (let i = 0, j = 0; i < times.length; i++) {
    while (times[i]! - times[j]! >= width) j++
    most = Math.max(most, (i - j + 1) * weight)
  }
  return most
}

describe("Pacer", () => {
  it.effect("1,000 messages at 50/s take 20 virtual seconds, never more than 50 in any second", () =>
    Effect.gen(function*() {
      const pacer = yield* Pacer.make
      const target = yield* broadcast({ messagesPerSecond: 50 })
      const times = yield* grants(pacer, target, 1000, { concurrency: 16 })
      assert.strictEqual(times[0], 0)
      // The 1,000th message goes at 999/50 s: the run takes 20 s within one 20 ms tick.
      assert.strictEqual(times[999], 19_980)
      assert.strictEqual(busiest(times, 1000), 50)
      for (let i = 1; i < times.length; i++) assert.strictEqual(times[i]! - times[i - 1]!, 20)
    }).pipe(Effect.provide(limiter)))

  it.effect("after a stall, the overdue messages catch up, but no second sees more than the rate", () =>
    Effect.gen(function*() {
      const pacer = yield* Pacer.make
      const target = yield* broadcast({ messagesPerSecond: 50 })
      const times = yield* grants(pacer, target, 1000, { concurrency: 16 })
      // The 14 due from 5,020 to 5,280 woke at 5,300 and went with its own: without the log, [5,300, 6,300) saw 64.
      assert.strictEqual(times.filter((time) => time === 5300).length, 15)
      assert.strictEqual(busiest(times, 1000), 50)
      // The catch-up keeps the rate: the run still ends at 19,980.
      assert.strictEqual(times[999], 19_980)
    }).pipe(Effect.provide(stallingLimiter(5010, 5300))))

  it.effect("a hand-off counts once it has started: a clock tick before the transport's read lets no 51st in", () =>
    Effect.gen(function*() {
      const pacer = yield* Pacer.make
      const target = yield* broadcast({ messagesPerSecond: 50 })
      const test = yield* Clock.Clock
      let skew = 0
      const now = () => test.currentTimeMillisUnsafe() + skew
      // The TestClock, ahead by `skew`: under load, the transport's own read of the clock may fall in the millisecond
      // after the pacer's.
      const ticking: Clock.Clock = {
        currentTimeMillisUnsafe: now,
        currentTimeMillis: Effect.sync(now),
        currentTimeNanosUnsafe: () => BigInt(now()) * 1_000_000n,
        currentTimeNanos: Effect.sync(() => BigInt(now()) * 1_000_000n),
        monotonicTimeNanosUnsafe: () => test.monotonicTimeNanosUnsafe(),
        monotonicTimeNanos: test.monotonicTimeNanos,
        sleep: (duration) => test.sleep(duration)
      }
      let started = 0
      // The transport's instant for the hand-off; the clock ticks over just before it on every 7th.
      const request = Effect.sync(() => {
        if (++started % 7 === 0) skew++
        return now()
      })
      const fiber = yield* Effect.forkChild(
        Effect.forEach(Array.from({ length: 1000 }), () => pacer.acquire(target, capabilities, 1, request), {
          concurrency: 16
        }).pipe(Effect.provideService(Clock.Clock, ticking))
      )
      yield* TestClock.adjust("1 minute")
      const times = (yield* Fiber.join(fiber)).slice().sort((a, b) => a - b)
      assert.strictEqual(busiest(times, 1000), 50)
      // Each tick costs the rate at most its millisecond.
      assert.isAtMost(times[999]! - times[0]!, 19_980 + skew)
    }).pipe(Effect.provide(limiter)))

  it.effect("a batch of n takes n tokens and goes when its last one is due", () =>
    Effect.gen(function*() {
      const pacer = yield* Pacer.make
      const target = yield* broadcast({ messagesPerSecond: 50 })
      const batches = { ...capabilities, maxBatchSize: 5000 }
      const times = yield* grants(pacer, target, 20, { messages: 50, caps: batches })
      assert.deepStrictEqual(times, Array.from({ length: 20 }, (_, k) => 980 + 1000 * k))
      assert.strictEqual(busiest(times, 1000, 50), 50)
      assert.strictEqual(Pacer.batchLimit(target.policy, batches), 50)
    }).pipe(Effect.provide(limiter)))

  it.effect("two broadcasts of one sender share its rate", () =>
    Effect.gen(function*() {
      const pacer = yield* Pacer.make
      const a = yield* broadcast({ messagesPerSecond: 10 })
      const b = yield* broadcast({ messagesPerSecond: 10 })
      const other = yield* broadcast({ messagesPerSecond: 10 }, "another sender")
      const fiber = yield* Effect.forkChild(
        Effect.all(
          [a, b, other].map((target) =>
            Effect.forEach(
              Array.from({ length: 10 }),
              () => pacer.acquire(target, capabilities, 1, Clock.currentTimeMillis)
            )
          ),
          { concurrency: "unbounded" }
        )
      )
      yield* TestClock.adjust("1 minute")
      const [first, second, third] = yield* Fiber.join(fiber)
      const shared = [...first!, ...second!].sort((x, y) => x - y)
      assert.strictEqual(shared[19], 1900)
      assert.strictEqual(busiest(shared, 1000), 10)
      assert.strictEqual(third![9], 900)
    }).pipe(Effect.provide(limiter)))

  it.effect("a request budget of 60/min spaces calls a second apart, per transport", () =>
    Effect.gen(function*() {
      const pacer = yield* Pacer.make
      const budget = { requestBudgets: [new Broadcast.RequestBudget({ limit: 60, windowMillis: 60_000 })] }
      const target = yield* broadcast(budget)
      const batches = { ...capabilities, maxBatchSize: 5000, providerPaced: true }
      const times = yield* grants(pacer, target, 150, { messages: 5000, caps: batches })
      assert.strictEqual(times[149], 149_000)
      assert.strictEqual(busiest(times, 60_000), 60)
    }).pipe(Effect.provide(limiter)))

  it.effect("the transport's own budgets apply without a policy, and once when the policy repeats them", () =>
    Effect.gen(function*() {
      const perMinute = new Broadcast.RequestBudget({ limit: 60, windowMillis: 60_000 })
      const caps = { ...capabilities, maxBatchSize: 5000, providerPaced: true, requestBudgets: [perMinute] }
      for (const policy of [{}, { requestBudgets: [perMinute] }]) {
        const pacer = yield* Pacer.make
        const target = yield* broadcast(policy)
        const times = yield* grants(pacer, target, 120, { messages: 5000, caps })
        assert.strictEqual(times[119]! - times[0]!, 119_000)
        assert.strictEqual(busiest(times, 60_000), 60)
        assert.strictEqual(Pacer.pacingMillis(target.policy, caps, 5000), 1000)
      }
    }).pipe(Effect.provide(limiter)))

  it.effect("two budgets: the tighter one rules", () =>
    Effect.gen(function*() {
      const pacer = yield* Pacer.make
      const target = yield* broadcast({
        requestBudgets: [
          new Broadcast.RequestBudget({ limit: 60, windowMillis: 60_000 }),
          new Broadcast.RequestBudget({ limit: 1000, windowMillis: 3_600_000 })
        ]
      })
      const times = yield* grants(pacer, target, 100, { caps: { ...capabilities, maxBatchSize: 5000 } })
      assert.strictEqual(busiest(times, 60_000), Math.ceil(60_000 / 3600))
      assert.isAtMost(busiest(times, 3_600_000), 1000)
      assert.strictEqual(times[99], 99 * 3600)
    }).pipe(Effect.provide(limiter)))

  it.effect("batch pacing lets N go together, then waits T", () =>
    Effect.gen(function*() {
      const pacer = yield* Pacer.make
      const target = yield* broadcast({ batchPacing: { size: 500, everyMillis: 10_000 } })
      const batches = { ...capabilities, maxBatchSize: 5000 }
      assert.strictEqual(Pacer.batchLimit(target.policy, batches), 500)
      const times = yield* grants(pacer, target, 4, { messages: 500, caps: batches })
      assert.deepStrictEqual(times, [0, 10_000, 20_000, 30_000])
    }).pipe(Effect.provide(limiter)))

  it.effect("a provider that paces itself gets no message pacing, but keeps its request budget", () =>
    Effect.gen(function*() {
      const pacer = yield* Pacer.make
      const selfPaced = { ...capabilities, maxBatchSize: 1000, providerPaced: true }
      const free = yield* broadcast({ messagesPerSecond: 1, batchPacing: { size: 10, everyMillis: 60_000 } })
      assert.deepStrictEqual(yield* grants(pacer, free, 3, { messages: 1000, caps: selfPaced }), [0, 0, 0])
      assert.strictEqual(Pacer.batchLimit(free.policy, selfPaced), Number.POSITIVE_INFINITY)
      const budgeted = yield* broadcast({
        messagesPerSecond: 1,
        requestBudgets: [new Broadcast.RequestBudget({ limit: 2, windowMillis: 1000 })]
      }, "budgeted")
      const times = yield* grants(pacer, budgeted, 3, { messages: 1000, caps: selfPaced })
      assert.deepStrictEqual(times.map((time) => time - times[0]!), [0, 500, 1000])
    }).pipe(Effect.provide(limiter)))

  it.effect("a slow-down holds the sender until its instant, then the rate resumes without a burst", () =>
    Effect.gen(function*() {
      const pacer = yield* Pacer.make
      const target = yield* broadcast({ messagesPerSecond: 10 })
      const sibling = yield* broadcast({ messagesPerSecond: 10 })
      const elsewhere = yield* broadcast({}, "elsewhere")
      yield* pacer.slowDown(target, "sender", DateTime.makeUnsafe(5000))
      assert.deepStrictEqual(yield* pacer.heldUntil(sibling), Option.some(DateTime.makeUnsafe(5000)))
      assert.isTrue(Option.isNone(yield* pacer.heldUntil(elsewhere)))
      const fiber = yield* Effect.forkChild(Effect.gen(function*() {
        yield* pacer.awaitRelease(target)
        return yield* Effect.forEach(
          Array.from({ length: 5 }),
          () => pacer.acquire(target, capabilities, 1, Clock.currentTimeMillis)
        )
      }))
      yield* TestClock.adjust("1 minute")
      assert.deepStrictEqual(yield* Fiber.join(fiber), [5000, 5100, 5200, 5300, 5400])
      assert.isTrue(Option.isNone(yield* pacer.heldUntil(target)))
      // A credential-wide hold reaches every sender of the transport.
      yield* pacer.slowDown(target, "transport", DateTime.makeUnsafe(70_000))
      assert.isTrue(Option.isSome(yield* pacer.heldUntil(elsewhere)))
    }).pipe(Effect.provide(limiter)))

  it("estimates how long a claim's pacing takes, for its lease", () => {
    const policy = new Broadcast.Policy({
      messagesPerSecond: 50,
      requestBudgets: [new Broadcast.RequestBudget({ limit: 60, windowMillis: 60_000 })]
    })
    assert.strictEqual(Pacer.pacingMillis(policy, capabilities, 100), 2000 + 100_000)
    assert.strictEqual(Pacer.pacingMillis(policy, { ...capabilities, maxBatchSize: 5000 }, 50), 1000 + 1000)
    assert.strictEqual(Pacer.pacingMillis(new Broadcast.Policy({}), capabilities, 100), 0)
  })
})
