// KapsoBroadcasts over real HTTP against the testkit's Kapso emulator on 127.0.0.1.
import * as Address from "@crier/core/Address"
import * as Broadcast from "@crier/core/Broadcast"
import { BroadcastTransport } from "@crier/core/BroadcastTransport"
import type * as StatusEvent from "@crier/core/StatusEvent"
import * as TemplateParams from "@crier/core/TemplateParams"
import * as TemplateSpec from "@crier/core/TemplateSpec"
import * as TransportSuite from "@crier/core/testing/TransportSuite"
import * as KapsoBroadcasts from "@crier/kapso/KapsoBroadcasts"
import * as KapsoEmulator from "@crier/testkit/KapsoEmulator"
import { NodeHttpClient } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Layer, Option, Redacted } from "effect"
import {
  against,
  configId,
  emulatorOptions,
  item,
  items,
  makeBroadcast,
  namedTemplate,
  phone,
  template
} from "./fixtures.ts"

/** A fresh emulator and a transport pointed at it. */
const emulated = (options: KapsoEmulator.Options = {}, transport: Partial<KapsoBroadcasts.Options> = {}) =>
  Layer.unwrap(
    KapsoEmulator.KapsoEmulator.useSync((emulator) => KapsoBroadcasts.layer({ ...against(emulator), ...transport }))
  ).pipe(
    Layer.provideMerge(KapsoEmulator.layer(emulatorOptions(options))),
    Layer.provide(NodeHttpClient.layerUndici)
  )

TransportSuite.suite("kapso broadcasts over HTTP (emulator)", {
  layer: emulated(),
  statusEvents: TransportSuite.polled({ interval: Duration.millis(100) }),
  providerMessageIds: true,
  live: true
})

TransportSuite.suite("kapso broadcasts over HTTP (emulator counting errors from 0)", {
  layer: emulated({ errorIndexBase: 0 }),
  statusEvents: TransportSuite.polled({ interval: Duration.millis(100) }),
  providerMessageIds: true,
  live: true
})

const opened = (options: Parameters<typeof makeBroadcast>[0] = {}) =>
  Effect.gen(function*() {
    const transport = yield* BroadcastTransport
    const made = yield* makeBroadcast(options)
    const remoteId = yield* transport.open(made)
    return new Broadcast.Broadcast({ ...made, remoteId: Option.getOrThrow(remoteId) })
  })

/** Polls until done, at most `within`. */
const pollAll = (broadcast: Broadcast.Broadcast, within: Duration.Input = Duration.seconds(20)) =>
  Effect.gen(function*() {
    const transport = yield* BroadcastTransport
    const events: Array<StatusEvent.StatusEvent> = []
    let cursor = Option.none<string>()
    while (true) {
      const page = yield* transport.poll(broadcast, cursor)
      events.push(...page.events)
      if (page.done) return events
      cursor = page.cursor
      if (page.events.length === 0) yield* Effect.sleep(Duration.millis(50))
    }
  }).pipe(Effect.timeout(within))

