/**
 * Testing your own code (`shipping.ts`) with crier's in-memory layers: `ProgressStore.layerMemory` for the store,
 * `MemoryTransport.layer` for the provider. Both run on the Effect `Clock`, which `it.effect` replaces with a
 * `TestClock`: a test moves time on with `TestClock.adjust` and never waits for real.
 *
 * The memory transport answers like the provider its `profile` names (`meta` by default), refuses what a test tells
 * it to (chosen numbers, whole requests, a request rate), and plays each accepted message's statuses; its
 * `MemoryTransport` service shows what was handed over.
 *
 *   pnpm --filter @crier/examples testing
 */
import * as Address from "@crier/core/Address"
import * as Broadcaster from "@crier/core/Broadcaster"
import * as MemoryTransport from "@crier/core/MemoryTransport"
import * as ProgressStore from "@crier/core/ProgressStore"
import * as TransportError from "@crier/core/TransportError"
import { assert, describe, it } from "@effect/vitest"
import { DateTime, type Duration, Effect, Fiber, Layer, Result, Stream } from "effect"
import { TestClock } from "effect/testing"
import { type Customer, notifyShipped, type Shipped } from "./shipping.ts"

/** A fresh engine over a fresh memory store and transport, for one test. */
const testLayer = (options: MemoryTransport.Options = {}) =>
  Broadcaster.Broadcaster.layer.pipe(
    Layer.provideMerge(MemoryTransport.layer(options)),
    Layer.provideMerge(ProgressStore.ProgressStore.layerMemory)
  )

const customers: ReadonlyArray<Customer> = [
  { phone: "+1 415 555 0101", firstName: "Ada", orderId: "A-1" },
  { phone: "(415) 555-0102", firstName: "Grace", orderId: "A-2" },
  { phone: "+55 11 98765-4321", firstName: "Zoë", orderId: "A-3" }
]

const address = (phone: string) => Result.getOrThrow(Address.parse(phone, { defaultRegion: "US" }))

/** Runs `notifyShipped` while the virtual clock moves on by `by`. */
const shipped = (list: ReadonlyArray<Customer>, by: Duration.Input = "1 minute") =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(notifyShipped(list, "15550001111"))
    yield* TestClock.adjust(by)
    return yield* Fiber.join(fiber)
  })

const counts = (result: Shipped) => ProgressStore.ProgressStore.use((store) => store.counts(result.broadcastId))

