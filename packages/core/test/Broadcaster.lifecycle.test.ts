// Commands over a broadcast's life: pause, resume and cancel mid-send, schedule, and the calls that must be refused.
import * as Broadcast from "@crier/core/Broadcast"
import { Broadcaster } from "@crier/core/Broadcaster"
import { BroadcastTransport } from "@crier/core/BroadcastTransport"
import * as MemoryTransport from "@crier/core/MemoryTransport"
import * as ProgressStore from "@crier/core/ProgressStore"
import * as TemplateSpec from "@crier/core/TemplateSpec"
import { assert, describe, it } from "@effect/vitest"
import { DateTime, Effect, Fiber, Layer, Option } from "effect"
import { TestClock } from "effect/testing"
import {
  assertConsistent,
  backing,
  counts,
  engineOver,
  metaError,
  phone,
  recipients,
  runFor,
  started,
  template,
  withEngine
} from "./Broadcaster.fixtures.ts"

// 10 messages a second in batches of 10: batch k goes from k s to k.9 s and is recorded at k.9 s.
const tenPerSecond = new Broadcast.Policy({ messagesPerSecond: 10, batchSize: 10, concurrency: 1 })

const unknown = Broadcast.BroadcastId.make("bc_01ARZ3NDEKTSV4RRFFQ69G5FAV")

describe("Broadcaster commands mid-send", () => {
  it.effect("pause takes effect after the batch in flight; resume continues where it stopped", () =>
    Effect.gen(function*() {
      const broadcaster = yield* Broadcaster
      const memory = yield* MemoryTransport.MemoryTransport
      const id = yield* started(100, { policy: tenPerSecond })
      yield* TestClock.adjust("2500 millis")
      const pausing = yield* broadcaster.pause(id, "checking the copy")
      assert.strictEqual(pausing.statusReason, "checking the copy")
      const paused = yield* runFor(id, "1 second")
      assert.strictEqual(paused.status, "paused")
      const atPause = yield* counts(id)
      assertConsistent(atPause)
      assert.strictEqual(atPause.accepted, 30)
      assert.strictEqual(atPause.pending, 70)
      yield* TestClock.adjust("1 minute")
      assert.strictEqual(yield* memory.requests, 30)
      yield* broadcaster.resume(id)
      const done = yield* runFor(id, "1 minute")
      assert.strictEqual(done.status, "completed")
      assert.strictEqual((yield* counts(id)).accepted, 100)
      for (const n of [1, 30, 31, 100]) assert.strictEqual(yield* memory.sentCount(phone(n)), 1)
    }).pipe(withEngine()))

  it.effect("cancel mid-send: pending rows are skipped, nothing more is sent, counts still add up", () =>
    Effect.gen(function*() {
      const broadcaster = yield* Broadcaster
      const memory = yield* MemoryTransport.MemoryTransport
      const id = yield* started(100, { policy: tenPerSecond })
      yield* TestClock.adjust("2500 millis")
      const cancelled = yield* broadcaster.cancel(id)
      assert.strictEqual(cancelled.status, "cancelled")
      yield* TestClock.adjust("1 minute")
      const final = yield* counts(id)
      assertConsistent(final)
      // Rows 1-25 went before the cancel; the provider refuses the rest of the batch in flight once cancelled.
      assert.strictEqual(final.accepted, 26)
      assert.strictEqual(final.skipped, 74)
      assert.strictEqual(final.pending + final.submitting, 0)
      const requests = yield* memory.requests
      yield* TestClock.adjust("1 minute")
      assert.strictEqual(yield* memory.requests, requests)
      const skipped = yield* broadcaster.recipients(id, { status: "skipped", limit: 1 })
      assert.deepStrictEqual(skipped.items[0]?.status, { _tag: "skipped", reason: "cancelled" })
      assert.strictEqual((yield* broadcaster.wait(id)).status, "cancelled")
    }).pipe(withEngine()))

  it.effect("cancel on a transport that cannot cancel (Kapso) still cancels here", () =>
    Effect.gen(function*() {
      const broadcaster = yield* Broadcaster
      const id = yield* started(2500)
      const cancelled = yield* broadcaster.cancel(id)
      assert.strictEqual(cancelled.status, "cancelled")
      yield* TestClock.adjust("1 minute")
      const final = yield* counts(id)
      assertConsistent(final)
      assert.strictEqual(final.pending + final.submitting, 0)
    }).pipe(withEngine({ profile: "kapso", latency: "1 second" })))
})

