/**
 * The in-memory `ProgressStore` behind `ProgressStore.layerMemory`.
 *
 * Each broadcast keeps its rows in seq order, a count per status, the sets of `submitting` and `in_doubt` rows (what
 * recovery visits) and what a claim needs:
 * - `fresh`: the first row never claimed. Rows are inserted in seq order and leave `pending` for good unless claimed,
 *   so the rows from there on are claimable in order without any index;
 * - `ready`: a heap by seq of rows back in `pending` after a claim (released, recovered, or a retry that is due);
 * - `waiting`: a heap by `notBefore` of rows waiting for a retry, moved to `ready` when a claim finds them due, and
 *   `retries`, the same entries kept until the row is claimed again, for `nextRetryAt`.
 * Heap entries are checked when they surface instead of being removed when a row changes, so a status event or a
 * cancel never searches a heap.
 */
import { DateTime, Effect, Option } from "effect"
import type { Mutable } from "effect/Types"
import type * as Address from "../Address.ts"
import * as Broadcast from "../Broadcast.ts"
import * as BroadcastStatus from "../BroadcastStatus.ts"
import * as ProgressStore from "../ProgressStore.ts"
import * as Recipient from "../Recipient.ts"
import * as RecipientStatus from "../RecipientStatus.ts"
import * as RecipientUpdate from "../RecipientUpdate.ts"
import type * as StatusEvent from "../StatusEvent.ts"

type Store = (typeof ProgressStore.ProgressStore)["Service"]

interface Row extends RecipientUpdate.Row<DateTime.Utc> {
  readonly broadcastId: Broadcast.BroadcastId
  readonly seq: number
  readonly address: Address.Address
  readonly params: Recipient.NewRecipient["params"]
  readonly metadata: Recipient.NewRecipient["metadata"]
  /** Epoch millis at which the lease of a `submitting` row runs out. */
  leaseUntil: number
  /** Whether the row has an entry in `ready` (so it is pushed at most once). */
  queued: boolean
}

interface Waiting {
  readonly at: number
  readonly row: Row
}

interface Entry {
  broadcast: Broadcast.Broadcast
  readonly rows: Array<Row>
  readonly seqByAddress: Map<string, number>
  readonly counts: Mutable<ProgressStore.Counts>
  readonly tracked: { readonly submitting: Set<Row>; readonly in_doubt: Set<Row> }
  /** Index in `rows` of the first row never claimed. */
  fresh: number
  readonly ready: Array<Row>
  readonly waiting: Array<Waiting>
  readonly retries: Array<Waiting>
}

// ---------------------------------------------------------------------------------------------------------------
// Binary min-heaps over arrays

const heapPush = <A>(heap: Array<A>, item: A, before: (a: A, b: A) => boolean): void => {
  let i = heap.length
  heap.push(item)
  while (i > 0) {
    const parent = (i - 1) >> 1
    const above = heap[parent]!
    if (!before(item, above)) break
    heap[i] = above
    i = parent
  }
  heap[i] = item
}

const heapPop = <A>(heap: Array<A>, before: (a: A, b: A) => boolean): A | undefined => {
  const top = heap[0]
  const last = heap.pop()
  if (last === undefined || heap.length === 0) return top
  let i = 0
  for (;;) {
    const left = 2 * i + 1
    if (left >= heap.length) break
    const right = left + 1
    const child = right < heap.length && before(heap[right]!, heap[left]!) ? right : left
    if (!before(heap[child]!, last)) break
    heap[i] = heap[child]!
    i = child
  }
  heap[i] = last
  return top
}

const bySeq = (a: Row, b: Row): boolean => a.seq < b.seq
const byTime = (a: Waiting, b: Waiting): boolean => a.at < b.at || (a.at === b.at && a.row.seq < b.row.seq)

const millis = DateTime.toEpochMillis

// ---------------------------------------------------------------------------------------------------------------
// Rows

const toRecipient = (row: Row): Recipient.Recipient => Recipient.fromStored(row, (instant) => instant)

// ---------------------------------------------------------------------------------------------------------------
// The store

