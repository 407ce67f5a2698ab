// Shared setup of the Broadcaster tests: the memory store and transport, recipients, and clock helpers.
import * as Address from "@crier/core/Address"
import type * as Broadcast from "@crier/core/Broadcast"
import { Broadcaster } from "@crier/core/Broadcaster"
import { BroadcastTransport } from "@crier/core/BroadcastTransport"
import * as MemoryTransport from "@crier/core/MemoryTransport"
import * as ProgressStore from "@crier/core/ProgressStore"
import * as Recipient from "@crier/core/Recipient"
import type * as RecipientStatus from "@crier/core/RecipientStatus"
import * as TemplateParams from "@crier/core/TemplateParams"
import * as TemplateSpec from "@crier/core/TemplateSpec"
import * as TransportError from "@crier/core/TransportError"
import { assert } from "@effect/vitest"
import { Clock, Context, Duration, Effect, Exit, Fiber, Layer, Option, Scope, Stream } from "effect"
import { RateLimiter } from "effect/persistence"
import { TestClock } from "effect/testing"

export const template = new TemplateSpec.TemplateSpec({
  name: "spring_sale",
  language: "en",
  body: { _tag: "positional", count: 1 },
  header: "none",
  buttons: [],
  bodyText: "Hi {{1}}, our spring sale starts today"
})

export const phone = (n: number): Address.Address => Address.PhoneNumber.make(`+55119${70_000_000 + n}`)

export const recipient = (n: number, name = `Name${n}`): Recipient.NewRecipient =>
  new Recipient.NewRecipient({
    address: phone(n),
    params: new TemplateParams.TemplateParams({ body: [name], buttons: [] }),
    metadata: {}
  })

/** Recipients `from` .. `from + count - 1`. */
export const recipients = (count: number, from = 1): ReadonlyArray<Recipient.NewRecipient> =>
  Array.from({ length: count }, (_, i) => recipient(from + i))

export type Services = Broadcaster | MemoryTransport.MemoryTransport | BroadcastTransport | ProgressStore.ProgressStore

/**
 * The engine over `ProgressStore.ProgressStore.layerMemory` and a `MemoryTransport`; `Broadcaster.layer` unless a
 * `RateLimiter` is given.
 */
export const layer = (
  options: MemoryTransport.Options = {},
  rateLimiter?: Layer.Layer<RateLimiter.RateLimiter>
): Layer.Layer<Services> =>
  (rateLimiter === undefined
    ? Broadcaster.layer
    : Broadcaster.layerWithRateLimiter.pipe(Layer.provide(rateLimiter))).pipe(
      Layer.provideMerge(Layer.merge(ProgressStore.ProgressStore.layerMemory, MemoryTransport.layer(options)))
    )

/** The in-process `RateLimiter`, as `Broadcaster.layer` uses it. */
export const limiter = RateLimiter.layer.pipe(Layer.provide(RateLimiter.layerStoreMemory))

/**
 * `limiter`, except that every wait that would end within [from, to) ends at `to`: the fibers due then all wake
 * late and together, as after a GC pause or on a busy CPU.
 */
export const stallingLimiter = (from: number, to: number): Layer.Layer<RateLimiter.RateLimiter> =>
  Layer.effect(
    RateLimiter.RateLimiter,
    Effect.map(RateLimiter.RateLimiter, (inner): RateLimiter.RateLimiter => ({
      ...inner,
      consume: (options) =>
        Effect.flatMap(inner.consume(options), (result) =>
          Effect.map(Clock.currentTimeMillis, (now) => {
            const wake = now + Duration.toMillis(result.delay)
            return wake >= from && wake < to ? { ...result, delay: Duration.millis(to - now) } : result
          }))
    }))
  ).pipe(Layer.provide(limiter))

/** Runs a test body against a fresh engine. */
export const withEngine =
  (options: MemoryTransport.Options = {}, rateLimiter?: Layer.Layer<RateLimiter.RateLimiter>) =>
  <A, E, R>(body: Effect.Effect<A, E, R>) => Effect.provide(body, layer(options, rateLimiter))