describe("Broadcaster start", () => {
  it.effect("the remote side cannot be opened: start fails, the broadcast pauses; resume opens it and sends", () => {
    let refusing = true
    const refusingOpen = Layer.effect(
      BroadcastTransport,
      BroadcastTransport.useSync((transport) =>
        BroadcastTransport.of({
          ...transport,
          open: (broadcast) => refusing ? Effect.fail(metaError(190)) : transport.open(broadcast)
        })
      )
    ).pipe(Layer.provide(MemoryTransport.layer({ profile: "kapso" })))
    return Effect.gen(function*() {
      const broadcaster = yield* Broadcaster
      const broadcast = yield* broadcaster.create({ name: "kapso", template, sender: "s" })
      yield* broadcaster.addRecipients(broadcast.id, recipients(10))
      const error = yield* Effect.flip(broadcaster.start(broadcast.id))
      assert.isTrue(error._tag === "TransportError" && error.reason._tag === "Unauthorized")
      const paused = yield* broadcaster.get(broadcast.id)
      assert.strictEqual(paused.status, "paused")
      assert.include(paused.statusReason ?? "", "Unauthorized")
      refusing = false
      yield* broadcaster.resume(broadcast.id)
      const done = yield* runFor(broadcast.id, "1 minute")
      assert.strictEqual(done.status, "completed")
      assert.strictEqual(done.remoteId, "remote-1")
    }).pipe(
      Effect.provide(
        Broadcaster.layer.pipe(Layer.provideMerge(Layer.merge(ProgressStore.ProgressStore.layerMemory, refusingOpen)))
      )
    )
  })
})

describe("Broadcaster schedule", () => {
  it.effect("a scheduled broadcast starts at sendAt and not before", () =>
    Effect.gen(function*() {
      const broadcaster = yield* Broadcaster
      const memory = yield* MemoryTransport.MemoryTransport
      const broadcast = yield* broadcaster.create({ name: "later", template, sender: "s" })
      yield* broadcaster.addRecipients(broadcast.id, recipients(5))
      const sendAt = DateTime.makeUnsafe(60 * 60 * 1000)
      const scheduled = yield* broadcaster.schedule(broadcast.id, sendAt)
      assert.strictEqual(scheduled.status, "scheduled")
      assert.deepStrictEqual(scheduled.scheduledAt, sendAt)
      // Still editable while scheduled.
      yield* broadcaster.addRecipients(broadcast.id, recipients(5, 6))
      yield* TestClock.adjust("59 minutes")
      yield* TestClock.adjust("59999 millis")
      assert.strictEqual((yield* broadcaster.get(broadcast.id)).status, "scheduled")
      assert.strictEqual(yield* memory.requests, 0)
      const done = yield* runFor(broadcast.id, "1 millis")
      assert.strictEqual(done.status, "completed")
      assert.deepStrictEqual(done.startedAt, sendAt)
      assert.strictEqual((yield* counts(broadcast.id)).accepted, 10)
    }).pipe(withEngine()))

  it.effect("a cancelled schedule never starts; a started one does not start twice", () =>
    Effect.gen(function*() {
      const broadcaster = yield* Broadcaster
      const memory = yield* MemoryTransport.MemoryTransport
      const dropped = yield* broadcaster.create({ name: "dropped", template, sender: "s" })
      yield* broadcaster.addRecipients(dropped.id, recipients(3))
      yield* broadcaster.schedule(dropped.id, DateTime.makeUnsafe(1000))
      yield* broadcaster.cancel(dropped.id)
      const early = yield* broadcaster.create({ name: "early", template, sender: "s" })
      yield* broadcaster.addRecipients(early.id, recipients(3, 10))
      yield* broadcaster.schedule(early.id, DateTime.makeUnsafe(1000))
      yield* broadcaster.start(early.id)
      yield* TestClock.adjust("1 minute")
      assert.strictEqual((yield* broadcaster.get(dropped.id)).status, "cancelled")
      assert.strictEqual((yield* broadcaster.get(early.id)).status, "completed")
      assert.strictEqual(yield* memory.requests, 3)
    }).pipe(withEngine()))

  it.effect("schedules survive a restart: recover arms them again", () =>
    Effect.gen(function*() {
      const context = yield* backing()
      const first = yield* engineOver(context)
      const broadcast = yield* first.broadcaster.create({ name: "later", template, sender: "s" })
      yield* first.broadcaster.addRecipients(broadcast.id, recipients(3))
      yield* first.broadcaster.schedule(broadcast.id, DateTime.makeUnsafe(10_000))
      yield* first.crash
      yield* TestClock.adjust("5 seconds")
      const second = yield* engineOver(context)
      yield* second.broadcaster.recover()
      yield* TestClock.adjust("4999 millis")
      assert.strictEqual((yield* second.broadcaster.get(broadcast.id)).status, "scheduled")
      yield* TestClock.adjust("1 minute")
      assert.strictEqual((yield* second.broadcaster.get(broadcast.id)).status, "completed")
    }))
})

