// The workload bench/store times, on one broadcast of N recipients:
// - insert: N recipients through `insertRecipients`, 1,000 per call;
// - claim + record: claim(1,000) then `recordReceipts` (every row Accepted with a provider message id), until a claim
//   comes back empty;
// - events: a `delivered` status event per recipient by provider message id, 1,000 per `applyStatusEvents`.
// Only the store calls are timed (building the batches is not); the end counts are checked.
import * as Address from "@crier/core/Address"
import * as Broadcast from "@crier/core/Broadcast"
import * as ProgressStore from "@crier/core/ProgressStore"
import * as Recipient from "@crier/core/Recipient"
import * as RecipientStatus from "@crier/core/RecipientStatus"
import * as StatusEvent from "@crier/core/StatusEvent"
import * as TemplateParams from "@crier/core/TemplateParams"
import { DateTime, Effect } from "effect"
import { template } from "../data/template.ts"

const batch = 1_000
const slices = 10

const base = DateTime.makeUnsafe(Date.UTC(2026, 0, 1))
const at = (seconds: number) => DateTime.add(base, { seconds })

const people = (from: number, count: number): ReadonlyArray<Recipient.NewRecipient> =>
  Array.from({ length: count }, (_, i) =>
    new Recipient.NewRecipient({
      address: Address.PhoneNumber.make(`+55119${70_000_000 + from + i}`),
      params: new TemplateParams.TemplateParams({ body: [`Name${from + i}`], buttons: [] }),
      metadata: { customer: `c-${from + i}` }
    }))

const providerId = (id: Broadcast.BroadcastId, seq: number) => `wamid.${id}.${seq}`

export interface Figures {
  readonly insertPerSecond: number
  readonly claimRecordPerSecond: number
  readonly eventsPerSecond: number
  /** Claim and record apart, millis per 1,000 recipients. */
  readonly claimMillis: number
  readonly recordMillis: number
  /** Claim + record recipients/s in each tenth of the run. */
  readonly slices: ReadonlyArray<number>
}

/** Times `effect` (wall clock), adding the millis to `total[key]`. */
const timed = <A, E, R, K extends string>(total: Record<K, number>, key: K, effect: Effect.Effect<A, E, R>) =>
  Effect.suspend(() => {
    const started = performance.now()
    return Effect.tap(effect, () => Effect.sync(() => (total[key] += performance.now() - started)))
  })

/** One broadcast of `count` recipients through insert, claim + record, and status events; checks the end counts. */
export const run = (count: number) =>
  Effect.gen(function*() {
    const store = yield* ProgressStore.ProgressStore
    const id = yield* Broadcast.makeId
    yield* store.createBroadcast(
      new Broadcast.Broadcast({
        id,
        name: "bench",
        transport: "memory",
        sender: "15550001111",
        template,
        policy: new Broadcast.Policy({}),
        status: "draft",
        createdAt: base
      })
    )
    const total = { insert: 0, claim: 0, record: 0, events: 0 }

    for (let from = 0; from < count; from += batch) {
      const list = people(from, Math.min(batch, count - from))
      const result = yield* timed(total, "insert", store.insertRecipients(id, list))
      if (result.inserted !== list.length) return yield* Effect.die(`inserted ${result.inserted} of ${list.length}`)
    }

    const sliceMillis = Array.from({ length: slices }, () => 0)
    const sliceRows = Array.from({ length: slices }, () => 0)
    let claimed = 0
    for (let round = 0;; round++) {
      const before = total.claim + total.record
      const rows = yield* timed(
        total,
        "claim",
        store.claim(id, { limit: batch, owner: "bench", leaseMillis: 60_000, now: at(round) })
      )
      if (rows.length === 0) break
      const outcomes = rows.map((row): ProgressStore.ReceiptOutcome => ({
        _tag: "Accepted",
        seq: row.seq,
        providerMessageId: providerId(id, row.seq)
      }))
      yield* timed(total, "record", store.recordReceipts(id, outcomes, at(round)))
      const slice = Math.min(slices - 1, Math.floor((claimed * slices) / count))
      sliceMillis[slice]! += total.claim + total.record - before
      sliceRows[slice]! += rows.length
      claimed += rows.length
    }
    if (claimed !== count) return yield* Effect.die(`claimed ${claimed} of ${count}`)

    for (let from = 1; from <= count; from += batch) {
      const events = Array.from({ length: Math.min(batch, count - from + 1) }, (_, i) =>
        new StatusEvent.StatusEvent({
          ref: { _tag: "ByProviderMessageId", providerMessageId: providerId(id, from + i) },
          status: RecipientStatus.delivered,
          at: at(100_000)
        }))
      const result = yield* timed(total, "events", store.applyStatusEvents(events))
      if (result.applied !== events.length) return yield* Effect.die(`applied ${JSON.stringify(result)}`)
    }

    const counts = yield* store.counts(id)
    if (counts.delivered !== count || counts.total !== count) {
      return yield* Effect.die(`end counts ${JSON.stringify(counts)}`)
    }
    const perSecond = (rows: number, millis: number) => Math.round((rows * 1000) / millis)
    return {
      insertPerSecond: perSecond(count, total.insert),
      claimRecordPerSecond: perSecond(count, total.claim + total.record),
      eventsPerSecond: perSecond(count, total.events),
      claimMillis: (total.claim * batch) / count,
      recordMillis: (total.record * batch) / count,
      slices: sliceRows.map((rows, i) => perSecond(rows, sliceMillis[i]!))
    } satisfies Figures
  })