describe("notifyShipped", () => {
  it.effect("sends each customer the template with their own values", () =>
    Effect.gen(function*() {
      const result = yield* shipped(customers)
      assert.strictEqual(result.status, "completed")
      assert.strictEqual(result.added, 3)

      const handed = yield* MemoryTransport.MemoryTransport.use((memory) => memory.submitted)
      assert.deepStrictEqual(
        handed.map((message) => ({ to: String(message.address), body: message.params.body })),
        [
          { to: "+14155550101", body: { first_name: "Ada", order_id: "A-1" } },
          { to: "+14155550102", body: { first_name: "Grace", order_id: "A-2" } },
          { to: "+5511987654321", body: { first_name: "Zoë", order_id: "A-3" } }
        ]
      )
      // 20 a second, as the policy says: one message every 50 ms of virtual time.
      const times = handed.map((message) => DateTime.toEpochMillis(message.at))
      assert.deepStrictEqual(times.map((at) => at - times[0]!), [0, 50, 100])
    }).pipe(Effect.provide(testLayer())))

  it.effect("an invalid or repeated phone is reported and never sent", () =>
    Effect.gen(function*() {
      const result = yield* shipped([
        ...customers,
        { phone: "12345", firstName: "Nobody", orderId: "A-4" },
        { phone: "+14155550101", firstName: "Ada again", orderId: "A-5" }
      ])
      assert.strictEqual(result.added, 3)
      assert.strictEqual(result.duplicates, 1)
      assert.deepStrictEqual(result.invalid.map((entry) => entry.customer.orderId), ["A-4"])
      assert.strictEqual(yield* MemoryTransport.MemoryTransport.use((memory) => memory.requests), 3)
    }).pipe(Effect.provide(testLayer())))

  it.effect("with no usable phone, nothing is sent and the refusal is a typed error", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(notifyShipped([{ phone: "not a phone", firstName: "X", orderId: "A-9" }], "1"))
      assert.strictEqual(error._tag, "BroadcastRefused")
      assert.strictEqual(error._tag === "BroadcastRefused" && error.reason, "NoRecipients")
      assert.strictEqual(yield* MemoryTransport.MemoryTransport.use((memory) => memory.requests), 0)
    }).pipe(Effect.provide(testLayer())))

  it.effect("a number the provider refuses fails alone; the others are sent", () =>
    Effect.gen(function*() {
      const result = yield* shipped(customers)
      assert.strictEqual(result.status, "completed")
      const { failed, accepted, total } = yield* counts(result)
      assert.deepStrictEqual({ failed, accepted, total }, { failed: 1, accepted: 2, total: 3 })
      const page = yield* ProgressStore.ProgressStore.use((store) =>
        store.recipients(result.broadcastId, { status: "failed", limit: 10 })
      )
      assert.strictEqual(page.items[0]?.address, address("(415) 555-0102"))
      assert.strictEqual(page.items[0]?.status._tag === "failed" && page.items[0].status.code, "131026")
    }).pipe(Effect.provide(testLayer({
      reject: {
        items: new Map([[
          address("(415) 555-0102"),
          TransportError.fromMetaError({ code: 131026, message: "Message undeliverable", provider: "memory" })
        ]])
      }
    }))))

  it.effect("a template paused by Meta pauses the broadcast instead of failing every customer", () =>
    Effect.gen(function*() {
      const result = yield* shipped(customers)
      assert.strictEqual(result.status, "paused")
      assert.include(result.reason, "132015")
      const { failed, pending } = yield* counts(result)
      assert.deepStrictEqual({ failed, pending }, { failed: 0, pending: 3 })
    }).pipe(Effect.provide(testLayer({
      reject: {
        requests: TransportError.fromMetaError({ code: 132015, message: "Template paused", provider: "memory" })
      }
    }))))

  it.effect("past the provider's rate limit, the rest waits and is sent", () =>
    Effect.gen(function*() {
      const result = yield* shipped(customers)
      assert.strictEqual(result.status, "completed")
      const handed = yield* MemoryTransport.MemoryTransport.use((memory) => memory.submitted)
      const refused = handed.filter((message) => message.outcome._tag === "Failed")
      assert.isAbove(refused.length, 0, "the provider refused some requests")
      assert.strictEqual(handed.filter((message) => message.outcome._tag === "Accepted").length, 3)
    }).pipe(Effect.provide(testLayer({ rate: { limit: 1, windowMillis: 1000, count: "requests" } }))))

  it.effect("statuses the provider reports reach the store", () =>
    Effect.gen(function*() {
      // What a webhook intake does in production: the memory transport's events, applied as they come.
      const broadcaster = yield* Broadcaster.Broadcaster
      const memory = yield* MemoryTransport.MemoryTransport
      yield* memory.webhookEvents.pipe(
        Stream.runForEach((event) => broadcaster.applyStatusEvents([event])),
        Effect.forkChild
      )
      const result = yield* shipped(customers)
      const { delivered, read, total } = yield* counts(result)
      assert.deepStrictEqual({ delivered, read, total }, { delivered: 2, read: 1, total: 3 })
    }).pipe(Effect.provide(testLayer({
      lifecycle: {
        path: { sent: "1 second", delivered: "2 seconds" },
        byAddress: new Map([[address("+55 11 98765-4321"), { sent: "1 second", read: "5 seconds" }]])
      }
    }))))
})
