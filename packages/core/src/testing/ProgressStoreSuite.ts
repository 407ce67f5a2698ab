/**
 * The conformance suite of the `ProgressStore` port. Every implementation runs it: `layerMemory` in @crier/core,
 * `layerSql` in @crier/store-sql against SQLite and PostgreSQL.
 *
 * The tests share one store and never assume it is empty: each makes its own broadcasts (random ids), addresses and
 * provider message ids, and passes explicit instants. The store is built with the live services (a database client
 * may sleep or time out); only the calls whose result depends on the store reading the `Clock` run under a
 * `TestClock`.
 */
import { assert, describe, layer } from "@effect/vitest"
import { DateTime, Effect, Equal, type Layer, Option, Random, Result, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as Address from "../Address.ts"
import * as Broadcast from "../Broadcast.ts"
import * as BroadcastStatus from "../BroadcastStatus.ts"
import * as ProgressStore from "../ProgressStore.ts"
import * as Recipient from "../Recipient.ts"
import * as RecipientStatus from "../RecipientStatus.ts"
import * as StatusEvent from "../StatusEvent.ts"
import * as TemplateParams from "../TemplateParams.ts"
import * as TemplateSpec from "../TemplateSpec.ts"

// ---------------------------------------------------------------------------------------------------------------
// Fixtures

const epoch = 1_767_225_600_000 // 2026-01-01T00:00:00Z

/** The instant `seconds` after the suite's epoch. */
const at = (seconds: number): DateTime.Utc => DateTime.makeUnsafe(epoch + seconds * 1000)

/** Epoch millis of an optional instant, for assertions. */
const ms = (instant: DateTime.Utc | undefined): number | undefined =>
  instant === undefined ? undefined : DateTime.toEpochMillis(instant)

/** Runs `effect` with the store reading `at(seconds)` from the `Clock`. */
const atClock = <A, E, R>(seconds: number, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  TestClock.setTime(epoch + seconds * 1000).pipe(Effect.andThen(effect), Effect.provide(TestClock.layer()))

const template = Result.getOrThrow(TemplateSpec.fromText("Hi {{1}}", { name: "conformance", language: "en" }))

const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"

const token: Effect.Effect<string> = Effect.gen(function*() {
  let out = ""
  for (let i = 0; i < 16; i++) out += alphabet[yield* Random.nextIntBetween(0, alphabet.length)]!
  return out
})

const address = (text: string): Address.Address => Result.getOrThrow(Address.parse(text))

/** `count` addresses no other test (or earlier run) uses: BSUIDs with a random part. */
const freshAddresses = (count: number): Effect.Effect<ReadonlyArray<Address.Address>> =>
  Effect.map(token, (random) => Array.from({ length: count }, (_, i) => address(`US.${random}x${i}`)))

const recipientFor = (to: Address.Address, index: number): Recipient.NewRecipient =>
  new Recipient.NewRecipient({
    address: to,
    params: new TemplateParams.TemplateParams({ body: [`value ${index}`], buttons: [] }),
    metadata: { index: String(index) }
  })

const Store = ProgressStore.ProgressStore

const makeBroadcast = (options?: {
  readonly status?: BroadcastStatus.BroadcastStatus
  readonly createdAt?: DateTime.Utc
}) =>
  Effect.gen(function*() {
    const store = yield* Store
    const broadcast = new Broadcast.Broadcast({
      id: yield* Broadcast.makeId,
      name: "conformance",
      transport: "memory",
      sender: "sender-1",
      template,
      policy: new Broadcast.Policy({}),
      status: options?.status ?? "draft",
      createdAt: options?.createdAt ?? at(0)
    })
    yield* store.createBroadcast(broadcast)
    return broadcast
  })

/** A draft broadcast with `count` recipients (seqs 1..count, fresh addresses). */
const fill = (count: number) =>
  Effect.gen(function*() {
    const store = yield* Store
    const broadcast = yield* makeBroadcast()
    const addresses = yield* freshAddresses(count)
    const result = yield* store.insertRecipients(broadcast.id, addresses.map(recipientFor))
    assert.strictEqual(result.inserted, count)
    return { id: broadcast.id, addresses }
  })

const claim = (id: Broadcast.BroadcastId, limit: number, seconds: number, leaseSeconds = 60, owner = "worker-1") =>
  Effect.flatMap(
    Store,
    (store) => store.claim(id, { limit, owner, leaseMillis: leaseSeconds * 1000, now: at(seconds) })
  )

const claimSeqs = (id: Broadcast.BroadcastId, limit: number, seconds: number) =>
  Effect.map(claim(id, limit, seconds), (rows) => rows.map((row) => row.seq))

/** The row with this seq (through keyset paging, so it works for every store). */
const row = (id: Broadcast.BroadcastId, seq: number) =>
  Effect.flatMap(Store, (store) =>
    Effect.map(store.recipients(id, { afterSeq: seq - 1, limit: 1 }), (page) => {
      const found = page.items[0]
      assert.isDefined(found)
      assert.strictEqual(found.seq, seq)
      return found
    }))

const receipts = (id: Broadcast.BroadcastId, outcomes: ReadonlyArray<ProgressStore.ReceiptOutcome>, seconds: number) =>
  Effect.flatMap(Store, (store) => store.recordReceipts(id, outcomes, at(seconds)))

const apply = (...events: ReadonlyArray<StatusEvent.StatusEvent>) =>
  Effect.flatMap(Store, (store) => store.applyStatusEvents(events))

const byId = (
  broadcastId: Broadcast.BroadcastId,
  seq: number,
  status: RecipientStatus.RecipientStatus,
  seconds: number,
  providerMessageId?: string
): StatusEvent.StatusEvent =>
  new StatusEvent.StatusEvent({
    ref: { _tag: "ById", broadcastId, seq },
    status,
    at: at(seconds),
    ...(providerMessageId === undefined ? {} : { providerMessageId })
  })

const byProviderMessageId = (
  providerMessageId: string,
  status: RecipientStatus.RecipientStatus,
  seconds: number
): StatusEvent.StatusEvent =>
  new StatusEvent.StatusEvent({ ref: { _tag: "ByProviderMessageId", providerMessageId }, status, at: at(seconds) })

const result = (applied: number, unchanged: number, unknown: number): ProgressStore.ApplyResult => ({
  applied,
  unchanged,
  unknown
})

/** Asserts the counts per status (absent = 0), that `total` is their sum, and that they sum to `total`. */
const assertCounts = (id: Broadcast.BroadcastId, expected: Partial<Record<RecipientStatus.Tag, number>>) =>
  Effect.gen(function*() {
    const counts = yield* (yield* Store).counts(id)
    const want: Record<string, number> = { ...ProgressStore.emptyCounts, ...expected }
    want.total = Object.values(expected).reduce((sum, n) => sum + n, 0)
    assert.deepStrictEqual({ ...counts }, want)
    assert.strictEqual(RecipientStatus.tags.reduce((sum, tag) => sum + counts[tag], 0), counts.total)
  })

/** What an observer can see of a row's progress, for comparing two rows. */
const progress = (recipient: Recipient.Recipient) => ({
  status: recipient.status,
  providerMessageId: recipient.providerMessageId,
  acceptedAt: ms(recipient.acceptedAt),
  sentAt: ms(recipient.sentAt),
  deliveredAt: ms(recipient.deliveredAt),
  readAt: ms(recipient.readAt),
  repliedAt: ms(recipient.repliedAt),
  failedAt: ms(recipient.failedAt)
})

const encodeBroadcast = Schema.encodeSync(Broadcast.Broadcast)
const encodeParams = Schema.encodeSync(TemplateParams.TemplateParams)

const permutations = <A>(items: ReadonlyArray<A>): ReadonlyArray<ReadonlyArray<A>> =>
  items.length <= 1
    ? [items]
    : items.flatMap((item, i) =>
      permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest])
    )

// ---------------------------------------------------------------------------------------------------------------
// The suite