describe("KapsoBroadcasts against the emulator", () => {
  it.live("start is idempotent: a second start (recovery) answers 422, which is checked and accepted", () =>
    Effect.gen(function*() {
      const transport = yield* BroadcastTransport
      const emulator = yield* KapsoEmulator.KapsoEmulator
      const broadcast = yield* opened()
      yield* transport.submit(broadcast, items(broadcast, 3))
      yield* transport.start(broadcast)
      yield* transport.start(broadcast)
      const sends = (yield* emulator.requests).filter((r) => r.path.endsWith("/send"))
      assert.deepStrictEqual(sends.map((r) => r.status), [202, 422])
      const events = yield* pollAll(broadcast)
      assert.strictEqual(
        new Set(events.map((e) => e.ref._tag === "ByProviderMessageId" && e.ref.providerMessageId)).size,
        3
      )
      // Once completed, a third start is still fine.
      yield* transport.start(broadcast)
    }).pipe(Effect.provide(emulated())))

  it.live("start on an empty broadcast fails with Kapso's 422", () =>
    Effect.gen(function*() {
      const transport = yield* BroadcastTransport
      const error = yield* Effect.flip(transport.start(yield* opened()))
      assert.strictEqual(error.reason._tag, "InvalidRequest")
      assert.include(error.message, "Broadcast has no recipients")
    }).pipe(Effect.provide(emulated())))

  it.live("adding after start is refused with the whole call (the engine pauses)", () =>
    Effect.gen(function*() {
      const transport = yield* BroadcastTransport
      const broadcast = yield* opened()
      yield* transport.submit(broadcast, items(broadcast, 2))
      yield* transport.start(broadcast)
      const error = yield* Effect.flip(transport.submit(broadcast, [item(broadcast, 3)]))
      assert.strictEqual(error.reason._tag, "InvalidRequest")
      assert.include(error.message, "Cannot add recipients to broadcast in")
    }).pipe(Effect.provide(emulated())))

  it.live("open: a sandbox config is refused, an unknown template is TemplateRejected", () =>
    Effect.gen(function*() {
      const transport = yield* BroadcastTransport
      const sandbox = yield* Effect.flip(transport.open(yield* makeBroadcast({ sender: "sandbox" })))
      assert.strictEqual(sandbox.reason._tag, "InvalidRequest")
      assert.include(sandbox.message, "production")
      const unknown = yield* Effect.flip(
        transport.open(yield* makeBroadcast({ template: new TemplateSpec.TemplateSpec({ ...template, name: "nope" }) }))
      )
      assert.strictEqual(unknown.reason._tag, "TemplateRejected")
    }).pipe(Effect.provide(emulated())))

  it.live("open: a template not linked to the sender is TemplateRejected (Kapso's 422)", () =>
    Effect.gen(function*() {
      const transport = yield* BroadcastTransport
      const error = yield* Effect.flip(transport.open(yield* makeBroadcast({ sender: "other-config" })))
      assert.strictEqual(error.reason._tag, "TemplateRejected")
      assert.include(error.message, "Template not linked to config")
    }).pipe(Effect.provide(emulated({
      configs: [{ id: configId }, { id: "other-config" }],
      templates: [{
        id: "t-spring",
        name: "spring_sale",
        language: "en",
        body: { _tag: "positional", count: 1 },
        configIds: [configId]
      }]
    }, { templateIds: { spring_sale: "t-spring" } }))))

  for (const base of [0, 1] as const) {
    it.live(`maps Kapso's errors back to the exact recipients when it counts from ${base}`, () =>
      Effect.gen(function*() {
        const transport = yield* BroadcastTransport
        const emulator = yield* KapsoEmulator.KapsoEmulator
        const broadcast = yield* opened()
        const batch = [...items(broadcast, 8)]
        batch[3] = item(broadcast, 4, "+999" as Address.Address)
        batch[5] = { ...item(broadcast, 6), params: new TemplateParams.TemplateParams({ body: [], buttons: [] }) }
        batch[7] = item(broadcast, 8, phone(1))
        const { outcomes } = yield* transport.submit(broadcast, [batch[0]!, ...batch.slice(1)])
        assert.deepStrictEqual(outcomes.map((o) => o._tag), [
          "Accepted",
          "Accepted",
          "Accepted",
          "Rejected",
          "Accepted",
          "Rejected",
          "Accepted",
          "Accepted"
        ])
        const reasons = outcomes.flatMap((o) => o._tag === "Rejected" ? [o.error.reason._tag] : [])
        assert.deepStrictEqual(reasons, ["RecipientRejected", "TemplateParamsMismatch"])
        const kept = yield* emulator.recipients(broadcast.remoteId!)
        assert.deepStrictEqual(kept.map((r) => `+${r.phone}`), [1, 2, 3, 5, 7].map((n) => phone(n)))
        const add = (yield* emulator.requests).find((r) => r.path.endsWith("/recipients") && r.method === "POST")!
        assert.strictEqual(add.status, 201)
      }).pipe(Effect.provide(emulated({ errorIndexBase: base }))))
  }

  it.live("re-adding a batch (a resend after a crash) is all duplicates, accepted with the same ids", () =>
    Effect.gen(function*() {
      const transport = yield* BroadcastTransport
      const emulator = yield* KapsoEmulator.KapsoEmulator
      const broadcast = yield* opened()
      const first = yield* transport.submit(broadcast, items(broadcast, 5))
      const again = yield* transport.submit(broadcast, items(broadcast, 5))
      assert.deepStrictEqual(again, first)
      assert.strictEqual((yield* emulator.recipients(broadcast.remoteId!)).length, 5)
    }).pipe(Effect.provide(emulated())))

  it.live("named parameters and a media header reach Kapso in the object form", () =>
    Effect.gen(function*() {
      const transport = yield* BroadcastTransport
      const emulator = yield* KapsoEmulator.KapsoEmulator
      const broadcast = yield* opened({ template: namedTemplate })
      const outgoing = {
        ...item(broadcast, 1),
        params: new TemplateParams.TemplateParams({
          body: { first_name: "Ada" },
          header: { _tag: "media", kind: "image", link: "https://example.com/a.jpg" },
          buttons: []
        })
      }
      const { outcomes } = yield* transport.submit(broadcast, [outgoing])
      assert.strictEqual(outcomes[0]!._tag, "Accepted")
      const [kept] = yield* emulator.recipients(broadcast.remoteId!)
      assert.deepStrictEqual(kept!.parameters, { first_name: "Ada", header_url: "https://example.com/a.jpg" })
    }).pipe(Effect.provide(emulated())))

  it.live("every recipient's polled events end where the emulator decided, with its codes", () =>
    Effect.gen(function*() {
      const transport = yield* BroadcastTransport
      const emulator = yield* KapsoEmulator.KapsoEmulator
      const broadcast = yield* opened()
      const { outcomes } = yield* transport.submit(broadcast, items(broadcast, 200))
      yield* transport.start(broadcast)
      const events = yield* pollAll(broadcast)
      const last = new Map<string, StatusEvent.StatusEvent>()
      for (const event of events) {
        if (event.ref._tag === "ByProviderMessageId") last.set(event.ref.providerMessageId, event)
      }
      const expected = { failed: "failed", sent: "sent", delivered: "delivered", read: "read", responded: "replied" }
      const kept = yield* emulator.recipients(broadcast.remoteId!)
      assert.strictEqual(kept.length, 200)
      const tally = new Map<string, number>()
      for (const [i, outcome] of outcomes.entries()) {
        assert.strictEqual(outcome._tag, "Accepted")
        if (outcome._tag !== "Accepted") continue
        const fate = kept[i]!.fate!
        const event = last.get(Option.getOrThrow(outcome.providerMessageId))!
        assert.strictEqual(event.status._tag, expected[fate._tag], `recipient ${i + 1}`)
        if (fate._tag === "failed" && event.status._tag === "failed") assert.strictEqual(event.status.code, fate.code)
        tally.set(fate._tag, (tally.get(fate._tag) ?? 0) + 1)
      }
      // The mix is spread evenly over the send order: 5%, 20% and 10% of 200, give or take one.
      assert.deepStrictEqual(Object.fromEntries(tally), { failed: 10, read: 40, responded: 19, delivered: 131 })
    }).pipe(Effect.provide(emulated({
      outcomes: {
        mix: [
          { share: 0.05, fate: { _tag: "failed", code: "131026" } },
          { share: 0.2, fate: { _tag: "read" } },
          { share: 0.1, fate: { _tag: "responded" } }
        ]
      },
      timing: {
        batchSize: 50,
        interval: "20 millis",
        delivered: "20 millis",
        read: "20 millis",
        responded: "20 millis",
        completion: "settled"
      }
    }))))

  it.live("past the request budget, Kapso's 429 comes back as RateLimited with its Retry-After", () =>
    Effect.gen(function*() {
      const transport = yield* BroadcastTransport
      const broadcast = yield* opened()
      const error = yield* Effect.flip(Effect.forever(transport.poll(broadcast, Option.none())))
      assert.strictEqual(error.reason._tag, "RateLimited")
      assert.isTrue(Option.isSome(error.retryAfter))
    }).pipe(Effect.provide(emulated({ budget: { limit: 5, window: Duration.minutes(1) } }))))

  it.live("a wrong API key is Unauthorized", () =>
    Effect.gen(function*() {
      const transport = yield* BroadcastTransport
      const error = yield* Effect.flip(transport.open(yield* makeBroadcast()))
      assert.strictEqual(error.reason._tag, "Unauthorized")
    }).pipe(Effect.provide(emulated({}, { apiKey: Redacted.make("wrong-key") }))))
})
