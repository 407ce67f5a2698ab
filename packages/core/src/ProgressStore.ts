/**
 * The port that owns all durable state of crier: broadcasts and their guarded status transitions, recipients and
 * their statuses. Implementations: `layerMemory` here (tests, users' own tests), `layerSql` in @crier/store-sql.
 * Every implementation passes the conformance suite in `@crier/core/testing`.
 */
import { Context, type DateTime, type Effect, Layer, Option, Result, Schema } from "effect"
import type * as Address from "./Address.ts"
import * as Broadcast from "./Broadcast.ts"
import * as BroadcastStatus from "./BroadcastStatus.ts"
import * as MemoryStore from "./internal/memoryStore.ts"
import type * as Recipient from "./Recipient.ts"
import * as RecipientStatus from "./RecipientStatus.ts"
import type * as StatusEvent from "./StatusEvent.ts"

export class StoreError extends Schema.TaggedError<StoreError>()("StoreError", {
  reason: Schema.Literals(["Unavailable", "Corrupt", "Conflict", "Unknown"]),
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

export class BroadcastNotFound extends Schema.TaggedError<BroadcastNotFound>()("BroadcastNotFound", {
  broadcastId: Schema.String
}) {
  override get message() {
    return `no broadcast ${this.broadcastId} in this store`
  }
}

/** Recipients can only be added while the broadcast is a draft or scheduled (checked atomically with the insert). */
export class BroadcastNotEditable extends Schema.TaggedError<BroadcastNotEditable>()("BroadcastNotEditable", {
  broadcastId: Schema.String,
  status: BroadcastStatus.BroadcastStatus
}) {
  override get message() {
    return `broadcast ${this.broadcastId} is ${this.status}: recipients can only be added to a draft or scheduled broadcast`
  }
}

/** Fields that may change together with a status transition. `null` clears a field. */
export interface BroadcastPatch {
  readonly statusReason?: string | null
  readonly remoteId?: string
  readonly scheduledAt?: DateTime.Utc | null
  readonly startedAt?: DateTime.Utc
  readonly completedAt?: DateTime.Utc
}

export interface TransitionRequest {
  /** The transition happens only if the current status is one of these (compare-and-set). */
  readonly from: ReadonlyArray<BroadcastStatus.BroadcastStatus>
  readonly to: BroadcastStatus.BroadcastStatus
  readonly patch?: BroadcastPatch
}

/**
 * Why a transition's compare-and-set found `current` instead of one of `request.from`: the refusal
 * `BroadcastStatus` gives for the actual status, or, when that move would be legal, that the broadcast is not in a
 * state the caller expected. Every store reports it the same way.
 */
export const refusedTransition = (
  current: BroadcastStatus.BroadcastStatus,
  request: TransitionRequest
): BroadcastStatus.InvalidTransition =>
  Result.match(BroadcastStatus.transition(current, request.to), {
    onFailure: (refusal) => refusal,
    onSuccess: () =>
      new BroadcastStatus.InvalidTransition({
        from: current,
        to: request.to,
        reason: current === "sending" || current === "paused" ? "AlreadyStarted" : "NotSending",
        message: `the broadcast is ${current}, not ${request.from.join(" or ")}`
      })
  })

export interface InsertResult {
  readonly inserted: number
  /** Rows of this call whose address the broadcast already had (from this call or an earlier one). */
  readonly duplicates: ReadonlyArray<{ readonly index: number; readonly firstSeq: number }>
}

export interface ClaimRequest {
  readonly limit: number
  /** Who holds the lease: one id per running send loop. */
  readonly owner: string
  readonly leaseMillis: number
  readonly now: DateTime.Utc
}

/** What happened to one claimed recipient; recorded for a whole batch in one write. */
export type ReceiptOutcome =
  | { readonly _tag: "Accepted"; readonly seq: number; readonly providerMessageId?: string | undefined }
  | { readonly _tag: "Failed"; readonly seq: number; readonly code?: string | undefined; readonly reason: string }
  /** Back to pending, not before `notBefore`; the attempt counts. */
  | { readonly _tag: "Retry"; readonly seq: number; readonly notBefore: DateTime.Utc; readonly error: string }
  /** Back to pending untouched: it was claimed but never handed to the provider (breaker, pause). */
  | { readonly _tag: "Released"; readonly seq: number }
  /**
   * `in_doubt`: the call may have reached the provider without an answer (a timeout), so under at-most-once it is
   * never sent again; a later status event settles it. The attempt counts.
   */
  | { readonly _tag: "InDoubt"; readonly seq: number; readonly error: string }

export type Counts = { readonly [K in RecipientStatus.Tag]: number } & { readonly total: number }

export interface ApplyResult {
  /** Events that changed a row: its status, an earlier timestamp, or a first provider message id. */
  readonly applied: number
  /** Events that changed nothing (duplicates, older news). */
  readonly unchanged: number
  /** Events whose recipient this store does not know. */
  readonly unknown: number
}

export interface RecipientQuery {
  readonly status?: RecipientStatus.Tag | undefined
  /** Keyset pagination: recipients with `seq` greater than this. */
  readonly afterSeq?: number | undefined
  readonly limit: number
}

export interface RecipientPage {
  readonly items: ReadonlyArray<Recipient.Recipient>
  readonly nextAfterSeq: Option.Option<number>
}

export interface FailureCount {
  readonly reason: string
  readonly code: string | undefined
  readonly count: number
}

export interface ReleaseRequest {
  /** Only leases that expired at or before this instant; absent = every lease (the caller knows no worker lives). */
  readonly expiredBy?: DateTime.Utc | undefined
  /** `in_doubt` (at-most-once) or `pending` (at-least-once: send again). */
  readonly to: "in_doubt" | "pending"
}

export class ProgressStore extends Context.Service<ProgressStore, {
  /** An id the store already has fails with `StoreError { reason: "Conflict" }`. */
  readonly createBroadcast: (broadcast: Broadcast.Broadcast) => Effect.Effect<void, StoreError>
  readonly getBroadcast: (
    id: Broadcast.BroadcastId
  ) => Effect.Effect<Broadcast.Broadcast, StoreError | BroadcastNotFound>
  /** Newest first. */
  readonly listBroadcasts: (options?: {
    readonly limit?: number
  }) => Effect.Effect<ReadonlyArray<Broadcast.Broadcast>, StoreError>
  /** Atomic compare-and-set of the status, validated by `BroadcastStatus.transition`. */
  readonly transitionBroadcast: (
    id: Broadcast.BroadcastId,
    request: TransitionRequest
  ) => Effect.Effect<
    Broadcast.Broadcast,
    StoreError | BroadcastNotFound | BroadcastStatus.InvalidTransition
  >
  readonly setRemoteId: (
    id: Broadcast.BroadcastId,
    remoteId: string
  ) => Effect.Effect<void, StoreError | BroadcastNotFound>
  /** Inserts in order, assigning the next seqs; an address the broadcast already has is reported, not inserted. */
  readonly insertRecipients: (
    id: Broadcast.BroadcastId,
    recipients: ReadonlyArray<Recipient.NewRecipient>
  ) => Effect.Effect<InsertResult, StoreError | BroadcastNotFound | BroadcastNotEditable>
  /** Moves up to `limit` claimable pending recipients (lowest seq first) to `submitting` under a lease. */
  readonly claim: (
    id: Broadcast.BroadcastId,
    request: ClaimRequest
  ) => Effect.Effect<ReadonlyArray<Recipient.Recipient>, StoreError>
  /** One write for a whole batch; outcomes for recipients no longer `submitting` are merged, never regress. */
  readonly recordReceipts: (
    id: Broadcast.BroadcastId,
    outcomes: ReadonlyArray<ReceiptOutcome>,
    now: DateTime.Utc
  ) => Effect.Effect<void, StoreError>
  /** Idempotent, monotonic (see `RecipientStatus.merge`); one write per call. */
  readonly applyStatusEvents: (
    events: ReadonlyArray<StatusEvent.StatusEvent>
  ) => Effect.Effect<ApplyResult, StoreError>
  readonly counts: (id: Broadcast.BroadcastId) => Effect.Effect<Counts, StoreError>
  /** The earliest `notBefore` among pending recipients that are waiting for a retry. */
  readonly nextRetryAt: (id: Broadcast.BroadcastId) => Effect.Effect<Option.Option<DateTime.Utc>, StoreError>
  readonly recipients: (
    id: Broadcast.BroadcastId,
    query: RecipientQuery
  ) => Effect.Effect<RecipientPage, StoreError>
  /** The most recently accepted recipient row for an address, across broadcasts (reply attribution). */
  readonly latestForAddress: (
    address: Address.Address
  ) => Effect.Effect<Option.Option<Recipient.Recipient>, StoreError>
  /** Recovery: `submitting` rows whose lease is gone go to `in_doubt` or back to `pending`. Returns how many. */
  readonly releaseLeases: (
    id: Broadcast.BroadcastId,
    request: ReleaseRequest
  ) => Effect.Effect<number, StoreError>
  /** At-least-once recovery: `in_doubt` rows go back to `pending`. Returns how many. */
  readonly requeueInDoubt: (id: Broadcast.BroadcastId) => Effect.Effect<number, StoreError>
  /** Cancel: every `pending` row becomes `skipped { cancelled }`. Returns how many. */
  readonly cancelPending: (id: Broadcast.BroadcastId) => Effect.Effect<number, StoreError>
  /** Failed recipients grouped by reason and code, most frequent first. */
  readonly failures: (id: Broadcast.BroadcastId) => Effect.Effect<ReadonlyArray<FailureCount>, StoreError>
}>()("@crier/core/ProgressStore") {
  /** An in-memory store for tests; each build of the layer is a new, empty store. */
  static readonly layerMemory: Layer.Layer<ProgressStore> = Layer.sync(ProgressStore, MemoryStore.make)
}

export const emptyCounts: Counts = {
  ...(Object.fromEntries(RecipientStatus.tags.map((tag) => [tag, 0])) as { [K in RecipientStatus.Tag]: number }),
  total: 0
}