export const suite = (name: string, storeLayer: Layer.Layer<ProgressStore.ProgressStore, unknown>): void =>
  layer(storeLayer, { excludeTestServices: true })(name, (it) => {
    describe("broadcasts", () => {
      it.effect("getBroadcast returns what createBroadcast stored", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const spec = Result.getOrThrow(
            TemplateSpec.fromText("Olá {{first_name}} 👋, seu código é {{code}}", {
              name: "promo_2026",
              language: "pt_BR",
              header: "image",
              buttons: [new TemplateSpec.Button({ index: 0, kind: "url" })]
            })
          )
          const broadcast = new Broadcast.Broadcast({
            id: yield* Broadcast.makeId,
            name: "Campanha de verão ☀️ 夏のキャンペーン",
            transport: "keebai",
            sender: "channel-7",
            template: spec,
            policy: new Broadcast.Policy({
              messagesPerSecond: 20,
              requestBudgets: [new Broadcast.RequestBudget({ limit: 60, windowMillis: 60_000 })],
              batchPacing: { size: 500, everyMillis: 10_000 },
              batchSize: 500,
              maxAttempts: 3,
              inDoubt: "at-least-once"
            }),
            status: "scheduled",
            statusReason: "waiting for 9am",
            remoteId: "remote-1",
            createdAt: at(1),
            scheduledAt: at(3600)
          })
          yield* store.createBroadcast(broadcast)
          assert.deepStrictEqual(encodeBroadcast(yield* store.getBroadcast(broadcast.id)), encodeBroadcast(broadcast))
        }))

      it.effect("getBroadcast of an unknown id fails with BroadcastNotFound", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const id = yield* Broadcast.makeId
          const error = yield* Effect.flip(store.getBroadcast(id))
          assert.strictEqual(error._tag, "BroadcastNotFound")
          assert.strictEqual((error as ProgressStore.BroadcastNotFound).broadcastId, id)
        }))

      it.effect("createBroadcast of an existing id fails with StoreError Conflict and keeps the first", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const broadcast = yield* makeBroadcast()
          const error = yield* Effect.flip(
            store.createBroadcast(new Broadcast.Broadcast({ ...broadcast, name: "impostor" }))
          )
          assert.strictEqual(error._tag, "StoreError")
          assert.strictEqual(error.reason, "Conflict")
          assert.strictEqual((yield* store.getBroadcast(broadcast.id)).name, "conformance")
        }))

      it.effect("listBroadcasts lists newest first and respects the limit", () =>
        Effect.gen(function*() {
          const store = yield* Store
          // Far in the future, so these are likely the newest the store has.
          const offset = 1_000_000_000 + (yield* Random.nextIntBetween(0, 1_000_000))
          const older = yield* makeBroadcast({ createdAt: at(offset) })
          const newest = yield* makeBroadcast({ createdAt: at(offset + 2) })
          const middle = yield* makeBroadcast({ createdAt: at(offset + 1) })
          const all = yield* store.listBroadcasts()
          for (let i = 1; i < all.length; i++) {
            assert.isAtLeast(ms(all[i - 1]!.createdAt)!, ms(all[i]!.createdAt)!, "newest first")
          }
          const ours = new Set([older.id, middle.id, newest.id])
          assert.deepStrictEqual(all.map((b) => b.id).filter((id) => ours.has(id)), [newest.id, middle.id, older.id])
          const two = yield* store.listBroadcasts({ limit: 2 })
          assert.deepStrictEqual(two.map((b) => b.id), all.slice(0, 2).map((b) => b.id))
        }))

      it.effect("transitionBroadcast applies the patch with the move, and null clears a field", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const { id } = yield* makeBroadcast()
          const scheduled = yield* store.transitionBroadcast(id, {
            from: ["draft"],
            to: "scheduled",
            patch: { scheduledAt: at(100), statusReason: "planned" }
          })
          assert.strictEqual(scheduled.status, "scheduled")
          assert.strictEqual(ms(scheduled.scheduledAt), ms(at(100)))
          assert.strictEqual(scheduled.statusReason, "planned")
          assert.deepStrictEqual(encodeBroadcast(yield* store.getBroadcast(id)), encodeBroadcast(scheduled))

          const draft = yield* store.transitionBroadcast(id, {
            from: ["scheduled"],
            to: "draft",
            patch: { scheduledAt: null, statusReason: null }
          })
          assert.strictEqual(draft.status, "draft")
          assert.isUndefined(draft.scheduledAt)
          assert.isUndefined(draft.statusReason)
          const stored = yield* store.getBroadcast(id)
          assert.isUndefined(stored.scheduledAt)
          assert.isUndefined(stored.statusReason)

          yield* store.transitionBroadcast(id, {
            from: ["draft", "scheduled"],
            to: "sending",
            patch: { startedAt: at(200), remoteId: "remote-9" }
          })
          yield* store.transitionBroadcast(id, {
            from: ["sending"],
            to: "paused",
            patch: { statusReason: "template paused" }
          })
          assert.strictEqual((yield* store.getBroadcast(id)).statusReason, "template paused")
          const resumed = yield* store.transitionBroadcast(id, {
            from: ["paused"],
            to: "sending",
            patch: { statusReason: null }
          })
          assert.isUndefined(resumed.statusReason)
          assert.strictEqual(ms(resumed.startedAt), ms(at(200)), "fields absent from the patch are kept")
          const completed = yield* store.transitionBroadcast(id, {
            from: ["sending"],
            to: "completed",
            patch: { completedAt: at(300) }
          })
          const final = yield* store.getBroadcast(id)
          assert.deepStrictEqual(encodeBroadcast(final), encodeBroadcast(completed))
          assert.strictEqual(final.status, "completed")
          assert.strictEqual(final.remoteId, "remote-9")
          assert.strictEqual(ms(final.startedAt), ms(at(200)))
          assert.strictEqual(ms(final.completedAt), ms(at(300)))
        }))

      it.effect("transitionBroadcast fails with InvalidTransition when the status is not in `from`", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const { id } = yield* makeBroadcast()
          // draft → sending is a legal move, but the caller expected a paused broadcast.
          const error = yield* Effect.flip(
            store.transitionBroadcast(id, { from: ["paused"], to: "sending", patch: { startedAt: at(1) } })
          )
          assert.strictEqual(error._tag, "InvalidTransition")
          const invalid = error as BroadcastStatus.InvalidTransition
          assert.strictEqual(invalid.from, "draft")
          assert.strictEqual(invalid.to, "sending")
          const stored = yield* store.getBroadcast(id)
          assert.strictEqual(stored.status, "draft")
          assert.isUndefined(stored.startedAt)
        }))

      it.effect("transitionBroadcast refuses an illegal move with BroadcastStatus.transition's reason", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const cases: ReadonlyArray<readonly [BroadcastStatus.BroadcastStatus, BroadcastStatus.BroadcastStatus]> = [
            ["draft", "completed"],
            ["sending", "draft"],
            ["cancelled", "sending"],
            ["completed", "cancelled"]
          ]
          for (const [from, to] of cases) {
            const { id } = yield* makeBroadcast({ status: from })
            const error = yield* Effect.flip(store.transitionBroadcast(id, { from: [from], to }))
            assert.strictEqual(error._tag, "InvalidTransition")
            const expected = Result.getFailure(BroadcastStatus.transition(from, to))
            assert.isTrue(Option.isSome(expected))
            if (Option.isSome(expected)) {
              assert.strictEqual((error as BroadcastStatus.InvalidTransition).reason, expected.value.reason)
            }
            assert.strictEqual((yield* store.getBroadcast(id)).status, from)
          }
        }))

      it.effect("a repeated transition fails as Unchanged", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const { id } = yield* makeBroadcast({ status: "sending" })
          yield* store.transitionBroadcast(id, { from: ["sending"], to: "paused" })
          const error = yield* Effect.flip(store.transitionBroadcast(id, { from: ["sending"], to: "paused" }))
          assert.strictEqual(error._tag, "InvalidTransition")
          assert.strictEqual((error as BroadcastStatus.InvalidTransition).reason, "Unchanged")
          assert.strictEqual((yield* store.getBroadcast(id)).status, "paused")
        }))

      it.effect("of two concurrent transitions from the same status exactly one wins", () =>
        Effect.gen(function*() {
          const store = yield* Store
          for (let round = 0; round < 5; round++) {
            const { id } = yield* makeBroadcast({ status: "sending" })
            const [pause, cancel] = yield* Effect.all([
              Effect.result(store.transitionBroadcast(id, { from: ["sending"], to: "paused" })),
              Effect.result(store.transitionBroadcast(id, { from: ["sending"], to: "cancelled" }))
            ], { concurrency: 2 })
            assert.strictEqual(Result.isSuccess(pause) !== Result.isSuccess(cancel), true, "exactly one succeeds")
            const loser = Result.isSuccess(pause) ? cancel : pause
            assert.isTrue(Result.isFailure(loser) && loser.failure._tag === "InvalidTransition")
            const winner = Result.isSuccess(pause) ? "paused" : "cancelled"
            assert.strictEqual((yield* store.getBroadcast(id)).status, winner)
          }
        }))

      it.effect("transitionBroadcast and setRemoteId of an unknown id fail with BroadcastNotFound", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const id = yield* Broadcast.makeId
          const transition = yield* Effect.flip(store.transitionBroadcast(id, { from: ["draft"], to: "scheduled" }))
          assert.strictEqual(transition._tag, "BroadcastNotFound")
          const remote = yield* Effect.flip(store.setRemoteId(id, "remote"))
          assert.strictEqual(remote._tag, "BroadcastNotFound")
        }))

      it.effect("setRemoteId records the remote id and leaves the rest", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const broadcast = yield* makeBroadcast({ status: "sending" })
          yield* store.setRemoteId(broadcast.id, "kapso-42")
          const stored = yield* store.getBroadcast(broadcast.id)
          assert.strictEqual(stored.remoteId, "kapso-42")
          assert.deepStrictEqual(
            encodeBroadcast(stored),
            encodeBroadcast(new Broadcast.Broadcast({ ...broadcast, remoteId: "kapso-42" }))
          )
        }))
    })

    describe("insertRecipients", () => {
      it.effect("assigns seqs 1..n in order across calls", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const { id } = yield* makeBroadcast()
          const addresses = yield* freshAddresses(5)
          const first = yield* store.insertRecipients(id, addresses.slice(0, 3).map(recipientFor))
          assert.deepStrictEqual(first, { inserted: 3, duplicates: [] })
          const second = yield* store.insertRecipients(id, addresses.slice(3).map((to, i) => recipientFor(to, i + 3)))
          assert.deepStrictEqual(second, { inserted: 2, duplicates: [] })
          const page = yield* store.recipients(id, { limit: 10 })
          assert.deepStrictEqual(page.items.map((r) => r.seq), [1, 2, 3, 4, 5])
          assert.deepStrictEqual(page.items.map((r) => r.address), addresses)
          assert.deepStrictEqual(page.items.map((r) => r.metadata.index), ["0", "1", "2", "3", "4"])
          for (const recipient of page.items) {
            assert.strictEqual(recipient.broadcastId, id)
            assert.deepStrictEqual(recipient.status, RecipientStatus.pending)
            assert.strictEqual(recipient.attempts, 0)
            assert.isUndefined(recipient.providerMessageId)
            assert.isUndefined(recipient.acceptedAt)
            assert.isUndefined(recipient.notBefore)
          }
          yield* assertCounts(id, { pending: 5 })
        }))

      it.effect("reports duplicates within one call and across calls with the first seq", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const { id } = yield* makeBroadcast()
          const [a, b, c] = yield* freshAddresses(3)
          const first = yield* store.insertRecipients(id, [a!, b!, a!].map(recipientFor))
          assert.deepStrictEqual(first, { inserted: 2, duplicates: [{ index: 2, firstSeq: 1 }] })
          const second = yield* store.insertRecipients(id, [c!, b!, c!, a!].map(recipientFor))
          assert.deepStrictEqual(second, {
            inserted: 1,
            duplicates: [{ index: 1, firstSeq: 2 }, { index: 2, firstSeq: 3 }, { index: 3, firstSeq: 1 }]
          })
          const page = yield* store.recipients(id, { limit: 10 })
          assert.deepStrictEqual(page.items.map((r) => r.address), [a, b, c])
          assert.deepStrictEqual(page.items.map((r) => r.metadata.index), ["0", "1", "0"], "the first row is kept")
          yield* assertCounts(id, { pending: 3 })
        }))

      it.effect("dedupes per broadcast: the same address may be in two broadcasts", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const [shared] = yield* freshAddresses(1)
          const one = yield* makeBroadcast()
          const two = yield* makeBroadcast()
          assert.deepStrictEqual(yield* store.insertRecipients(one.id, [recipientFor(shared!, 0)]), {
            inserted: 1,
            duplicates: []
          })
          assert.deepStrictEqual(yield* store.insertRecipients(two.id, [recipientFor(shared!, 0)]), {
            inserted: 1,
            duplicates: []
          })
        }))

      it.effect("fails with BroadcastNotEditable unless the broadcast is a draft or scheduled", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const [to] = yield* freshAddresses(1)
          for (const status of ["sending", "paused", "completed", "cancelled", "failed"] as const) {
            const { id } = yield* makeBroadcast({ status })
            const error = yield* Effect.flip(store.insertRecipients(id, [recipientFor(to!, 0)]))
            assert.strictEqual(error._tag, "BroadcastNotEditable")
            const notEditable = error as ProgressStore.BroadcastNotEditable
            assert.strictEqual(notEditable.status, status)
            assert.strictEqual(notEditable.broadcastId, id)
            yield* assertCounts(id, {})
          }
          const scheduled = yield* makeBroadcast({ status: "scheduled" })
          assert.strictEqual((yield* store.insertRecipients(scheduled.id, [recipientFor(to!, 0)])).inserted, 1)
          // The check uses the current status, not the one the broadcast was created with.
          const started = yield* makeBroadcast()
          yield* store.transitionBroadcast(started.id, { from: ["draft"], to: "sending" })
          const error = yield* Effect.flip(store.insertRecipients(started.id, [recipientFor(to!, 0)]))
          assert.strictEqual(error._tag, "BroadcastNotEditable")
        }))

      it.effect("fails with BroadcastNotFound for an unknown broadcast", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const [to] = yield* freshAddresses(1)
          const error = yield* Effect.flip(store.insertRecipients(yield* Broadcast.makeId, [recipientFor(to!, 0)]))
          assert.strictEqual(error._tag, "BroadcastNotFound")
        }))

      it.effect("keeps addresses, params and metadata exactly (emoji, non-Latin text, media headers)", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const { id } = yield* makeBroadcast()
          const [bsuid] = yield* freshAddresses(1)
          const given = [
            new Recipient.NewRecipient({
              address: address("+14155550123"),
              params: new TemplateParams.TemplateParams({
                body: ["Ana 😀", "Ñandú 日本語 مرحبا"],
                header: {
                  _tag: "media",
                  kind: "document",
                  link: "https://example.com/f.pdf?a=1&b=é",
                  filename: "factura ñ.pdf"
                },
                buttons: ["código-1"]
              }),
              metadata: { "clé 🔑": "valeur — 値", "quote\"s": "back\\slash", empty: "" }
            }),
            new Recipient.NewRecipient({
              address: address("+5511987654321"),
              params: new TemplateParams.TemplateParams({
                body: { first_name: "Zoë 👩‍👩‍👧", city: "Москва" },
                header: { _tag: "text", text: "héllo" },
                buttons: []
              }),
              metadata: {}
            }),
            new Recipient.NewRecipient({
              address: bsuid!,
              params: new TemplateParams.TemplateParams({ body: [], buttons: [] }),
              metadata: { "עברית": "ελληνικά" }
            })
          ]
          yield* store.insertRecipients(id, given)
          const check = (stored: ReadonlyArray<Recipient.Recipient>) => {
            assert.strictEqual(stored.length, given.length)
            stored.forEach((recipient, i) => {
              const original = given[i]!
              assert.strictEqual(recipient.address, original.address)
              assert.deepStrictEqual(encodeParams(recipient.params), encodeParams(original.params))
              assert.deepStrictEqual({ ...recipient.metadata }, { ...original.metadata })
            })
          }
          check((yield* store.recipients(id, { limit: 10 })).items)
          check(yield* claim(id, 10, 0))
        }))

      // Stores hand out rows without Recipient's parsing (`Recipient.fromStored`): they must be what it makes.
      it.effect("rows come out as the instances Recipient's constructor makes", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const { id } = yield* makeBroadcast()
          const addresses = yield* freshAddresses(2)
          const given = [
            recipientFor(addresses[0]!, 0),
            new Recipient.NewRecipient({
              address: addresses[1]!,
              params: new TemplateParams.TemplateParams({
                body: { name: "Ana" },
                header: { _tag: "media", kind: "image", link: "https://example.com/a.png" },
                buttons: ["b-1"]
              }),
              metadata: { row: "1", city: "Lima" }
            })
          ]
          yield* store.insertRecipients(id, given)
          const claimed = yield* claim(id, 2, 1)
          yield* receipts(id, [
            { _tag: "Accepted", seq: 1, providerMessageId: `m-${id}` },
            { _tag: "Retry", seq: 2, notBefore: at(2), error: "timeout" }
          ], 1)
          const listed = (yield* store.recipients(id, { limit: 10 })).items
          const latest = Option.getOrThrow(yield* store.latestForAddress(addresses[0]!))
          const fields = (seq: number) => ({
            broadcastId: id,
            seq,
            address: given[seq - 1]!.address,
            params: given[seq - 1]!.params,
            metadata: given[seq - 1]!.metadata,
            attempts: 1,
            updatedAt: at(1)
          })
          const expected = [
            [claimed[0], { ...fields(1), status: RecipientStatus.submitting }],
            [claimed[1], { ...fields(2), status: RecipientStatus.submitting }],
            [listed[0], {
              ...fields(1),
              status: RecipientStatus.accepted,
              providerMessageId: `m-${id}`,
              acceptedAt: at(1)
            }],
            [listed[1], { ...fields(2), status: RecipientStatus.pending, lastError: "timeout", notBefore: at(2) }],
            [latest, { ...listed[0]! }]
          ] as const
          for (const [row, want] of expected) {
            const made = new Recipient.Recipient(want)
            assert.instanceOf(row, Recipient.Recipient)
            assert.instanceOf(row!.params, TemplateParams.TemplateParams)
            assert.isTrue(Schema.is(Recipient.Recipient)(row))
            assert.deepStrictEqual(row, made)
            assert.deepStrictEqual(Reflect.ownKeys(row!), Reflect.ownKeys(made))
            assert.strictEqual(String(row), String(made))
            assert.isTrue(Equal.equals(row, made))
            assert.deepStrictEqual(
              Schema.encodeSync(Recipient.Recipient)(row!),
              Schema.encodeSync(Recipient.Recipient)(made)
            )
          }
        }))

      it.effect("inserts 10,000 rows in one call", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const { id } = yield* makeBroadcast()
          const addresses = yield* freshAddresses(10_000)
          const inserted = yield* store.insertRecipients(id, addresses.map(recipientFor))
          assert.deepStrictEqual(inserted, { inserted: 10_000, duplicates: [] })
          yield* assertCounts(id, { pending: 10_000 })
          const tail = yield* store.recipients(id, { afterSeq: 9_998, limit: 5 })
          assert.deepStrictEqual(tail.items.map((r) => [r.seq, r.address]), [
            [9_999, addresses[9_998]],
            [10_000, addresses[9_999]]
          ])
          assert.isTrue(Option.isNone(tail.nextAfterSeq))
        }))
    })

    describe("claim", () => {
      it.effect("takes the lowest seqs first, up to the limit, as submitting with one more attempt", () =>
        Effect.gen(function*() {
          const { id } = yield* fill(5)
          const first = yield* claim(id, 2, 10)
          assert.deepStrictEqual(first.map((r) => r.seq), [1, 2])
          for (const recipient of first) {
            assert.deepStrictEqual(recipient.status, RecipientStatus.submitting)
            assert.strictEqual(recipient.attempts, 1)
            assert.strictEqual(ms(recipient.updatedAt), ms(at(10)))
          }
          assert.deepStrictEqual((yield* row(id, 1)).status, RecipientStatus.submitting)
          assert.deepStrictEqual(yield* claimSeqs(id, 10, 11), [3, 4, 5])
          assert.deepStrictEqual(yield* claimSeqs(id, 10, 12), [])
          yield* assertCounts(id, { submitting: 5 })
        }))

      it.effect("takes only pending rows whose notBefore has come", () =>
        Effect.gen(function*() {
          const { id } = yield* fill(4)
          yield* claim(id, 4, 0)
          yield* receipts(id, [
            { _tag: "Accepted", seq: 1 },
            { _tag: "Failed", seq: 2, reason: "undeliverable" },
            { _tag: "Retry", seq: 3, notBefore: at(100), error: "timeout" },
            { _tag: "Released", seq: 4 }
          ], 1)
          assert.deepStrictEqual(yield* claimSeqs(id, 10, 50), [4])
          assert.deepStrictEqual(yield* claimSeqs(id, 10, 99), [])
          const retried = yield* claim(id, 10, 100)
          assert.deepStrictEqual(retried.map((r) => r.seq), [3], "notBefore is inclusive")
          assert.strictEqual(retried[0]!.attempts, 2)
        }))

      it.effect("a claim with an earlier now does not take a row due later", () =>
        Effect.gen(function*() {
          const { id } = yield* fill(2)
          yield* claim(id, 2, 0)
          yield* receipts(id, [
            { _tag: "Retry", seq: 1, notBefore: at(50), error: "busy" },
            { _tag: "Retry", seq: 2, notBefore: at(55), error: "busy" }
          ], 1)
          assert.deepStrictEqual(yield* claimSeqs(id, 1, 60), [1])
          // Another worker whose clock is behind.
          assert.deepStrictEqual(yield* claimSeqs(id, 10, 52), [])
          assert.deepStrictEqual(yield* claimSeqs(id, 10, 55), [2])
        }))

      it.effect("four concurrent claimers never get the same row and together get every row", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const { id } = yield* fill(1_000)
          const worker = (owner: string) =>
            Effect.gen(function*() {
              const seqs: Array<number> = []
              for (;;) {
                const batch = yield* store.claim(id, { limit: 25, owner, leaseMillis: 60_000, now: at(1) })
                if (batch.length === 0) return seqs
                const batchSeqs = batch.map((r) => r.seq)
                assert.deepStrictEqual(batchSeqs, [...batchSeqs].sort((a, b) => a - b), "a batch is in seq order")
                seqs.push(...batchSeqs)
                yield* Effect.yieldNow
              }
            })
          const claimed = yield* Effect.all(["w1", "w2", "w3", "w4"].map(worker), { concurrency: 4 })
          const all = claimed.flat()
          assert.strictEqual(all.length, 1_000, "no row claimed twice")
          assert.deepStrictEqual([...all].sort((a, b) => a - b), Array.from({ length: 1_000 }, (_, i) => i + 1))
          yield* assertCounts(id, { submitting: 1_000 })
        }))

      it.effect("returns nothing for an unknown broadcast", () =>
        Effect.gen(function*() {
          assert.deepStrictEqual(yield* claim(yield* Broadcast.makeId, 10, 0), [])
        }))

      it.effect("a fractional lease (a rate that paces a batch in 588.2 ms) is taken and expires after it", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const { id } = yield* fill(1)
          const claimed = yield* store.claim(id, { limit: 1, owner: "worker-1", leaseMillis: 588.2, now: at(0) })
          assert.deepStrictEqual(claimed.map((r) => r.seq), [1])
          assert.strictEqual(yield* store.releaseLeases(id, { expiredBy: at(0.5), to: "pending" }), 0)
          assert.strictEqual(yield* store.releaseLeases(id, { expiredBy: at(1), to: "pending" }), 1)
        }))
    })

    describe("recordReceipts", () => {
      it.effect("Accepted: accepted, with the provider message id and acceptedAt = now", () =>
        Effect.gen(function*() {
          const { id } = yield* fill(2)
          yield* claim(id, 2, 0)
          const messageId = `${id}-wamid-1`
          yield* receipts(id, [{ _tag: "Accepted", seq: 1, providerMessageId: messageId }, {
            _tag: "Accepted",
            seq: 2
          }], 5)
          const one = yield* row(id, 1)
          assert.deepStrictEqual(one.status, RecipientStatus.accepted)
          assert.strictEqual(one.providerMessageId, messageId)
          assert.strictEqual(ms(one.acceptedAt), ms(at(5)))
          assert.strictEqual(ms(one.updatedAt), ms(at(5)))
          assert.strictEqual(one.attempts, 1)
          const two = yield* row(id, 2)
          assert.deepStrictEqual(two.status, RecipientStatus.accepted)
          assert.isUndefined(two.providerMessageId)
          yield* assertCounts(id, { accepted: 2 })
        }))

      it.effect("Failed: failed with code and reason, failedAt = now", () =>
        Effect.gen(function*() {
          const { id } = yield* fill(2)
          yield* claim(id, 2, 0)
          yield* receipts(id, [
            { _tag: "Failed", seq: 1, code: "131026", reason: "undeliverable" },
            { _tag: "Failed", seq: 2, reason: "bad parameter" }
          ], 5)
          const one = yield* row(id, 1)
          assert.deepStrictEqual(one.status, RecipientStatus.failed("undeliverable", "131026"))
          assert.strictEqual(ms(one.failedAt), ms(at(5)))
          assert.strictEqual(one.attempts, 1)
          assert.deepStrictEqual((yield* row(id, 2)).status, RecipientStatus.failed("bad parameter"))
          yield* assertCounts(id, { failed: 2 })
        }))

      it.effect("Released: back to pending, the attempt undone, claimable again in seq order", () =>
        Effect.gen(function*() {
          const { id } = yield* fill(3)
          yield* claim(id, 2, 0)
          yield* receipts(id, [{ _tag: "Released", seq: 1 }], 1)
          const released = yield* row(id, 1)
          assert.deepStrictEqual(released.status, RecipientStatus.pending)
          assert.strictEqual(released.attempts, 0)
          yield* assertCounts(id, { pending: 2, submitting: 1 })
          const again = yield* claim(id, 10, 1)
          assert.deepStrictEqual(again.map((r) => r.seq), [1, 3])
          assert.strictEqual(again[0]!.attempts, 1)
        }))

      it.effect("Retry: pending with notBefore and lastError, the attempt kept, claimable only from notBefore", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const { id } = yield* fill(1)
          yield* claim(id, 1, 0)
          yield* receipts(id, [{ _tag: "Retry", seq: 1, notBefore: at(30), error: "timeout" }], 1)
          const waiting = yield* row(id, 1)
          assert.deepStrictEqual(waiting.status, RecipientStatus.pending)
          assert.strictEqual(waiting.attempts, 1)
          assert.strictEqual(ms(waiting.notBefore), ms(at(30)))
          assert.strictEqual(waiting.lastError, "timeout")
          assert.strictEqual(Option.map(yield* store.nextRetryAt(id), ms).pipe(Option.getOrUndefined), ms(at(30)))
          assert.deepStrictEqual(yield* claimSeqs(id, 10, 29), [])
          const again = yield* claim(id, 10, 30)
          assert.deepStrictEqual(again.map((r) => [r.seq, r.attempts]), [[1, 2]])
        }))

      it.effect("Accepted after a webhook said delivered keeps delivered and records the provider message id", () =>
        Effect.gen(function*() {
          const { id } = yield* fill(1)
          yield* claim(id, 1, 0)
          assert.deepStrictEqual(yield* apply(byId(id, 1, RecipientStatus.delivered, 7)), result(1, 0, 0))
          const messageId = `${id}-wamid-1`
          yield* receipts(id, [{ _tag: "Accepted", seq: 1, providerMessageId: messageId }], 9)
          const delivered = yield* row(id, 1)
          assert.deepStrictEqual(delivered.status, RecipientStatus.delivered)
          assert.strictEqual(delivered.providerMessageId, messageId)
          assert.strictEqual(delivered.attempts, 1)
          assert.strictEqual(ms(delivered.deliveredAt), ms(at(7)))
          assert.strictEqual(ms(delivered.acceptedAt), ms(at(7)), "the earliest evidence of acceptance")
          // The recorded id now finds the row.
          assert.deepStrictEqual(
            yield* apply(byProviderMessageId(messageId, RecipientStatus.read, 12)),
            result(1, 0, 0)
          )
          assert.deepStrictEqual((yield* row(id, 1)).status, RecipientStatus.read)
          yield* assertCounts(id, { read: 1 })
        }))

      it.effect("receipts for rows no longer submitting never regress them", () =>
        Effect.gen(function*() {
          const { id } = yield* fill(3)
          yield* claim(id, 3, 0)
          // 1: a webhook said delivered before the receipt.
          yield* apply(byId(id, 1, RecipientStatus.delivered, 2))
          yield* receipts(id, [
            { _tag: "Retry", seq: 1, notBefore: at(60), error: "timeout" },
            { _tag: "Released", seq: 1 },
            { _tag: "Failed", seq: 1, code: "131026", reason: "undeliverable" }
          ], 3)
          const delivered = yield* row(id, 1)
          assert.deepStrictEqual(delivered.status, RecipientStatus.delivered)
          assert.strictEqual(delivered.attempts, 1)
          assert.isUndefined(delivered.notBefore)
          assert.isUndefined(delivered.lastError)
          assert.isUndefined(delivered.failedAt)
          // 2: released once; a second Released or a Retry finds it pending and changes nothing.
          yield* receipts(id, [{ _tag: "Released", seq: 2 }], 3)
          yield* receipts(id, [
            { _tag: "Released", seq: 2 },
            { _tag: "Retry", seq: 2, notBefore: at(60), error: "timeout" }
          ], 4)
          const pending = yield* row(id, 2)
          assert.deepStrictEqual(pending.status, RecipientStatus.pending)
          assert.strictEqual(pending.attempts, 0)
          assert.isUndefined(pending.notBefore)
          // 3: in doubt after a crash; the late receipt resolves the doubt.
          const store = yield* Store
          yield* store.releaseLeases(id, { to: "in_doubt" })
          assert.deepStrictEqual((yield* row(id, 3)).status, RecipientStatus.inDoubt)
          const messageId = `${id}-wamid-3`
          yield* receipts(id, [{ _tag: "Accepted", seq: 3, providerMessageId: messageId }], 5)
          const accepted = yield* row(id, 3)
          assert.deepStrictEqual(accepted.status, RecipientStatus.accepted)
          assert.strictEqual(accepted.providerMessageId, messageId)
          assert.strictEqual(accepted.attempts, 1)
          yield* assertCounts(id, { delivered: 1, pending: 1, accepted: 1 })
        }))

      it.effect("InDoubt sets a submitting row in doubt with its error; a status event or requeue settles it", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const { id } = yield* fill(4)
          yield* claim(id, 4, 0)
          // 4: a webhook came first: the doubt is already resolved.
          yield* apply(byId(id, 4, RecipientStatus.sent, 1))
          yield* receipts(id, [
            { _tag: "InDoubt", seq: 1, error: "no answer within 30s" },
            { _tag: "InDoubt", seq: 2, error: "no answer within 30s" },
            { _tag: "InDoubt", seq: 3, error: "no answer within 30s" },
            { _tag: "InDoubt", seq: 4, error: "no answer within 30s" }
          ], 2)
          const doubtful = yield* row(id, 1)
          assert.deepStrictEqual(doubtful.status, RecipientStatus.inDoubt)
          assert.strictEqual(doubtful.attempts, 1)
          assert.strictEqual(doubtful.lastError, "no answer within 30s")
          assert.strictEqual(ms(doubtful.updatedAt), ms(at(2)))
          assert.deepStrictEqual((yield* row(id, 4)).status, RecipientStatus.sent)
          yield* assertCounts(id, { in_doubt: 3, sent: 1 })
          // A second InDoubt or a late Retry finds it no longer submitting.
          yield* receipts(id, [
            { _tag: "InDoubt", seq: 1, error: "again" },
            { _tag: "Retry", seq: 1, notBefore: at(3), error: "again" }
          ], 3)
          assert.deepStrictEqual(yield* claimSeqs(id, 10, 10), [], "in-doubt rows are never claimed")
          // The provider had sent it: its webhook settles the row.
          yield* apply(byId(id, 1, RecipientStatus.delivered, 4))
          const settled = yield* row(id, 1)
          assert.deepStrictEqual(settled.status, RecipientStatus.delivered)
          assert.strictEqual(ms(settled.deliveredAt), ms(at(4)))
          // At-least-once recovery sends the rest again.
          assert.strictEqual(yield* store.requeueInDoubt(id), 2)
          assert.deepStrictEqual((yield* claim(id, 10, 5)).map((r) => [r.seq, r.attempts]), [[2, 2], [3, 2]])
          yield* assertCounts(id, { submitting: 2, delivered: 1, sent: 1 })
        }))

      it.effect("ignores outcomes for unknown seqs and unknown broadcasts", () =>
        Effect.gen(function*() {
          const { id } = yield* fill(1)
          yield* claim(id, 1, 0)
          yield* receipts(id, [{ _tag: "Accepted", seq: 99 }, { _tag: "Failed", seq: 2, reason: "x" }], 1)
          yield* receipts(yield* Broadcast.makeId, [{ _tag: "Accepted", seq: 1 }], 1)
          yield* assertCounts(id, { submitting: 1 })
        }))
    })

    describe("applyStatusEvents", () => {
      it.effect("finds recipients by id and by provider message id", () =>
        Effect.gen(function*() {
          const { id } = yield* fill(2)
          yield* claim(id, 2, 0)
          const messageId = `${id}-wamid-2`
          yield* receipts(id, [{ _tag: "Accepted", seq: 2, providerMessageId: messageId }], 1)
          const applied = yield* apply(
            byId(id, 1, RecipientStatus.delivered, 5),
            byProviderMessageId(messageId, RecipientStatus.read, 6)
          )
          assert.deepStrictEqual(applied, result(2, 0, 0))
          const one = yield* row(id, 1)
          assert.deepStrictEqual(one.status, RecipientStatus.delivered)
          assert.strictEqual(ms(one.deliveredAt), ms(at(5)))
          const two = yield* row(id, 2)
          assert.deepStrictEqual(two.status, RecipientStatus.read)
          assert.strictEqual(ms(two.readAt), ms(at(6)))
        }))

      it.effect("counts events for recipients the store does not know as unknown", () =>
        Effect.gen(function*() {
          const { id } = yield* fill(1)
          const applied = yield* apply(
            byId(yield* Broadcast.makeId, 1, RecipientStatus.delivered, 5),
            byId(id, 2, RecipientStatus.delivered, 5),
            byProviderMessageId(`${id}-unknown-${yield* token}`, RecipientStatus.delivered, 5),
            byId(id, 1, RecipientStatus.sent, 5)
          )
          assert.deepStrictEqual(applied, result(1, 0, 3))
          yield* assertCounts(id, { sent: 1 })
        }))

      it.effect("a duplicate event changes nothing", () =>
        Effect.gen(function*() {
          const { id } = yield* fill(1)
          yield* claim(id, 1, 0)
          const event = byId(id, 1, RecipientStatus.delivered, 5)
          assert.deepStrictEqual(yield* apply(event, event), result(1, 1, 0))
          const once = progress(yield* row(id, 1))
          assert.deepStrictEqual(yield* apply(event), result(0, 1, 0))
          assert.deepStrictEqual(progress(yield* row(id, 1)), once)
        }))

      it.effect("any arrival order of the same events ends in the same state", () =>
        Effect.gen(function*() {
          const events: ReadonlyArray<readonly [RecipientStatus.RecipientStatus, number]> = [
            [RecipientStatus.sent, 2],
            [RecipientStatus.delivered, 3],
            [RecipientStatus.failed("undeliverable", "131026"), 4],
            [RecipientStatus.read, 5]
          ]
          const orders = permutations(events)
          const { id } = yield* fill(orders.length)
          yield* claim(id, orders.length, 0)
          yield* receipts(id, orders.map((_, i): ProgressStore.ReceiptOutcome => ({ _tag: "Accepted", seq: i + 1 })), 1)
          for (let i = 0; i < orders.length; i++) {
            for (const [status, seconds] of orders[i]!) yield* apply(byId(id, i + 1, status, seconds))
          }
          const expected = {
            status: RecipientStatus.read,
            providerMessageId: undefined,
            acceptedAt: ms(at(1)),
            sentAt: ms(at(2)),
            deliveredAt: ms(at(3)),
            readAt: ms(at(5)),
            repliedAt: undefined,
            failedAt: undefined
          }
          for (let i = 0; i < orders.length; i++) {
            assert.deepStrictEqual(progress(yield* row(id, i + 1)), expected, `order ${i}`)
          }
          yield* assertCounts(id, { read: orders.length })
        }))

      it.effect("failed after delivered is ignored; failed after sent is applied", () =>
        Effect.gen(function*() {
          const { id } = yield* fill(2)
          yield* claim(id, 2, 0)
          yield* apply(byId(id, 1, RecipientStatus.delivered, 3), byId(id, 2, RecipientStatus.sent, 3))
          const failures = yield* apply(
            byId(id, 1, RecipientStatus.failed("undeliverable", "131026"), 4),
            byId(id, 2, RecipientStatus.failed("undeliverable", "131026"), 4)
          )
          assert.deepStrictEqual(failures, result(1, 1, 0))
          const delivered = yield* row(id, 1)
          assert.deepStrictEqual(delivered.status, RecipientStatus.delivered)
          assert.isUndefined(delivered.failedAt)
          const failed = yield* row(id, 2)
          assert.deepStrictEqual(failed.status, RecipientStatus.failed("undeliverable", "131026"))
          assert.strictEqual(ms(failed.failedAt), ms(at(4)))
          assert.strictEqual(ms(failed.sentAt), ms(at(3)))
          yield* assertCounts(id, { delivered: 1, failed: 1 })
        }))

      it.effect("timestamps: skipped steps are filled, the earliest instant wins", () =>
        Effect.gen(function*() {
          const { id } = yield* fill(1)
          yield* claim(id, 1, 0)
          yield* receipts(id, [{ _tag: "Accepted", seq: 1 }], 5)
          // read without delivered (or sent): both steps get the read's instant.
          assert.deepStrictEqual(yield* apply(byId(id, 1, RecipientStatus.read, 10)), result(1, 0, 0))
          let current = yield* row(id, 1)
          assert.deepStrictEqual(current.status, RecipientStatus.read)
          assert.deepStrictEqual(
            [ms(current.acceptedAt), ms(current.sentAt), ms(current.deliveredAt), ms(current.readAt)],
            [ms(at(5)), ms(at(10)), ms(at(10)), ms(at(10))]
          )
          // The late delivered is older news for the status, but earlier evidence for its steps.
          assert.deepStrictEqual(yield* apply(byId(id, 1, RecipientStatus.delivered, 8)), result(1, 0, 0))
          current = yield* row(id, 1)
          assert.deepStrictEqual(current.status, RecipientStatus.read)
          assert.deepStrictEqual(
            [ms(current.acceptedAt), ms(current.sentAt), ms(current.deliveredAt), ms(current.readAt)],
            [ms(at(5)), ms(at(8)), ms(at(8)), ms(at(10))]
          )
          // Later instants for steps already stamped change nothing.
          assert.deepStrictEqual(
            yield* apply(byId(id, 1, RecipientStatus.delivered, 9), byId(id, 1, RecipientStatus.read, 12)),
            result(0, 2, 0)
          )
          current = yield* row(id, 1)
          assert.strictEqual(ms(current.deliveredAt), ms(at(8)))
          assert.strictEqual(ms(current.readAt), ms(at(10)))
          // replied fills nothing below it that is already set, and sets repliedAt.
          assert.deepStrictEqual(yield* apply(byId(id, 1, RecipientStatus.replied, 20)), result(1, 0, 0))
          current = yield* row(id, 1)
          assert.deepStrictEqual(current.status, RecipientStatus.replied)
          assert.strictEqual(ms(current.repliedAt), ms(at(20)))
          assert.strictEqual(ms(current.readAt), ms(at(10)))
        }))

      it.effect("the counts are exact in a mixed batch", () =>
        Effect.gen(function*() {
          const { id } = yield* fill(3)
          yield* claim(id, 3, 0)
          yield* apply(byId(id, 2, RecipientStatus.read, 4))
          const applied = yield* apply(
            byId(id, 1, RecipientStatus.sent, 5), // applied
            byId(id, 1, RecipientStatus.sent, 5), // duplicate
            byId(id, 2, RecipientStatus.delivered, 6), // older news, later instant
            byId(id, 3, RecipientStatus.delivered, 6), // applied
            byId(id, 3, RecipientStatus.failed("late failure"), 7), // ignored after delivered
            byId(id, 4, RecipientStatus.delivered, 6), // unknown seq
            byProviderMessageId(`${id}-nobody-${yield* token}`, RecipientStatus.read, 6) // unknown id
          )
          assert.deepStrictEqual(applied, result(2, 3, 2))
          yield* assertCounts(id, { sent: 1, read: 1, delivered: 1 })
        }))

      it.effect("records the event's provider message id when the row has none, and never replaces it", () =>
        Effect.gen(function*() {
          const { id } = yield* fill(1)
          yield* claim(id, 1, 0)
          const first = `${id}-wamid-a`
          const other = `${id}-wamid-b`
          assert.deepStrictEqual(yield* apply(byId(id, 1, RecipientStatus.sent, 3, first)), result(1, 0, 0))
          assert.strictEqual((yield* row(id, 1)).providerMessageId, first)
          assert.deepStrictEqual(yield* apply(byId(id, 1, RecipientStatus.sent, 3, other)), result(0, 1, 0))
          assert.strictEqual((yield* row(id, 1)).providerMessageId, first)
          assert.deepStrictEqual(
            yield* apply(
              byProviderMessageId(first, RecipientStatus.delivered, 4),
              byProviderMessageId(other, RecipientStatus.read, 5)
            ),
            result(1, 0, 1)
          )
          assert.deepStrictEqual((yield* row(id, 1)).status, RecipientStatus.delivered)
        }))

      it.effect("skipped rows take no events, and a skipped status is not an event", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const cancelled = yield* fill(1)
          yield* store.cancelPending(cancelled.id)
          assert.deepStrictEqual(yield* apply(byId(cancelled.id, 1, RecipientStatus.delivered, 5)), result(0, 1, 0))
          const skipped = yield* row(cancelled.id, 1)
          assert.deepStrictEqual(skipped.status, RecipientStatus.skipped("cancelled"))
          assert.isUndefined(skipped.deliveredAt)
          const pending = yield* fill(1)
          assert.deepStrictEqual(
            yield* apply(byId(pending.id, 1, RecipientStatus.skipped("suppressed"), 5)),
            result(0, 1, 0)
          )
          assert.deepStrictEqual((yield* row(pending.id, 1)).status, RecipientStatus.pending)
          yield* assertCounts(pending.id, { pending: 1 })
        }))

      it.effect("updatedAt is the Clock's time of the change", () =>
        Effect.gen(function*() {
          const { id } = yield* fill(1)
          yield* claim(id, 1, 0)
          yield* atClock(40, apply(byId(id, 1, RecipientStatus.delivered, 30)))
          const delivered = yield* row(id, 1)
          assert.strictEqual(ms(delivered.updatedAt), ms(at(40)))
          assert.strictEqual(ms(delivered.deliveredAt), ms(at(30)))
          yield* atClock(50, apply(byId(id, 1, RecipientStatus.delivered, 30)))
          assert.strictEqual(ms((yield* row(id, 1)).updatedAt), ms(at(40)), "a duplicate is not a change")
        }))
    })

    describe("counts", () => {
      it.effect("count every status and sum to total at every step", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const { id } = yield* fill(10)
          yield* assertCounts(id, { pending: 10 })
          yield* claim(id, 6, 0)
          yield* assertCounts(id, { pending: 4, submitting: 6 })
          yield* receipts(id, [
            { _tag: "Accepted", seq: 1, providerMessageId: `${id}-1` },
            { _tag: "Accepted", seq: 2 },
            { _tag: "Failed", seq: 3, reason: "undeliverable" },
            { _tag: "Retry", seq: 4, notBefore: at(60), error: "timeout" },
            { _tag: "Released", seq: 5 }
          ], 1)
          yield* assertCounts(id, { pending: 6, submitting: 1, accepted: 2, failed: 1 })
          yield* apply(byId(id, 1, RecipientStatus.delivered, 2), byId(id, 2, RecipientStatus.read, 3))
          yield* assertCounts(id, { pending: 6, submitting: 1, delivered: 1, read: 1, failed: 1 })
          yield* apply(byId(id, 1, RecipientStatus.replied, 4), byId(id, 3, RecipientStatus.delivered, 4))
          yield* assertCounts(id, { pending: 6, submitting: 1, read: 1, replied: 1, delivered: 1 })
          assert.strictEqual(yield* store.releaseLeases(id, { to: "in_doubt" }), 1)
          yield* assertCounts(id, { pending: 6, in_doubt: 1, read: 1, replied: 1, delivered: 1 })
          assert.strictEqual(yield* store.cancelPending(id), 6)
          yield* assertCounts(id, { skipped: 6, in_doubt: 1, read: 1, replied: 1, delivered: 1 })
        }))

      it.effect("are all zero for an unknown broadcast", () =>
        Effect.gen(function*() {
          yield* assertCounts(yield* Broadcast.makeId, {})
        }))
    })

    describe("recipients", () => {
      it.effect("pages by seq with afterSeq and limit; nextAfterSeq is none at the end", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const { id, addresses } = yield* fill(7)
          const first = yield* store.recipients(id, { limit: 3 })
          assert.deepStrictEqual(first.items.map((r) => r.seq), [1, 2, 3])
          assert.deepStrictEqual(first.items.map((r) => r.address), addresses.slice(0, 3))
          assert.deepStrictEqual(first.nextAfterSeq, Option.some(3))
          const second = yield* store.recipients(id, { afterSeq: 3, limit: 3 })
          assert.deepStrictEqual(second.items.map((r) => r.seq), [4, 5, 6])
          assert.deepStrictEqual(second.nextAfterSeq, Option.some(6))
          const last = yield* store.recipients(id, { afterSeq: 6, limit: 3 })
          assert.deepStrictEqual(last.items.map((r) => r.seq), [7])
          assert.isTrue(Option.isNone(last.nextAfterSeq))
          const exact = yield* store.recipients(id, { limit: 7 })
          assert.strictEqual(exact.items.length, 7)
          assert.isTrue(Option.isNone(exact.nextAfterSeq), "a page that ends at the last row is the last page")
          const beyond = yield* store.recipients(id, { afterSeq: 7, limit: 3 })
          assert.deepStrictEqual(beyond.items, [])
          assert.isTrue(Option.isNone(beyond.nextAfterSeq))
        }))

      it.effect("filters by status, paging over the rows that match", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const { id } = yield* fill(8)
          yield* claim(id, 4, 0)
          yield* receipts(id, [{ _tag: "Accepted", seq: 2 }, { _tag: "Accepted", seq: 4 }], 1)
          const accepted = yield* store.recipients(id, { status: "accepted", limit: 1 })
          assert.deepStrictEqual(accepted.items.map((r) => r.seq), [2])
          assert.deepStrictEqual(accepted.nextAfterSeq, Option.some(2))
          const rest = yield* store.recipients(id, { status: "accepted", afterSeq: 2, limit: 1 })
          assert.deepStrictEqual(rest.items.map((r) => r.seq), [4])
          assert.isTrue(Option.isNone(rest.nextAfterSeq))
          const submitting = yield* store.recipients(id, { status: "submitting", limit: 10 })
          assert.deepStrictEqual(submitting.items.map((r) => r.seq), [1, 3])
          const pending = yield* store.recipients(id, { status: "pending", afterSeq: 5, limit: 10 })
          assert.deepStrictEqual(pending.items.map((r) => r.seq), [6, 7, 8])
          assert.isTrue(Option.isNone(pending.nextAfterSeq))
          const failed = yield* store.recipients(id, { status: "failed", limit: 10 })
          assert.deepStrictEqual(failed.items, [])
          assert.isTrue(Option.isNone(failed.nextAfterSeq))
        }))

      it.effect("returns an empty last page for an unknown broadcast", () =>
        Effect.gen(function*() {
          const page = yield* (yield* Store).recipients(yield* Broadcast.makeId, { limit: 10 })
          assert.deepStrictEqual(page.items, [])
          assert.isTrue(Option.isNone(page.nextAfterSeq))
        }))
    })

    describe("latestForAddress", () => {
      it.effect("finds the row with the latest acceptedAt across broadcasts; rows never accepted do not count", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const [target, neverAccepted, unknown] = yield* freshAddresses(3)
          // Inserts `target` (and `neverAccepted` in front of it) into a new broadcast and claims both.
          const broadcastWith = Effect.gen(function*() {
            const { id } = yield* makeBroadcast()
            yield* store.insertRecipients(id, [recipientFor(neverAccepted!, 0), recipientFor(target!, 1)])
            yield* claim(id, 2, 0)
            return id
          })
          const first = yield* broadcastWith
          yield* receipts(first, [{ _tag: "Accepted", seq: 2 }, { _tag: "Failed", seq: 1, reason: "no" }], 10)
          const second = yield* broadcastWith
          yield* receipts(second, [{ _tag: "Accepted", seq: 2 }], 20)
          const third = yield* broadcastWith // claimed, never accepted
          const fourth = yield* broadcastWith // created last, accepted earlier than the second
          yield* receipts(fourth, [{ _tag: "Accepted", seq: 2 }], 15)

          const latest = yield* store.latestForAddress(target!)
          assert.isTrue(Option.isSome(latest))
          if (Option.isSome(latest)) {
            assert.strictEqual(latest.value.broadcastId, second)
            assert.strictEqual(latest.value.seq, 2)
            assert.strictEqual(latest.value.address, target)
            assert.strictEqual(ms(latest.value.acceptedAt), ms(at(20)))
          }
          // A webhook shows the third was accepted after all (delivered implies accepted).
          yield* apply(byId(third, 2, RecipientStatus.delivered, 25))
          const now = yield* store.latestForAddress(target!)
          assert.strictEqual(Option.getOrUndefined(now)?.broadcastId, third)
          assert.isTrue(Option.isNone(yield* store.latestForAddress(neverAccepted!)))
          assert.isTrue(Option.isNone(yield* store.latestForAddress(unknown!)))
        }))
    })

    describe("recovery", () => {
      it.effect("releaseLeases moves only expired leases with expiredBy, and every lease without", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const { id } = yield* fill(3)
          yield* claim(id, 1, 0, 30) // seq 1, lease until 30
          yield* claim(id, 1, 20, 30) // seq 2, lease until 50
          assert.strictEqual(yield* store.releaseLeases(id, { expiredBy: at(29), to: "in_doubt" }), 0)
          assert.strictEqual(yield* store.releaseLeases(id, { expiredBy: at(30), to: "in_doubt" }), 1)
          const doubtful = yield* row(id, 1)
          assert.deepStrictEqual(doubtful.status, RecipientStatus.inDoubt)
          assert.strictEqual(doubtful.attempts, 1)
          assert.deepStrictEqual((yield* row(id, 2)).status, RecipientStatus.submitting)
          assert.deepStrictEqual((yield* row(id, 3)).status, RecipientStatus.pending)
          // No expiredBy: the caller knows no worker lives, so even a fresh lease goes.
          assert.strictEqual(yield* store.releaseLeases(id, { to: "pending" }), 1)
          const requeued = yield* row(id, 2)
          assert.deepStrictEqual(requeued.status, RecipientStatus.pending)
          assert.strictEqual(requeued.attempts, 1, "the hand-off may have happened: the attempt counts")
          yield* assertCounts(id, { in_doubt: 1, pending: 2 })
          const again = yield* claim(id, 10, 21)
          assert.deepStrictEqual(again.map((r) => [r.seq, r.attempts]), [[2, 2], [3, 1]])
          assert.strictEqual(yield* store.releaseLeases(id, { expiredBy: at(1_000), to: "pending" }), 2)
          assert.deepStrictEqual(yield* claimSeqs(id, 10, 22), [2, 3])
        }))

      it.effect("releaseLeases with expiredBy counts the lease from the claim's now", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const { id } = yield* fill(1)
          yield* claim(id, 1, 100, 10) // lease until 110
          assert.strictEqual(yield* store.releaseLeases(id, { expiredBy: at(109), to: "pending" }), 0)
          assert.strictEqual(yield* store.releaseLeases(id, { expiredBy: at(110), to: "pending" }), 1)
          assert.deepStrictEqual((yield* row(id, 1)).status, RecipientStatus.pending)
        }))

      it.effect("requeueInDoubt sends in-doubt rows back to pending and returns how many", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const { id } = yield* fill(3)
          yield* claim(id, 3, 0)
          assert.strictEqual(yield* store.releaseLeases(id, { to: "in_doubt" }), 3)
          yield* receipts(id, [{ _tag: "Accepted", seq: 3 }], 1)
          assert.strictEqual(yield* store.requeueInDoubt(id), 2)
          yield* assertCounts(id, { pending: 2, accepted: 1 })
          const again = yield* claim(id, 10, 2)
          assert.deepStrictEqual(again.map((r) => [r.seq, r.attempts]), [[1, 2], [2, 2]])
          assert.strictEqual(yield* store.requeueInDoubt(id), 0)
          assert.strictEqual(yield* store.requeueInDoubt(yield* Broadcast.makeId), 0)
        }))

      it.effect("cancelPending skips only pending rows (waiting retries included) and returns how many", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const { id } = yield* fill(6)
          yield* claim(id, 3, 0)
          yield* receipts(id, [
            { _tag: "Accepted", seq: 1 },
            { _tag: "Retry", seq: 2, notBefore: at(100), error: "timeout" }
          ], 1)
          assert.strictEqual(yield* store.cancelPending(id), 4)
          for (const seq of [2, 4, 5, 6]) {
            assert.deepStrictEqual((yield* row(id, seq)).status, RecipientStatus.skipped("cancelled"))
          }
          assert.deepStrictEqual((yield* row(id, 1)).status, RecipientStatus.accepted)
          assert.deepStrictEqual((yield* row(id, 3)).status, RecipientStatus.submitting)
          yield* assertCounts(id, { accepted: 1, submitting: 1, skipped: 4 })
          assert.deepStrictEqual(yield* claimSeqs(id, 10, 1_000), [])
          assert.isTrue(Option.isNone(yield* store.nextRetryAt(id)))
          assert.strictEqual(yield* store.cancelPending(id), 0)
        }))

      it.effect("a released or requeued row is cancelled like any pending row", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const { id } = yield* fill(2)
          yield* claim(id, 2, 0)
          yield* receipts(id, [{ _tag: "Released", seq: 1 }], 1)
          yield* store.releaseLeases(id, { to: "pending" })
          assert.strictEqual(yield* store.cancelPending(id), 2)
          assert.deepStrictEqual(yield* claimSeqs(id, 10, 2), [])
          yield* assertCounts(id, { skipped: 2 })
        }))
    })

    describe("reports", () => {
      it.effect("failures groups failed rows by reason and code, most frequent first", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const { id } = yield* fill(8)
          yield* claim(id, 8, 0)
          const undeliverable = (seq: number, code: string): ProgressStore.ReceiptOutcome => ({
            _tag: "Failed",
            seq,
            code,
            reason: "undeliverable"
          })
          yield* receipts(id, [
            undeliverable(1, "131026"),
            { _tag: "Failed", seq: 2, reason: "bad parameter" },
            undeliverable(3, "131026"),
            undeliverable(4, "131047"),
            { _tag: "Failed", seq: 5, reason: "bad parameter" },
            undeliverable(6, "131026"),
            undeliverable(7, "131026"),
            { _tag: "Accepted", seq: 8 }
          ], 1)
          // A late delivery outranks the failure: that row no longer counts.
          yield* apply(byId(id, 7, RecipientStatus.delivered, 2))
          const failures = yield* store.failures(id)
          assert.deepStrictEqual(failures.map((f) => [f.reason, f.code, f.count]), [
            ["undeliverable", "131026", 3],
            ["bad parameter", undefined, 2],
            ["undeliverable", "131047", 1]
          ])
          assert.deepStrictEqual(yield* store.failures(yield* Broadcast.makeId), [])
        }))

      it.effect("nextRetryAt is the earliest notBefore among rows waiting for a retry", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const { id } = yield* fill(4)
          assert.isTrue(Option.isNone(yield* store.nextRetryAt(id)))
          yield* claim(id, 4, 0)
          yield* receipts(id, [
            { _tag: "Retry", seq: 1, notBefore: at(90), error: "busy" },
            { _tag: "Retry", seq: 2, notBefore: at(40), error: "busy" },
            { _tag: "Retry", seq: 3, notBefore: at(60), error: "busy" },
            { _tag: "Accepted", seq: 4 }
          ], 1)
          const next = () => Effect.map(store.nextRetryAt(id), (instant) => ms(Option.getOrUndefined(instant)))
          assert.strictEqual(yield* next(), ms(at(40)))
          assert.deepStrictEqual(yield* claimSeqs(id, 10, 45), [2])
          assert.strictEqual(yield* next(), ms(at(60)), "a claimed row is no longer waiting")
          yield* receipts(id, [{ _tag: "Accepted", seq: 2 }], 46)
          assert.strictEqual(yield* next(), ms(at(60)))
          assert.deepStrictEqual(yield* claimSeqs(id, 10, 100), [1, 3])
          assert.isUndefined(yield* next())
          assert.isTrue(Option.isNone(yield* store.nextRetryAt(yield* Broadcast.makeId)))
        }))
    })
  })