/** The store and transport alone, so a test can build engines over them and "crash" one by closing its scope. */
export const backing = (options: MemoryTransport.Options = {}) =>
  Layer.build(Layer.merge(ProgressStore.ProgressStore.layerMemory, MemoryTransport.layer(options)))

export const engineOver = Effect.fnUntraced(function*(
  context: Context.Context<MemoryTransport.MemoryTransport | BroadcastTransport | ProgressStore.ProgressStore>
) {
  const scope = yield* Scope.make()
  const built = yield* Layer.buildWithScope(Broadcaster.layer.pipe(Layer.provide(Layer.succeedContext(context))), scope)
  return { broadcaster: Context.get(built, Broadcaster), crash: Scope.close(scope, Exit.void) }
})

/** `Broadcaster.wait`, with the clock moved on by `by` meanwhile. */
export const runFor = (id: Broadcast.BroadcastId, by: Duration.Input = "1 hour") =>
  Effect.gen(function*() {
    const broadcaster = yield* Broadcaster
    const fiber = yield* Effect.forkChild(broadcaster.wait(id))
    yield* TestClock.adjust(by)
    return yield* Fiber.join(fiber)
  })

/** Creates a broadcast, adds `count` recipients and starts it. */
export const started = (
  count: number,
  options: { readonly policy?: Broadcast.Policy; readonly name?: string; readonly from?: number } = {}
) =>
  Effect.gen(function*() {
    const broadcaster = yield* Broadcaster
    const broadcast = yield* broadcaster.create({
      name: options.name ?? "spring sale",
      template,
      sender: "15550001111",
      ...(options.policy === undefined ? {} : { policy: options.policy })
    })
    yield* broadcaster.addRecipients(broadcast.id, recipients(count, options.from))
    yield* broadcaster.start(broadcast.id)
    return broadcast.id
  })

export const counts = (id: Broadcast.BroadcastId) => ProgressStore.ProgressStore.use((store) => store.counts(id))

/** Counts must add up to the total. */
export const assertConsistent = (counts: ProgressStore.Counts) => {
  const sum = Object.entries(counts).reduce((acc, [key, value]) => key === "total" ? acc : acc + value, 0)
  assert.strictEqual(sum, counts.total, `counts ${JSON.stringify(counts)} do not add up`)
}

export const rowOf = (id: Broadcast.BroadcastId, seq: number) =>
  Effect.gen(function*() {
    const store = yield* ProgressStore.ProgressStore
    const page = yield* store.recipients(id, { afterSeq: seq - 1, limit: 1 })
    return page.items[0]!
  })

export const statusOf = (id: Broadcast.BroadcastId, seq: number) =>
  Effect.map(rowOf(id, seq), (row): RecipientStatus.RecipientStatus => row.status)

/** Every hand-off, with the clock time it was answered at. */
export const submitted = MemoryTransport.MemoryTransport.use((memory) => memory.submitted)

/** Feeds the transport's webhook events into the engine, as a webhook endpoint would. */
export const webhookIntake = Effect.gen(function*() {
  const memory = yield* MemoryTransport.MemoryTransport
  const broadcaster = yield* Broadcaster
  return yield* Effect.forkChild(
    Stream.runForEach(memory.webhookEvents, (event) => broadcaster.applyStatusEvents([event]))
  )
})

export const metaError = (code: number, retryAfter?: Duration.Duration) =>
  TransportError.fromMetaError({ code, provider: "memory", operation: "submit", retryAfter })

/** An item rule that refuses `address` with `error` on its first `times` hand-offs (every time if omitted). */
export const refuseTimes = (
  address: Address.Address,
  error: TransportError.TransportError,
  times = Number.POSITIVE_INFINITY
) => {
  let seen = 0
  return (item: { readonly address: Address.Address }) =>
    item.address === address && seen++ < times ? Option.some(error) : Option.none()
}

export const seconds = (millis: number) => Duration.toSeconds(Duration.millis(millis))