export const make = (): Store => {
  const broadcasts = new Map<string, Entry>()
  const byProviderMessageId = new Map<string, Row>()
  // Rows with an `acceptedAt`, per address: the candidates for reply attribution. A row joins once (its first
  // `acceptedAt`), so an array does; a set per address would cost an allocation per accepted row.
  const acceptedByAddress = new Map<string, Array<Row>>()

  const entryOf = (id: Broadcast.BroadcastId) =>
    Effect.suspend(() => {
      const entry = broadcasts.get(id)
      return entry === undefined
        ? Effect.fail(new ProgressStore.BroadcastNotFound({ broadcastId: id }))
        : Effect.succeed(entry)
    })

  const rowOf = (ref: StatusEvent.RecipientRef): Row | undefined =>
    ref._tag === "ById"
      ? broadcasts.get(ref.broadcastId)?.rows[ref.seq - 1]
      : byProviderMessageId.get(ref.providerMessageId)

  const setStatus = (entry: Entry, row: Row, status: RecipientStatus.RecipientStatus): void => {
    const from = row.status._tag
    const to = status._tag
    if (from !== to) {
      entry.counts[from]--
      entry.counts[to]++
      if (from === "submitting" || from === "in_doubt") entry.tracked[from].delete(row)
      if (to === "submitting" || to === "in_doubt") entry.tracked[to].add(row)
    }
    row.status = status
  }

  // The claimable candidate with the lowest seq (not yet checked for status or `notBefore`), taken out of line.
  const takeNext = (entry: Entry): Row | undefined => {
    const fresh = entry.rows[entry.fresh]
    const queued = entry.ready[0]
    if (fresh !== undefined && (queued === undefined || fresh.seq < queued.seq)) {
      entry.fresh++
      return fresh
    }
    if (queued === undefined) return undefined
    heapPop(entry.ready, bySeq)
    queued.queued = false
    return queued
  }

  const enqueue = (entry: Entry, row: Row): void => {
    if (row.notBefore === undefined) {
      if (!row.queued) {
        row.queued = true
        heapPush(entry.ready, row, bySeq)
      }
    } else {
      const waiting: Waiting = { at: millis(row.notBefore), row }
      heapPush(entry.waiting, waiting, byTime)
      heapPush(entry.retries, waiting, byTime)
    }
  }

  const isWaiting = (waiting: Waiting): boolean =>
    waiting.row.status._tag === "pending" && waiting.row.notBefore !== undefined &&
    millis(waiting.row.notBefore) === waiting.at

  // An engine move (claim, release, recovery, cancel), checked against `RecipientStatus.canTransition`.
  const move = (entry: Entry, row: Row, to: RecipientStatus.RecipientStatus, now: DateTime.Utc): boolean => {
    if (!RecipientStatus.canTransition(row.status._tag, to._tag)) return false
    setStatus(entry, row, to)
    row.updatedAt = now
    if (to._tag === "pending") enqueue(entry, row)
    return true
  }

  // The shared row rules (`RecipientUpdate`), with this store's counts and indexes kept in step.
  const hooks: RecipientUpdate.Hooks<DateTime.Utc, Row> = {
    millis,
    fromDateTime: (instant) => instant,
    setStatus: (row, status) => setStatus(broadcasts.get(row.broadcastId)!, row, status),
    requeued: (row) => enqueue(broadcasts.get(row.broadcastId)!, row),
    accepted: (row) => {
      const rows = acceptedByAddress.get(row.address)
      if (rows === undefined) acceptedByAddress.set(row.address, [row])
      else rows.push(row)
    },
    identified: (row) => byProviderMessageId.set(row.providerMessageId!, row)
  }

  const patched = (
    broadcast: Broadcast.Broadcast,
    status: BroadcastStatus.BroadcastStatus,
    patch: ProgressStore.BroadcastPatch
  ): Broadcast.Broadcast => {
    const fields: Mutable<ConstructorParameters<typeof Broadcast.Broadcast>[0]> = { ...broadcast, status }
    if (patch.statusReason === null) delete fields.statusReason
    else if (patch.statusReason !== undefined) fields.statusReason = patch.statusReason
    if (patch.scheduledAt === null) delete fields.scheduledAt
    else if (patch.scheduledAt !== undefined) fields.scheduledAt = patch.scheduledAt
    if (patch.remoteId !== undefined) fields.remoteId = patch.remoteId
    if (patch.startedAt !== undefined) fields.startedAt = patch.startedAt
    if (patch.completedAt !== undefined) fields.completedAt = patch.completedAt
    return new Broadcast.Broadcast(fields)
  }

  const store: Store = {
    createBroadcast: Effect.fn("ProgressStore.createBroadcast")(function*(broadcast) {
      if (broadcasts.has(broadcast.id)) {
        return yield* new ProgressStore.StoreError({
          reason: "Conflict",
          message: `broadcast ${broadcast.id} already exists`
        })
      }
      broadcasts.set(broadcast.id, {
        broadcast,
        rows: [],
        seqByAddress: new Map(),
        counts: { ...ProgressStore.emptyCounts },
        tracked: { submitting: new Set(), in_doubt: new Set() },
        fresh: 0,
        ready: [],
        waiting: [],
        retries: []
      })
    }),

    getBroadcast: Effect.fn("ProgressStore.getBroadcast")(function*(id) {
      return (yield* entryOf(id)).broadcast
    }),

    listBroadcasts: Effect.fn("ProgressStore.listBroadcasts")(function*(options) {
      const all = Array.from(broadcasts.values(), (entry) => entry.broadcast).sort((a, b) =>
        millis(b.createdAt) - millis(a.createdAt) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0)
      )
      return options?.limit === undefined ? all : all.slice(0, options.limit)
    }),

    transitionBroadcast: Effect.fn("ProgressStore.transitionBroadcast")(function*(id, request) {
      const entry = yield* entryOf(id)
      const current = entry.broadcast.status
      if (!request.from.includes(current)) return yield* ProgressStore.refusedTransition(current, request)
      const to = yield* Effect.fromResult(BroadcastStatus.transition(current, request.to))
      entry.broadcast = patched(entry.broadcast, to, request.patch ?? {})
      return entry.broadcast
    }),

    setRemoteId: Effect.fn("ProgressStore.setRemoteId")(function*(id, remoteId) {
      const entry = yield* entryOf(id)
      entry.broadcast = patched(entry.broadcast, entry.broadcast.status, { remoteId })
    }),

    insertRecipients: Effect.fn("ProgressStore.insertRecipients")(function*(id, recipients) {
      const entry = yield* entryOf(id)
      const status = entry.broadcast.status
      if (!BroadcastStatus.acceptsRecipients(status)) {
        return yield* new ProgressStore.BroadcastNotEditable({ broadcastId: id, status })
      }
      const now = yield* DateTime.now
      const duplicates: Array<{ readonly index: number; readonly firstSeq: number }> = []
      for (let index = 0; index < recipients.length; index++) {
        const recipient = recipients[index]!
        const firstSeq = entry.seqByAddress.get(recipient.address)
        if (firstSeq !== undefined) {
          duplicates.push({ index, firstSeq })
          continue
        }
        const row: Row = {
          broadcastId: id,
          seq: entry.rows.length + 1,
          address: recipient.address,
          params: recipient.params,
          metadata: recipient.metadata,
          status: RecipientStatus.pending,
          attempts: 0,
          providerMessageId: undefined,
          lastError: undefined,
          notBefore: undefined,
          updatedAt: now,
          acceptedAt: undefined,
          sentAt: undefined,
          deliveredAt: undefined,
          readAt: undefined,
          repliedAt: undefined,
          failedAt: undefined,
          leaseUntil: 0,
          queued: false
        }
        entry.rows.push(row)
        entry.seqByAddress.set(row.address, row.seq)
        entry.counts.pending++
        entry.counts.total++
      }
      return { inserted: recipients.length - duplicates.length, duplicates }
    }),

    claim: Effect.fn("ProgressStore.claim")(function*(id, request) {
      const entry = broadcasts.get(id)
      if (entry === undefined) return []
      const now = millis(request.now)
      while (entry.waiting.length > 0 && entry.waiting[0]!.at <= now) {
        const waiting = heapPop(entry.waiting, byTime)!
        if (isWaiting(waiting) && !waiting.row.queued) {
          waiting.row.queued = true
          heapPush(entry.ready, waiting.row, bySeq)
        }
      }
      const claimed: Array<Recipient.Recipient> = []
      // Rows a claim with a later `now` made ready, but not yet due at this one's.
      const early: Array<Row> = []
      while (claimed.length < request.limit) {
        const row = takeNext(entry)
        if (row === undefined) break
        if (row.status._tag !== "pending") continue
        if (row.notBefore !== undefined && millis(row.notBefore) > now) {
          early.push(row)
          continue
        }
        move(entry, row, RecipientStatus.submitting, request.now)
        row.attempts++
        row.leaseUntil = now + request.leaseMillis
        claimed.push(toRecipient(row))
      }
      for (const row of early) enqueue(entry, row)
      return claimed
    }),

    recordReceipts: Effect.fn("ProgressStore.recordReceipts")(function*(id, outcomes, now) {
      const entry = broadcasts.get(id)
      if (entry === undefined) return
      for (const outcome of outcomes) {
        const row = entry.rows[outcome.seq - 1]
        if (row !== undefined) RecipientUpdate.receive(hooks, row, outcome, now)
      }
    }),

    applyStatusEvents: Effect.fn("ProgressStore.applyStatusEvents")(function*(events) {
      const now = yield* DateTime.now
      let applied = 0
      let unchanged = 0
      let unknown = 0
      for (const event of events) {
        const row = rowOf(event.ref)
        if (row === undefined) unknown++
        else if (
          RecipientUpdate.isObservable(event.status) &&
          RecipientUpdate.observe(hooks, row, event.status, event.at, event.providerMessageId, now)
        ) applied++
        else unchanged++
      }
      return { applied, unchanged, unknown }
    }),

    counts: Effect.fn("ProgressStore.counts")(function*(id) {
      const entry = broadcasts.get(id)
      if (entry === undefined) return ProgressStore.emptyCounts
      return { ...entry.counts }
    }),

    nextRetryAt: Effect.fn("ProgressStore.nextRetryAt")(function*(id) {
      const entry = broadcasts.get(id)
      if (entry === undefined) return Option.none()
      while (entry.retries.length > 0 && !isWaiting(entry.retries[0]!)) heapPop(entry.retries, byTime)
      const next = entry.retries[0]
      return next === undefined ? Option.none() : Option.fromUndefinedOr(next.row.notBefore)
    }),

    recipients: Effect.fn("ProgressStore.recipients")(function*(id, query) {
      const rows = broadcasts.get(id)?.rows ?? []
      const items: Array<Recipient.Recipient> = []
      let more = false
      for (let i = Math.max(0, query.afterSeq ?? 0); i < rows.length; i++) {
        const row = rows[i]!
        if (query.status !== undefined && row.status._tag !== query.status) continue
        if (items.length >= query.limit) {
          more = true
          break
        }
        items.push(toRecipient(row))
      }
      const last = items[items.length - 1]
      return { items, nextAfterSeq: more && last !== undefined ? Option.some(last.seq) : Option.none() }
    }),

    latestForAddress: Effect.fn("ProgressStore.latestForAddress")(function*(address) {
      let latest: Row | undefined
      for (const row of acceptedByAddress.get(address) ?? []) {
        if (latest === undefined || isLater(row, latest)) latest = row
      }
      return latest === undefined ? Option.none() : Option.some(toRecipient(latest))
    }),

    releaseLeases: Effect.fn("ProgressStore.releaseLeases")(function*(id, request) {
      const entry = broadcasts.get(id)
      if (entry === undefined) return 0
      const now = yield* DateTime.now
      const expiredBy = request.expiredBy === undefined ? Infinity : millis(request.expiredBy)
      const to = request.to === "pending" ? RecipientStatus.pending : RecipientStatus.inDoubt
      let released = 0
      for (const row of Array.from(entry.tracked.submitting)) {
        if (row.leaseUntil <= expiredBy && move(entry, row, to, now)) released++
      }
      return released
    }),

    requeueInDoubt: Effect.fn("ProgressStore.requeueInDoubt")(function*(id) {
      const entry = broadcasts.get(id)
      if (entry === undefined) return 0
      const now = yield* DateTime.now
      let requeued = 0
      for (const row of Array.from(entry.tracked.in_doubt)) {
        if (move(entry, row, RecipientStatus.pending, now)) requeued++
      }
      return requeued
    }),

    cancelPending: Effect.fn("ProgressStore.cancelPending")(function*(id) {
      const entry = broadcasts.get(id)
      if (entry === undefined) return 0
      const now = yield* DateTime.now
      let cancelled = 0
      // Pending rows may be anywhere (never claimed, released, waiting for a retry): a cancel is rare, scan them all.
      for (const row of entry.rows) {
        if (row.status._tag === "pending" && move(entry, row, RecipientStatus.skipped("cancelled"), now)) cancelled++
      }
      // No row is pending any more, so nothing is left to claim.
      for (const row of entry.ready) row.queued = false
      entry.fresh = entry.rows.length
      entry.ready.length = 0
      entry.waiting.length = 0
      entry.retries.length = 0
      return cancelled
    }),

    failures: Effect.fn("ProgressStore.failures")(function*(id) {
      const groups = new Map<string, Mutable<ProgressStore.FailureCount>>()
      for (const row of broadcasts.get(id)?.rows ?? []) {
        if (row.status._tag !== "failed") continue
        const { code, reason } = row.status
        const key = JSON.stringify([reason, code ?? null])
        const group = groups.get(key)
        if (group === undefined) groups.set(key, { reason, code, count: 1 })
        else group.count++
      }
      return Array.from(groups.values()).sort((a, b) =>
        b.count - a.count || compare(a.reason, b.reason) || compare(a.code ?? "", b.code ?? "")
      )
    })
  }

  return store
}

const compare = (a: string, b: string): number => a < b ? -1 : a > b ? 1 : 0

// Latest `acceptedAt` first; ties (same instant) broken by broadcast id then seq, so the answer is stable.
const isLater = (a: Row, b: Row): boolean =>
  (millis(a.acceptedAt!) - millis(b.acceptedAt!) || compare(a.broadcastId, b.broadcastId) || a.seq - b.seq) > 0
