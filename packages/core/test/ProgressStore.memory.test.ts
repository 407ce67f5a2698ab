import * as Address from "@crier/core/Address"
import * as Broadcast from "@crier/core/Broadcast"
import * as ProgressStore from "@crier/core/ProgressStore"
import * as Recipient from "@crier/core/Recipient"
import * as RecipientStatus from "@crier/core/RecipientStatus"
import * as StatusEvent from "@crier/core/StatusEvent"
import * as TemplateParams from "@crier/core/TemplateParams"
import * as TemplateSpec from "@crier/core/TemplateSpec"
import { suite } from "@crier/core/testing/ProgressStoreSuite"
import { assert, describe, it } from "@effect/vitest"
import { DateTime, Effect, Option, Result } from "effect"

suite("ProgressStore.layerMemory", ProgressStore.ProgressStore.layerMemory)

const now = DateTime.makeUnsafe(1_767_225_600_000)

const draft = Effect.gen(function*() {
  const broadcast = new Broadcast.Broadcast({
    id: yield* Broadcast.makeId,
    name: "memory",
    transport: "memory",
    sender: "sender-1",
    template: Result.getOrThrow(TemplateSpec.fromText("Hi {{1}}", { name: "memory", language: "en" })),
    policy: new Broadcast.Policy({}),
    status: "draft",
    createdAt: now
  })
  yield* (yield* ProgressStore.ProgressStore).createBroadcast(broadcast)
  return broadcast
})

const recipients = (count: number): ReadonlyArray<Recipient.NewRecipient> => {
  const params = new TemplateParams.TemplateParams({ body: ["x"], buttons: [] })
  return Array.from({ length: count }, (_, i) =>
    new Recipient.NewRecipient({
      address: Result.getOrThrow(Address.parse(`US.m${i}`)),
      params,
      metadata: {}
    }))
}

describe("ProgressStore.layerMemory", () => {
  it.effect("each build of the layer is a new, empty store", () =>
    Effect.gen(function*() {
      const broadcast = yield* draft.pipe(Effect.provide(ProgressStore.ProgressStore.layerMemory))
      const seen = yield* ProgressStore.ProgressStore.use((store) => Effect.flip(store.getBroadcast(broadcast.id)))
        .pipe(
          Effect.provide(ProgressStore.ProgressStore.layerMemory)
        )
      assert.strictEqual(seen._tag, "BroadcastNotFound")
    }))

  it.effect("100,000 recipients: one insert, claimed in batches of 1,000, accepted and delivered", () =>
    Effect.gen(function*() {
      const store = yield* ProgressStore.ProgressStore
      const { id } = yield* draft
      const total = 100_000
      const inserted = yield* store.insertRecipients(id, recipients(total))
      assert.deepStrictEqual(inserted, { inserted: total, duplicates: [] })
      let expected = 1
      for (;;) {
        const batch = yield* store.claim(id, { limit: 1_000, owner: "w", leaseMillis: 60_000, now })
        if (batch.length === 0) break
        assert.strictEqual(batch.length, 1_000)
        for (const row of batch) assert.strictEqual(row.seq, expected++)
        yield* store.recordReceipts(
          id,
          batch.map((row) => ({ _tag: "Accepted", seq: row.seq, providerMessageId: `m-${id}-${row.seq}` })),
          now
        )
        const applied = yield* store.applyStatusEvents(batch.map((row) =>
          new StatusEvent.StatusEvent({
            ref: { _tag: "ByProviderMessageId", providerMessageId: `m-${id}-${row.seq}` },
            status: RecipientStatus.delivered,
            at: now
          })
        ))
        assert.deepStrictEqual(applied, { applied: batch.length, unchanged: 0, unknown: 0 })
      }
      assert.strictEqual(expected, total + 1)
      const counts = yield* store.counts(id)
      assert.strictEqual(counts.delivered, total)
      assert.strictEqual(counts.total, total)
    }).pipe(Effect.provide(ProgressStore.ProgressStore.layerMemory)))

  it.effect("many retry cycles keep claim order and nextRetryAt exact", () =>
    Effect.gen(function*() {
      const store = yield* ProgressStore.ProgressStore
      const { id } = yield* draft
      yield* store.insertRecipients(id, recipients(50))
      const at = (seconds: number) => DateTime.makeUnsafe(DateTime.toEpochMillis(now) + seconds * 1000)
      // Every round claims what is due and sends each row back with a retry time that reverses seq order.
      for (let round = 1; round <= 5; round++) {
        const batch = yield* store.claim(id, { limit: 50, owner: "w", leaseMillis: 1_000, now: at(round * 100) })
        assert.strictEqual(batch.length, 50)
        assert.deepStrictEqual(batch.map((row) => row.seq), Array.from({ length: 50 }, (_, i) => i + 1))
        yield* store.recordReceipts(
          id,
          batch.map((row) => ({
            _tag: "Retry",
            seq: row.seq,
            notBefore: at(round * 100 + 51 - row.seq),
            error: `round ${round}`
          })),
          at(round * 100)
        )
        const next = yield* store.nextRetryAt(id)
        assert.strictEqual(
          Option.map(next, DateTime.toEpochMillis).pipe(Option.getOrUndefined),
          DateTime.toEpochMillis(at(round * 100 + 1))
        )
      }
      const counts = yield* store.counts(id)
      assert.strictEqual(counts.pending, 50)
      const last = yield* store.recipients(id, { afterSeq: 49, limit: 1 })
      assert.strictEqual(last.items[0]?.attempts, 5)
      assert.strictEqual(last.items[0]?.lastError, "round 5")
    }).pipe(Effect.provide(ProgressStore.ProgressStore.layerMemory)))
})