describe("Broadcaster refuses invalid calls with typed errors", () => {
  it.effect("create: a template the transport cannot carry, an empty name", () =>
    Effect.gen(function*() {
      const broadcaster = yield* Broadcaster
      const withImage = new TemplateSpec.TemplateSpec({ ...template, header: "image" })
      const refused = yield* Effect.flip(broadcaster.create({ name: "img", template: withImage, sender: "s" }))
      assert.strictEqual(refused._tag, "BroadcastRefused")
      assert.isTrue(refused._tag === "BroadcastRefused" && refused.reason === "TemplateUnsupported")
      assert.include(refused.message, "header")
      const unnamed = yield* Effect.flip(broadcaster.create({ name: " ", template, sender: "s" }))
      assert.isTrue(unnamed._tag === "BroadcastRefused" && unnamed.reason === "InvalidName")
    }).pipe(withEngine({ profile: "keebai" })))

  it.effect("wrong status for the command", () =>
    Effect.gen(function*() {
      const broadcaster = yield* Broadcaster
      const draft = yield* broadcaster.create({ name: "draft", template, sender: "s" })
      const empty = yield* Effect.flip(broadcaster.start(draft.id))
      assert.isTrue(empty._tag === "BroadcastRefused" && empty.reason === "NoRecipients")
      const pauseDraft = yield* Effect.flip(broadcaster.pause(draft.id))
      assert.isTrue(pauseDraft._tag === "InvalidTransition" && pauseDraft.reason === "NotSending")
      const resumeDraft = yield* Effect.flip(broadcaster.resume(draft.id))
      assert.strictEqual(resumeDraft._tag, "InvalidTransition")

      const id = yield* started(20, { policy: tenPerSecond })
      const addToSending = yield* Effect.flip(broadcaster.addRecipients(id, recipients(1, 500)))
      assert.isTrue(addToSending._tag === "BroadcastNotEditable" && addToSending.status === "sending")
      const startTwice = yield* Effect.flip(broadcaster.start(id))
      assert.strictEqual(startTwice._tag, "InvalidTransition")
      const scheduleSending = yield* Effect.flip(broadcaster.schedule(id, DateTime.makeUnsafe(0)))
      assert.strictEqual(scheduleSending._tag, "InvalidTransition")
      yield* broadcaster.pause(id)
      const addToPaused = yield* Effect.flip(broadcaster.addRecipients(id, recipients(1, 500)))
      assert.strictEqual(addToPaused._tag, "BroadcastNotEditable")
      yield* broadcaster.resume(id)
      assert.strictEqual((yield* runFor(id)).status, "completed")
      const startCompleted = yield* Effect.flip(broadcaster.start(id))
      assert.isTrue(startCompleted._tag === "InvalidTransition" && startCompleted.reason === "Terminal")
      const cancelCompleted = yield* Effect.flip(broadcaster.cancel(id))
      assert.isTrue(cancelCompleted._tag === "InvalidTransition" && cancelCompleted.reason === "Terminal")

      const cancelled = yield* started(5, { from: 100, policy: tenPerSecond })
      yield* broadcaster.cancel(cancelled)
      const resumeCancelled = yield* Effect.flip(broadcaster.resume(cancelled))
      assert.isTrue(resumeCancelled._tag === "InvalidTransition" && resumeCancelled.reason === "Terminal")
    }).pipe(withEngine()))

  it.effect("an unknown id is BroadcastNotFound everywhere", () =>
    Effect.gen(function*() {
      const broadcaster = yield* Broadcaster
      const calls: ReadonlyArray<Effect.Effect<unknown, { readonly _tag: string }>> = [
        broadcaster.get(unknown),
        broadcaster.start(unknown),
        broadcaster.pause(unknown),
        broadcaster.resume(unknown),
        broadcaster.cancel(unknown),
        broadcaster.schedule(unknown, DateTime.makeUnsafe(0)),
        broadcaster.wait(unknown),
        broadcaster.recipients(unknown, { limit: 10 }),
        broadcaster.addRecipients(unknown, recipients(1))
      ]
      for (const call of calls) {
        const error = yield* Effect.flip(call)
        assert.strictEqual(error._tag, "BroadcastNotFound")
      }
    }).pipe(withEngine()))
})

describe("Broadcaster wait", () => {
  it.effect("returns at once for a broadcast that is already over", () =>
    Effect.gen(function*() {
      const broadcaster = yield* Broadcaster
      const id = yield* started(3)
      const fiber = yield* Effect.forkChild(broadcaster.wait(id))
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* Fiber.join(fiber)).status, "completed")
      assert.strictEqual((yield* broadcaster.wait(id)).status, "completed")
      assert.isTrue(Option.isSome(Option.fromUndefinedOr((yield* broadcaster.get(id)).completedAt)))
    }).pipe(withEngine()))
})
