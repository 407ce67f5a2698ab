/**
 * The engine users call: create a broadcast, add its recipients, start (or schedule) it, watch it, pause, resume,
 * cancel, feed it provider status events and inbound replies, and recover after a crash.
 *
 * Each sending broadcast has one send loop, a fiber owned by the `Broadcaster` layer:
 *
 *   claim a batch → wait for the pacer → submit → record every outcome in one write → re-read the status → …
 *
 * - Pacing: `Pacer` (effect/persistence `RateLimiter`). Message limits are skipped when the provider paces itself.
 * - Outcomes: `RetryPolicy` decides per recipient — retry later (the store keeps `notBefore`, the attempt counts),
 *   fail for good, or trip the breaker: a broadcast- or account-scope reason pauses the broadcast with the reason
 *   (an account-scope one pauses every broadcast sending on the transport), the claimed rows not yet handed over go
 *   back untouched (`Released`), and nothing more is submitted. A batch that failed as a whole is retried after the
 *   backoff before anything else is claimed, so an outage burns one attempt per try, not the list.
 * - Pause and cancel take effect after the batch in flight is recorded (per-message transports: after the claimed
 *   batch, at most `batchSize` messages).
 * - When nothing is claimable: sleep until the next retry is due; once every row is settled, `start` the remote
 *   campaign (transports where `submit` does not send), poll poll-tracked transports until the remote side is
 *   done, and complete. Webhook statuses keep arriving through `applyStatusEvents` after that.
 * - In doubt: a row left `submitting` by a dead process may or may not have reached the provider. `recover` moves
 *   such rows to `in_doubt` (policy `at-most-once`, the default: never resent, reported) or back to `pending`
 *   (`at-least-once`, with the broadcast's earlier `in_doubt` rows), then restarts the send loops. Rows a dead
 *   process was adding to a Kapso campaign go back to `pending` under either policy: nothing was sent yet, and Kapso
 *   drops an address added twice. A call that got no answer in time (`Timeout`) is in the same doubt: at-most-once
 *   sets its rows `in_doubt` (a status webhook that comes later settles them), and pauses the broadcast after
 *   `maxUnansweredCalls` such calls in a row; at-least-once retries them.
 *
 * Every wait is on the Effect `Clock`, so tests drive the engine with `TestClock`.
 *
 * `layer` paces with an in-process `RateLimiter` (its memory store); `layerWithRateLimiter` takes the
 * `RateLimiter` from the environment, so workers sharing a Redis store share one sender's rate.
 */
import {
  Array as Arr,
  Cause,
  Clock,
  Context,
  DateTime,
  Duration,
  Effect,
  FiberMap,
  type FileSystem,
  Layer,
  Option,
  PubSub,
  Random,
  Result,
  Schedule,
  Schema,
  Semaphore,
  Stream
} from "effect"
import { RateLimiter } from "effect/persistence"
import type * as Address from "./Address.ts"
import * as Broadcast from "./Broadcast.ts"
import * as BroadcastStatus from "./BroadcastStatus.ts"
import { BroadcastTransport, type ItemOutcome, type Outgoing } from "./BroadcastTransport.ts"
import * as CsvImport from "./CsvImport.ts"
import * as Pacer from "./Pacer.ts"
import * as ProgressStore from "./ProgressStore.ts"
import * as Recipient from "./Recipient.ts"
import * as RecipientStatus from "./RecipientStatus.ts"
import * as RetryPolicy from "./RetryPolicy.ts"
import * as StatusEvent from "./StatusEvent.ts"
import * as TemplateParams from "./TemplateParams.ts"
import * as TemplateSpec from "./TemplateSpec.ts"
import type * as TransportError from "./TransportError.ts"

// ---------------------------------------------------------------------------------------------------------------
// Errors and values

/** A request the engine refuses before touching anything. */
export class BroadcastRefused extends Schema.TaggedError<BroadcastRefused>()("BroadcastRefused", {
  reason: Schema.Literals(["InvalidName", "TemplateUnsupported", "NoRecipients"]),
  message: Schema.String,
  broadcastId: Schema.optional(Schema.String)
}) {}

type Lookup = ProgressStore.StoreError | ProgressStore.BroadcastNotFound
type Move = Lookup | BroadcastStatus.InvalidTransition

export interface CreateOptions {
  readonly name: string
  readonly template: TemplateSpec.TemplateSpec
  /** Kapso config id, Keebai channel id, Meta phone_number_id. */
  readonly sender: string
  readonly policy?: Broadcast.Policy | undefined
}

/** A CSV file of recipients, read by `CsvImport.fromFile` against the broadcast's template. */
export interface CsvSource {
  readonly csv: string
  readonly defaultRegion?: string | undefined
  readonly delimiter?: CsvImport.Delimiter | "auto" | undefined
}

/**
 * A row that was not added. `index` is its position in an array or stream (from 0), `line` its line in a file (or
 * the `line` a `NewRecipient` carries).
 */
export type RowIssue =
  | {
    readonly _tag: "Rejected"
    readonly index?: number | undefined
    readonly line?: number | undefined
    readonly column?: string | undefined
    readonly reason: string
  }
  | {
    readonly _tag: "Duplicate"
    readonly index?: number | undefined
    readonly line?: number | undefined
    readonly address: Address.Address
    /** The line of the first occurrence in the same file. */
    readonly firstLine?: number | undefined
    /** The row already in the broadcast (from this call or an earlier one). */
    readonly firstSeq?: number | undefined
  }

export interface AddReport {
  readonly added: number
  /** Rows whose address the broadcast (or the same file) already had. */
  readonly duplicates: number
  /** Rows refused by the importer or by template validation. */
  readonly rejected: number
  /** Blank lines of a file. */
  readonly blank: number
  /** The first `maxIssues` duplicate and rejected rows, in input order. */
  readonly issues: ReadonlyArray<RowIssue>
}

/** Recipients written per store insert: a file of any size streams through in chunks of this many. */
export const insertChunk = 1000
/** Issues kept in an `AddReport`; the counts go on. */
export const maxIssues = 1000

export interface Snapshot {
  readonly broadcastId: Broadcast.BroadcastId
  readonly status: BroadcastStatus.BroadcastStatus
  readonly statusReason: Option.Option<string>
  /** Per recipient status; they add up to `counts.total`. */
  readonly counts: ProgressStore.Counts
  /** Recipients leaving `pending`/`submitting` per second, over the last `rateWindow`. */
  readonly ratePerSecond: number
  /** Time left at that rate, while sending. */
  readonly eta: Option.Option<Duration.Duration>
  readonly at: DateTime.Utc
}

export interface ProgressOptions {
  /** Time between snapshots. Default 1 second. */
  readonly every?: Duration.Duration | undefined
}

/** The window `Snapshot.ratePerSecond` is measured over. */
export const rateWindow = Duration.seconds(10)

export interface Reply {
  readonly from: Address.Address
  /** When the reply was received. Default: now. */
  readonly at?: DateTime.Utc | undefined
  readonly text?: string | undefined
}

/** What an inbound reply answers: the latest broadcast its sender got. Field names as an agent's prompt wants them. */
export class ReplyContext extends Schema.Class<ReplyContext>("@crier/core/Broadcaster/ReplyContext")({
  broadcast_id: Broadcast.BroadcastId,
  broadcast_name: Schema.String,
  template_name: Schema.String,
  /** The body as this recipient got it, when the template's text is known. */
  template_content: Schema.optional(Schema.String),
  sent_at: Schema.DateTimeUtc,
  reply_text: Schema.optional(Schema.String)
}) {}

export interface RecoverOptions {
  /** Treat every `submitting` row as abandoned, not only those whose lease ran out: no other worker is alive. */
  readonly takeOver?: boolean | undefined
}

export interface Recovered {
  readonly broadcastId: Broadcast.BroadcastId
  /** Rows moved to `in_doubt` (at-most-once). */
  readonly inDoubt: number
  /** Rows put back to `pending` to be sent again (at-least-once). */
  readonly requeued: number
}

export interface AddRecipients {
  (id: Broadcast.BroadcastId, source: CsvSource): Effect.Effect<
    AddReport,
    Lookup | ProgressStore.BroadcastNotEditable | CsvImport.ImportError,
    FileSystem.FileSystem
  >
  <E = never, R = never>(
    id: Broadcast.BroadcastId,
    source: ReadonlyArray<Recipient.NewRecipient> | Stream.Stream<Recipient.NewRecipient, E, R>
  ): Effect.Effect<AddReport, Lookup | ProgressStore.BroadcastNotEditable | E, R>
}

export class Broadcaster extends Context.Service<Broadcaster, {
  /** A new `draft`; refused when the transport cannot carry the template. */
  readonly create: (
    options: CreateOptions
  ) => Effect.Effect<Broadcast.Broadcast, ProgressStore.StoreError | BroadcastRefused>
  /** Validates, dedupes (against the whole broadcast) and inserts in chunks; row problems are reported. */
  readonly addRecipients: AddRecipients
  /** draft → scheduled; starts by itself at `sendAt` while this layer lives (and after `recover`). */
  readonly schedule: (id: Broadcast.BroadcastId, sendAt: DateTime.Utc) => Effect.Effect<Broadcast.Broadcast, Move>
  /** draft/scheduled → sending: opens the remote side and forks the send loop. */
  readonly start: (
    id: Broadcast.BroadcastId
  ) => Effect.Effect<Broadcast.Broadcast, Move | BroadcastRefused | TransportError.TransportError>
  readonly pause: (id: Broadcast.BroadcastId, reason?: string) => Effect.Effect<Broadcast.Broadcast, Move>
  readonly resume: (id: Broadcast.BroadcastId) => Effect.Effect<Broadcast.Broadcast, Move>
  /** Pending rows become `skipped { cancelled }`; the provider is asked to stop where it can. */
  readonly cancel: (id: Broadcast.BroadcastId) => Effect.Effect<Broadcast.Broadcast, Move>
  readonly get: (id: Broadcast.BroadcastId) => Effect.Effect<Broadcast.Broadcast, Lookup>
  /** Until the broadcast is completed, failed, cancelled or paused. */
  readonly wait: (id: Broadcast.BroadcastId) => Effect.Effect<Broadcast.Broadcast, Lookup>
  /** Snapshots until the broadcast is completed, failed, cancelled or paused (that one included). */
  readonly progress: (id: Broadcast.BroadcastId, options?: ProgressOptions) => Stream.Stream<Snapshot, Lookup>
  readonly recipients: (
    id: Broadcast.BroadcastId,
    query: ProgressStore.RecipientQuery
  ) => Effect.Effect<ProgressStore.RecipientPage, Lookup>
  /** The intake for provider webhooks. */
  readonly applyStatusEvents: (
    events: ReadonlyArray<StatusEvent.StatusEvent>
  ) => Effect.Effect<ProgressStore.ApplyResult, ProgressStore.StoreError>
  /** Marks the latest row sent to `from` replied; none when that address never got a broadcast. */
  readonly recordReply: (reply: Reply) => Effect.Effect<Option.Option<ReplyContext>, Lookup>
  readonly recover: (options?: RecoverOptions) => Effect.Effect<ReadonlyArray<Recovered>, ProgressStore.StoreError>
}>()("@crier/core/Broadcaster") {
  static readonly layerWithRateLimiter: Layer.Layer<
    Broadcaster,
    never,
    ProgressStore.ProgressStore | BroadcastTransport | RateLimiter.RateLimiter
  > = Layer.effect(Broadcaster, Effect.suspend(() => make))

  static readonly layer: Layer.Layer<Broadcaster, never, ProgressStore.ProgressStore | BroadcastTransport> = Broadcaster
    .layerWithRateLimiter.pipe(
      Layer.provide(RateLimiter.layer),
      Layer.provide(RateLimiter.layerStoreMemory)
    )
}

// ---------------------------------------------------------------------------------------------------------------
// Tunables

/** Per-message transports: recipients claimed per loop turn when the policy sets no `batchSize`. */
export const perMessageClaim = 100
/** How often a poll-tracked broadcast is polled while its remote side runs. */
export const pollInterval = Duration.seconds(5)
/** How long the loop waits when rows are leased by someone else (another worker, or a dead one until `recover`). */
export const leaseCheckInterval = Duration.seconds(5)
/** A claim's lease: this, plus the time the pacer may make the batch wait. */
export const baseLease = Duration.minutes(10)
/**
 * Calls in a row that got no answer in time before the broadcast pauses. Their recipients are in doubt under
 * at-most-once: a provider that stopped answering must not put the whole list in doubt.
 */
export const maxUnansweredCalls = 3
// `wait` is woken by this process's own changes; this catches the changes of other processes.
const waitInterval = Duration.seconds(1)
// A store write that fails is retried a few times before the loop gives up (and the rows wait for `recover`).
const storeRetry = { times: 4, schedule: Schedule.exponential(Duration.millis(200)) }

// ---------------------------------------------------------------------------------------------------------------
// Helpers

const sleepUntil = (at: DateTime.Utc) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sleep(Math.max(0, DateTime.toEpochMillis(at) - now)))

const isOver = (status: BroadcastStatus.BroadcastStatus): boolean =>
  BroadcastStatus.isTerminal(status) || status === "paused"

const PLACEHOLDER = /\{\{([^{}]*)\}\}/g

// The body as the recipient saw it; an unknown value keeps its placeholder.
const render = (template: TemplateSpec.TemplateSpec, params: TemplateParams.TemplateParams): string | undefined => {
  const body = params.body
  return template.bodyText?.replace(PLACEHOLDER, (placeholder, name: string) => {
    const key = name.trim()
    const value = isPositional(body) ? body[Number(key) - 1] : body[key]
    return value ?? placeholder
  })
}

const isPositional = (body: TemplateParams.TemplateParams["body"]): body is ReadonlyArray<string> => Array.isArray(body)

type Item =
  | { readonly _tag: "Recipient"; readonly recipient: Recipient.NewRecipient; readonly index: number | undefined }
  | { readonly _tag: "Issue"; readonly issue: RowIssue }
  | { readonly _tag: "Blank" }

const checked =
  (spec: TemplateSpec.TemplateSpec) => ([recipient, index]: readonly [Recipient.NewRecipient, number]): Item =>
    Result.match(TemplateParams.validate(spec, recipient.params), {
      onFailure: (issues): Item => ({
        _tag: "Issue",
        issue: {
          _tag: "Rejected",
          index,
          line: recipient.line,
          column: issues.map((issue) => issue.field).join(", "),
          reason: issues.map((issue) => `${issue.field}: ${issue.reason}`).join("; ")
        }
      }),
      onSuccess: (params): Item => ({
        _tag: "Recipient",
        index,
        recipient: params === recipient.params ? recipient : new Recipient.NewRecipient({
          address: recipient.address,
          params,
          metadata: recipient.metadata,
          ...(recipient.line === undefined ? {} : { line: recipient.line })
        })
      })
    })

const fromCsv = (row: CsvImport.Row): Item => {
  switch (row._tag) {
    case "Accepted":
      return {
        _tag: "Recipient",
        index: undefined,
        recipient: new Recipient.NewRecipient({
          address: row.recipient.address,
          params: row.recipient.params,
          metadata: row.recipient.metadata,
          line: row.recipient.line
        })
      }
    case "Rejected":
      return { _tag: "Issue", issue: { _tag: "Rejected", line: row.line, column: row.column, reason: row.reason } }
    case "Duplicate":
      return {
        _tag: "Issue",
        issue: { _tag: "Duplicate", line: row.line, address: row.address, firstLine: row.firstLine }
      }
    case "Blank":
      return { _tag: "Blank" }
  }
}

interface Tally {
  added: number
  duplicates: number
  rejected: number
  blank: number
  readonly issues: Array<RowIssue>
}

const note = (tally: Tally, issue: RowIssue): void => {
  if (issue._tag === "Duplicate") tally.duplicates++
  else tally.rejected++
  if (tally.issues.length < maxIssues) tally.issues.push(issue)
}

const accepted = (row: Recipient.Recipient, item: Extract<ItemOutcome, { readonly _tag: "Accepted" }>) => ({
  _tag: "Accepted" as const,
  seq: row.seq,
  providerMessageId: Option.getOrUndefined(item.providerMessageId)
})

// The outcomes of a call whose every item was accepted, the common case: built at once, with no effect per row.
const allAccepted = (
  batch: ReadonlyArray<Recipient.Recipient>,
  items: ReadonlyArray<ItemOutcome>
): Array<ProgressStore.ReceiptOutcome> | undefined => {
  if (items.length < batch.length) return undefined
  const outcomes: Array<ProgressStore.ReceiptOutcome> = []
  for (let i = 0; i < batch.length; i++) {
    const item = items[i]!
    if (item._tag !== "Accepted") return undefined
    outcomes.push(accepted(batch[i]!, item))
  }
  return outcomes
}

/** What one claimed batch came to. */
interface Handed {
  readonly outcomes: ReadonlyArray<ProgressStore.ReceiptOutcome>
  readonly breaker: Option.Option<{ readonly scope: "broadcast" | "account"; readonly reason: string }>
}

// ---------------------------------------------------------------------------------------------------------------
// The service

const make = Effect.gen(function*() {
  const store = yield* ProgressStore.ProgressStore
  const transport = yield* BroadcastTransport
  const pacer = yield* Pacer.make
  const caps = transport.capabilities
  const perMessage = caps.maxBatchSize <= 1

  const loops = yield* FiberMap.make<Broadcast.BroadcastId>()
  const timers = yield* FiberMap.make<Broadcast.BroadcastId>()
  const changes = yield* PubSub.unbounded<Broadcast.BroadcastId>()
  // Guards the decision to start a loop against a loop's decision to stop (see `ensureLoop`).
  const lock = yield* Semaphore.make(1)
  const active = new Map<Broadcast.BroadcastId, object>()
  // Remote campaigns this process has started: a pause and resume must not start one twice.
  const remoteStarted = new Set<Broadcast.BroadcastId>()
  // Per broadcast, the calls in a row that got no answer (those that leave recipients in doubt); a new loop starts
  // from none.
  const unanswered = new Map<Broadcast.BroadcastId, number>()
  const instance = (yield* Random.nextIntBetween(0, 2 ** 31)).toString(36)
  let loopCount = 0

  const notify = (id: Broadcast.BroadcastId) => PubSub.publish(changes, id)

  const transition = (id: Broadcast.BroadcastId, request: ProgressStore.TransitionRequest) =>
    Effect.tap(store.transitionBroadcast(id, request), () => notify(id))

  // Best effort: the broadcast may have been paused or cancelled meanwhile, which is fine.
  const pauseWith = (id: Broadcast.BroadcastId, reason: string) =>
    transition(id, { from: ["sending"], to: "paused", patch: { statusReason: reason } }).pipe(
      Effect.andThen(Effect.logWarning(`paused broadcast ${id}: ${reason}`)),
      Effect.catchTag("InvalidTransition", () => Effect.void)
    )

  // -------------------------------------------------------------------------------------------------------------
  // The send loop

  const claimSize = (broadcast: Broadcast.Broadcast): number => {
    const wanted = broadcast.policy.batchSize ?? (perMessage ? perMessageClaim : caps.maxBatchSize)
    const perRequest = perMessage ? wanted : Math.min(wanted, caps.maxBatchSize)
    return Math.max(1, Math.min(perRequest, Pacer.batchLimit(broadcast.policy, caps)))
  }

  // Whole milliseconds: stores keep lease expiries as integers (a rate of 170/s paces 100 messages in 588.2 ms).
  const leaseMillis = (broadcast: Broadcast.Broadcast, size: number): number =>
    Math.ceil(Duration.toMillis(baseLease) + 2 * Pacer.pacingMillis(broadcast.policy, caps, size))

  const outgoing = (broadcast: Broadcast.Broadcast, row: Recipient.Recipient): Outgoing => ({
    recipientId: Recipient.recipientId(broadcast.id, row.seq),
    seq: row.seq,
    address: row.address,
    params: row.params
  })

  const handOver = Effect.fnUntraced(function*(
    broadcast: Broadcast.Broadcast,
    rows: readonly [Recipient.Recipient, ...Array<Recipient.Recipient>]
  ) {
    const maxAttempts = broadcast.policy.maxAttempts ?? Broadcast.defaults.maxAttempts
    // Whether a call that got no answer may have sent a message that must not go twice. Where `submit` only adds
    // recipients to a remote campaign (Kapso), nothing went out before `start`, and the provider dedupes a retry.
    const doubtful = caps.startsOnSubmit &&
      (broadcast.policy.inDoubt ?? Broadcast.defaults.inDoubt) === "at-most-once"
    let breaker: Handed["breaker"] = Option.none()
    // Where each row stands, so a loop that is interrupted (a shutdown) or fails records what it knows: answers are
    // kept, rows never handed over go back untouched, and only the calls truly in flight are left in doubt.
    const progress = new Map<number, ProgressStore.ReceiptOutcome | "in flight">()

    // One failed hand-off of one row, by the retry policy.
    const settle = (row: Recipient.Recipient, error: TransportError.TransportError, jitter: number) =>
      Effect.gen(function*() {
        // The provider may have sent it (no answer in time): sent at most once, it is not tried again, and its
        // status webhook, if one comes, settles it.
        if (doubtful && error.mayHaveActed) {
          return { _tag: "InDoubt", seq: row.seq, error: RetryPolicy.describe(error) } as const
        }
        const decision = RetryPolicy.decideWith(error, { attempt: row.attempts, maxAttempts }, jitter)
        switch (decision._tag) {
          case "Pause": {
            if (Option.isNone(breaker)) breaker = Option.some({ scope: decision.scope, reason: decision.reason })
            return { _tag: "Released", seq: row.seq } as const
          }
          case "Fail":
            return { _tag: "Failed", seq: row.seq, code: decision.code, reason: decision.reason } as const
          case "Retry": {
            const notBefore = DateTime.addDuration(yield* DateTime.now, decision.delay)
            if (Option.isSome(decision.slowDown)) yield* pacer.slowDown(broadcast, decision.slowDown.value, notBefore)
            return { _tag: "Retry", seq: row.seq, notBefore, error: decision.error } as const
          }
        }
      })

    const answer = (
      row: Recipient.Recipient,
      item: ItemOutcome | undefined,
      jitter: number
    ): Effect.Effect<ProgressStore.ReceiptOutcome> => {
      if (item === undefined) {
        return Effect.die(`${transport.name} answered fewer outcomes than the batch had recipients`)
      }
      return item._tag === "Accepted" ? Effect.succeed(accepted(row, item)) : settle(row, item.error, jitter)
    }

    // Counts the calls in a row left in doubt; past the limit, the breaker stops the rest of the batch.
    const answered = (inDoubt: boolean) => {
      const calls = inDoubt ? (unanswered.get(broadcast.id) ?? 0) + 1 : 0
      unanswered.set(broadcast.id, calls)
      if (calls >= maxUnansweredCalls && Option.isNone(breaker)) {
        breaker = Option.some({
          scope: "broadcast",
          reason: `${transport.name} gave no answer to ${calls} calls in a row: their recipients are in doubt (a ` +
            "status webhook settles those that went out); resume once it answers"
        })
      }
    }

    const submit = (
      batch: readonly [Recipient.Recipient, ...Array<Recipient.Recipient>]
    ): Effect.Effect<ReadonlyArray<ProgressStore.ReceiptOutcome>> =>
      Effect.matchEffect(transport.submit(broadcast, Arr.map(batch, (row) => outgoing(broadcast, row))), {
        // One jitter per call: a batch that failed as a whole is retried as a whole.
        onFailure: (error) => {
          answered(doubtful && error.mayHaveActed)
          return Effect.flatMap(Random.next, (jitter) => Effect.forEach(batch, (row) => settle(row, error, jitter)))
        },
        onSuccess: ({ outcomes }) => {
          answered(false)
          const all = allAccepted(batch, outcomes)
          return all !== undefined ? Effect.succeed(all) : Effect.flatMap(
            Random.next,
            (jitter) => Effect.forEach(batch, (row, i) => answer(row, outcomes[i], jitter))
          )
        }
      })

    const released = (row: Recipient.Recipient): ProgressStore.ReceiptOutcome => ({ _tag: "Released", seq: row.seq })

    // A tripped breaker or a rate-limit hold stops what has not gone yet; it is claimed again later. Combinators, not
    // a generator: this runs once per message.
    const one = (row: Recipient.Recipient): Effect.Effect<ProgressStore.ReceiptOutcome, RateLimiter.RateLimiterError> =>
      Option.isSome(breaker) ? Effect.succeed(released(row)) : Effect.flatMap(
        pacer.heldUntil(broadcast),
        (held) =>
          Option.isSome(held) ? Effect.succeed(released(row)) : pacer.acquire(
            broadcast,
            caps,
            1,
            Effect.suspend(() => {
              if (Option.isSome(breaker)) return Effect.succeed(released(row))
              progress.set(row.seq, "in flight")
              return Effect.map(submit([row]), ([outcome]) => {
                progress.set(row.seq, outcome!)
                return outcome!
              })
            })
          )
      )

    // `concurrency` workers take the rows in order, each as soon as it is free: a fiber per worker, not per row.
    const oneByOne = Effect.suspend(() => {
      const outcomes: Array<ProgressStore.ReceiptOutcome> = []
      let next = 0
      const worker: Effect.Effect<void, RateLimiter.RateLimiterError> = Effect.suspend(() => {
        const index = next++
        const row = rows[index]
        return row === undefined ? Effect.void : Effect.flatMap(one(row), (outcome) => {
          outcomes[index] = outcome
          return worker
        })
      })
      const workers = Math.min(rows.length, broadcast.policy.concurrency ?? Broadcast.defaults.concurrency)
      return Effect.as(
        Effect.all(Array.from({ length: workers }, () => worker), { concurrency: "unbounded", discard: true }),
        outcomes
      )
    })

    const whole = pacer.acquire(
      broadcast,
      caps,
      rows.length,
      Effect.suspend(() => {
        for (const row of rows) progress.set(row.seq, "in flight")
        return submit(rows)
      })
    )
    const outcomes: ReadonlyArray<ProgressStore.ReceiptOutcome> = yield* (perMessage ? oneByOne : whole).pipe(
      Effect.onError(() =>
        Effect.gen(function*() {
          const known = rows.flatMap((row) => {
            const state = progress.get(row.seq)
            return state === undefined ? [released(row)] : state === "in flight" ? [] : [state]
          })
          if (known.length > 0) yield* store.recordReceipts(broadcast.id, known, yield* DateTime.now)
        }).pipe(Effect.ignore)
      )
    )
    return { outcomes, breaker } satisfies Handed
  })

  // Trips the breaker: an account-scope reason stops every broadcast sending with this transport's credential.
  const trip = Effect.fnUntraced(function*(
    broadcast: Broadcast.Broadcast,
    breaker: { readonly scope: "broadcast" | "account"; readonly reason: string }
  ) {
    yield* pauseWith(broadcast.id, breaker.reason)
    if (breaker.scope !== "account") return
    for (const other of yield* store.listBroadcasts()) {
      if (other.id !== broadcast.id && other.status === "sending" && other.transport === broadcast.transport) {
        yield* pauseWith(other.id, breaker.reason)
      }
    }
  })

  /** The broadcast while it is sending; otherwise the loop ends, atomically with respect to `ensureLoop`. */
  const stillSending = (id: Broadcast.BroadcastId, token: object) =>
    lock.withPermits(1)(Effect.gen(function*() {
      const broadcast = yield* store.getBroadcast(id)
      if (broadcast.status === "sending") return Option.some(broadcast)
      // Rows released or set to retry by the last batch came back after `cancel` skipped the pending ones.
      if (broadcast.status === "cancelled") yield* store.cancelPending(id)
      if (active.get(id) === token) active.delete(id)
      return Option.none<Broadcast.Broadcast>()
    }))

  /**
   * A call about the remote side (open, start, poll), retried as the policy says while the broadcast is sending.
   * None when it stopped sending meanwhile, or when the call failed for good: then the broadcast is paused with the
   * reason.
   */
  const remote = <A>(
    id: Broadcast.BroadcastId,
    call: (broadcast: Broadcast.Broadcast) => Effect.Effect<A, TransportError.TransportError>
  ) =>
    Effect.gen(function*() {
      for (let attempt = 1;; attempt++) {
        const broadcast = yield* store.getBroadcast(id)
        if (broadcast.status !== "sending") return Option.none<A>()
        const result = yield* Effect.result(call(broadcast))
        if (Result.isSuccess(result)) return Option.some(result.success)
        const maxAttempts = broadcast.policy.maxAttempts ?? Broadcast.defaults.maxAttempts
        const decision = yield* RetryPolicy.decide(result.failure, { attempt, maxAttempts })
        if (decision._tag !== "Retry") {
          yield* pauseWith(id, result.failure.message)
          return Option.none<A>()
        }
        yield* Effect.sleep(decision.delay)
      }
    })

  /** Polls until the remote side is done. False when the broadcast stopped sending meanwhile. */
  const pollUntilDone = Effect.fnUntraced(function*(id: Broadcast.BroadcastId) {
    let cursor = Option.none<string>()
    while (true) {
      const page = yield* remote(id, (broadcast) => transport.poll(broadcast, cursor))
      if (Option.isNone(page)) return false
      const { done, events } = page.value
      if (events.length > 0) yield* store.applyStatusEvents(events)
      if (done) return true
      cursor = page.value.cursor
      // A page with events may have more behind it; an empty one means waiting for the provider.
      if (events.length === 0) yield* Effect.sleep(pollInterval)
    }
  })

  /** Every row is settled: send the remote campaign, follow it to its end, complete. */
  const finish = Effect.fnUntraced(function*(broadcast: Broadcast.Broadcast) {
    const counts = yield* store.counts(broadcast.id)
    const handed = counts.accepted + counts.sent + counts.delivered + counts.read + counts.replied
    // Rows past `accepted` mean the remote campaign already sends (started before a crash or a pause).
    const underway = handed > counts.accepted || remoteStarted.has(broadcast.id)
    if (handed > 0 && !caps.startsOnSubmit && !underway) {
      if (Option.isNone(yield* remote(broadcast.id, (current) => transport.start(current)))) return
      remoteStarted.add(broadcast.id)
    }
    if (handed > 0 && caps.tracking !== "webhook" && !(yield* pollUntilDone(broadcast.id))) return
    yield* transition(broadcast.id, {
      from: ["sending"],
      to: "completed",
      patch: { completedAt: yield* DateTime.now }
    }).pipe(Effect.catchTag("InvalidTransition", () => Effect.void))
  })

  const loop = Effect.fnUntraced(function*(id: Broadcast.BroadcastId, token: object) {
    const owner = `${instance}-${++loopCount}`
    unanswered.delete(id)
    while (true) {
      const current = yield* stillSending(id, token)
      if (Option.isNone(current)) return
      const broadcast = current.value
      if (caps.remoteCampaign && broadcast.remoteId === undefined) {
        // `start` could not open the remote side (or a crash came first): open it now.
        const opened = Option.flatten(yield* remote(id, (current) => transport.open(current)))
        if (Option.isSome(opened)) yield* store.setRemoteId(id, opened.value)
        continue
      }
      yield* pacer.awaitRelease(broadcast)
      const size = claimSize(broadcast)
      const rows = yield* store.claim(id, {
        limit: size,
        owner,
        leaseMillis: leaseMillis(broadcast, size),
        now: yield* DateTime.now
      })
      const [first, ...rest] = rows
      if (first === undefined) {
        const next = yield* store.nextRetryAt(id)
        if (Option.isSome(next)) {
          yield* sleepUntil(next.value)
          continue
        }
        const counts = yield* store.counts(id)
        if (counts.pending + counts.submitting > 0) {
          yield* Effect.sleep(leaseCheckInterval)
          continue
        }
        yield* finish(broadcast)
        continue
      }
      const handed = yield* handOver(broadcast, [first, ...rest])
      yield* store.recordReceipts(id, handed.outcomes, yield* DateTime.now).pipe(Effect.retry(storeRetry))
      if (Option.isSome(handed.breaker)) {
        yield* trip(broadcast, handed.breaker.value)
        continue
      }
      // The whole batch failed and waits for a retry: back off before claiming anything else.
      const retries = handed.outcomes.filter((outcome) => outcome._tag === "Retry")
      if (retries.length === handed.outcomes.length) {
        yield* sleepUntil(
          retries.map((outcome) => outcome.notBefore).reduce((a, b) => DateTime.min(a, b))
        )
      }
    }
  })

  const ensureLoop = (id: Broadcast.BroadcastId) =>
    lock.withPermits(1)(Effect.suspend(() => {
      if (active.has(id)) return Effect.void
      const token = {}
      active.set(id, token)
      const run = loop(id, token).pipe(
        Effect.catchCause((cause) =>
          Cause.hasInterruptsOnly(cause) ? Effect.void : Effect.gen(function*() {
            yield* Effect.logError(`send loop of broadcast ${id} failed`, cause)
            const error = Cause.squash(cause)
            yield* pauseWith(id, `engine error: ${error instanceof Error ? error.message : String(error)}`)
          }).pipe(Effect.ignore)
        ),
        Effect.ensuring(Effect.sync(() => {
          if (active.get(id) === token) active.delete(id)
        }))
      )
      return Effect.asVoid(FiberMap.run(loops, id, run))
    }))

  // -------------------------------------------------------------------------------------------------------------
  // Commands

  const create = Effect.fn("Broadcaster.create")(function*(options: CreateOptions) {
    if (options.name.trim() === "") {
      return yield* new BroadcastRefused({ reason: "InvalidName", message: "a broadcast needs a name" })
    }
    const unsupported = transport.unsupported(options.template)
    if (Option.isSome(unsupported)) {
      return yield* new BroadcastRefused({
        reason: "TemplateUnsupported",
        message: `${transport.name} cannot send template ${options.template.name}: ${unsupported.value}`
      })
    }
    const broadcast = new Broadcast.Broadcast({
      id: yield* Broadcast.makeId,
      name: options.name,
      transport: transport.name,
      sender: options.sender,
      template: options.template,
      policy: options.policy ?? new Broadcast.Policy({}),
      status: "draft",
      createdAt: yield* DateTime.now
    })
    yield* store.createBroadcast(broadcast)
    return broadcast
  })

  const insertAll = Effect.fn("Broadcaster.addRecipients")(function*<E, R>(
    id: Broadcast.BroadcastId,
    items: (template: TemplateSpec.TemplateSpec) => Stream.Stream<Item, E, R>
  ) {
    const broadcast = yield* store.getBroadcast(id)
    if (!BroadcastStatus.acceptsRecipients(broadcast.status)) {
      return yield* new ProgressStore.BroadcastNotEditable({ broadcastId: id, status: broadcast.status })
    }
    const tally: Tally = yield* Stream.runFoldEffect(
      Stream.grouped(items(broadcast.template), insertChunk),
      (): Tally => ({ added: 0, duplicates: 0, rejected: 0, blank: 0, issues: [] }),
      (tally, chunk) =>
        Effect.gen(function*() {
          const fresh: Array<Extract<Item, { _tag: "Recipient" }>> = []
          for (const item of chunk) {
            if (item._tag === "Recipient") fresh.push(item)
            else if (item._tag === "Issue") note(tally, item.issue)
            else tally.blank++
          }
          if (fresh.length === 0) return tally
          const inserted = yield* store.insertRecipients(id, fresh.map((item) => item.recipient))
          tally.added += inserted.inserted
          for (const duplicate of inserted.duplicates) {
            const item = fresh[duplicate.index]!
            note(tally, {
              _tag: "Duplicate",
              index: item.index,
              line: item.recipient.line,
              address: item.recipient.address,
              firstSeq: duplicate.firstSeq
            })
          }
          return tally
        })
    )
    return tally satisfies AddReport
  })

  function addRecipients(id: Broadcast.BroadcastId, source: CsvSource): Effect.Effect<
    AddReport,
    Lookup | ProgressStore.BroadcastNotEditable | CsvImport.ImportError,
    FileSystem.FileSystem
  >
  function addRecipients<E, R>(
    id: Broadcast.BroadcastId,
    source: ReadonlyArray<Recipient.NewRecipient> | Stream.Stream<Recipient.NewRecipient, E, R>
  ): Effect.Effect<AddReport, Lookup | ProgressStore.BroadcastNotEditable | E, R>
  function addRecipients(
    id: Broadcast.BroadcastId,
    source: CsvSource | ReadonlyArray<Recipient.NewRecipient> | Stream.Stream<Recipient.NewRecipient, unknown, unknown>
  ): Effect.Effect<AddReport, unknown, unknown> {
    if (Stream.isStream(source)) {
      return insertAll(id, (template) => Stream.map(Stream.zipWithIndex(source), checked(template)))
    }
    if ("csv" in source) {
      return insertAll(id, (spec) =>
        Stream.map(
          CsvImport.fromFile(source.csv, { spec, defaultRegion: source.defaultRegion, delimiter: source.delimiter }),
          fromCsv
        ))
    }
    return insertAll(id, (template) => Stream.map(Stream.zipWithIndex(Stream.fromIterable(source)), checked(template)))
  }

  const arm = (id: Broadcast.BroadcastId, sendAt: DateTime.Utc) =>
    FiberMap.run(
      timers,
      id,
      Effect.andThen(sleepUntil(sendAt), begin(id)).pipe(
        Effect.catchCause((cause) =>
          Cause.hasInterruptsOnly(cause)
            ? Effect.void
            : Effect.logWarning(`scheduled start of broadcast ${id} failed`, cause)
        )
      )
    )

  const schedule = Effect.fn("Broadcaster.schedule")(function*(id: Broadcast.BroadcastId, sendAt: DateTime.Utc) {
    const broadcast = yield* transition(id, { from: ["draft"], to: "scheduled", patch: { scheduledAt: sendAt } })
    yield* arm(id, sendAt)
    return broadcast
  })

  // Start without touching the schedule timer: the timer itself calls this.
  const begin = Effect.fnUntraced(function*(id: Broadcast.BroadcastId) {
    const broadcast = yield* store.getBroadcast(id)
    if (broadcast.status === "draft" || broadcast.status === "scheduled") {
      const counts = yield* store.counts(id)
      if (counts.total === 0) {
        return yield* new BroadcastRefused({
          reason: "NoRecipients",
          broadcastId: id,
          message: `broadcast ${id} has no recipients to send to`
        })
      }
    }
    // For any other status the store refuses the move with the reason.
    const sending = yield* transition(id, {
      from: ["draft", "scheduled"],
      to: "sending",
      patch: { startedAt: yield* DateTime.now }
    })
    const opened = yield* transport.open(sending).pipe(
      Effect.tapError((error) => pauseWith(id, error.message))
    )
    if (Option.isSome(opened)) yield* store.setRemoteId(id, opened.value)
    yield* ensureLoop(id)
    return yield* store.getBroadcast(id)
  })

  const start = Effect.fn("Broadcaster.start")(function*(id: Broadcast.BroadcastId) {
    yield* FiberMap.remove(timers, id)
    return yield* begin(id)
  })

  const pause = Effect.fn("Broadcaster.pause")(function*(id: Broadcast.BroadcastId, reason?: string) {
    return yield* transition(id, { from: ["sending"], to: "paused", patch: { statusReason: reason ?? null } })
  })

  const resume = Effect.fn("Broadcaster.resume")(function*(id: Broadcast.BroadcastId) {
    const broadcast = yield* transition(id, { from: ["paused"], to: "sending", patch: { statusReason: null } })
    yield* ensureLoop(id)
    return broadcast
  })

  const cancel = Effect.fn("Broadcaster.cancel")(function*(id: Broadcast.BroadcastId) {
    const before = yield* store.getBroadcast(id)
    const cancelled = yield* transition(id, {
      from: ["draft", "scheduled", "sending", "paused"],
      to: "cancelled",
      patch: { statusReason: null }
    })
    yield* FiberMap.remove(timers, id)
    yield* store.cancelPending(id)
    if (before.status === "sending" || before.status === "paused") {
      yield* transport.cancel(cancelled).pipe(
        Effect.catch((error) =>
          error.reason._tag === "Unsupported"
            ? Effect.void
            : Effect.logWarning(`${transport.name} could not cancel broadcast ${id}: ${error.message}`)
        )
      )
    }
    return cancelled
  })

  // -------------------------------------------------------------------------------------------------------------
  // Queries

  const get = Effect.fn("Broadcaster.get")(function*(id: Broadcast.BroadcastId) {
    return yield* store.getBroadcast(id)
  })

  const wait = Effect.fn("Broadcaster.wait")(function*(id: Broadcast.BroadcastId) {
    return yield* Effect.scoped(Effect.gen(function*() {
      // Subscribed before the first read, so a change between the read and the wait still wakes us.
      const subscription = yield* PubSub.subscribe(changes)
      while (true) {
        const broadcast = yield* store.getBroadcast(id)
        if (isOver(broadcast.status)) return broadcast
        yield* Effect.raceFirst(PubSub.take(subscription), Effect.sleep(waitInterval))
      }
    }))
  })

  interface Sample {
    readonly at: number
    readonly moved: number
  }

  const snapshots = Effect.fn("Broadcaster.progress")(function*(id: Broadcast.BroadcastId, options?: ProgressOptions) {
    yield* store.getBroadcast(id)
    const every = options?.every ?? Duration.seconds(1)
    const window = Duration.toMillis(rateWindow)
    return Stream.paginate([] as ReadonlyArray<Sample>, (previous: ReadonlyArray<Sample>) =>
      Effect.gen(function*() {
        // Only the first snapshot has no samples before it.
        if (previous.length > 0) yield* Effect.sleep(every)
        const broadcast = yield* store.getBroadcast(id)
        const counts = yield* store.counts(id)
        const at = yield* Clock.currentTimeMillis
        const left = counts.pending + counts.submitting
        const samples = [...previous.filter((sample) => at - sample.at <= window), { at, moved: counts.total - left }]
        const oldest = samples[0]!
        const ratePerSecond = at > oldest.at ? ((counts.total - left - oldest.moved) * 1000) / (at - oldest.at) : 0
        const snapshot: Snapshot = {
          broadcastId: id,
          status: broadcast.status,
          statusReason: Option.fromUndefinedOr(broadcast.statusReason),
          counts,
          ratePerSecond,
          eta: broadcast.status !== "sending"
            ? Option.none()
            : left === 0
            ? Option.some(Duration.zero)
            : ratePerSecond > 0
            ? Option.some(Duration.millis((left * 1000) / ratePerSecond))
            : Option.none(),
          at: DateTime.makeUnsafe(at)
        }
        return [[snapshot], isOver(broadcast.status) ? Option.none() : Option.some(samples)] as const
      }))
  })

  const progress = (id: Broadcast.BroadcastId, options?: ProgressOptions) => Stream.unwrap(snapshots(id, options))

  const recipients = Effect.fn("Broadcaster.recipients")(
    function*(id: Broadcast.BroadcastId, query: ProgressStore.RecipientQuery) {
      yield* store.getBroadcast(id)
      return yield* store.recipients(id, query)
    }
  )

  const applyStatusEvents = Effect.fn("Broadcaster.applyStatusEvents")(
    function*(events: ReadonlyArray<StatusEvent.StatusEvent>) {
      return yield* store.applyStatusEvents(events)
    }
  )

  const recordReply = Effect.fn("Broadcaster.recordReply")(function*(reply: Reply) {
    const latest = yield* store.latestForAddress(reply.from)
    if (Option.isNone(latest)) return Option.none<ReplyContext>()
    const row = latest.value
    yield* store.applyStatusEvents([
      new StatusEvent.StatusEvent({
        ref: { _tag: "ById", broadcastId: row.broadcastId, seq: row.seq },
        status: RecipientStatus.replied,
        at: reply.at ?? (yield* DateTime.now)
      })
    ])
    const broadcast = yield* store.getBroadcast(row.broadcastId)
    const content = render(broadcast.template, row.params)
    return Option.some(
      new ReplyContext({
        broadcast_id: broadcast.id,
        broadcast_name: broadcast.name,
        template_name: broadcast.template.name,
        ...(content === undefined ? {} : { template_content: content }),
        sent_at: row.sentAt ?? row.acceptedAt ?? row.updatedAt,
        ...(reply.text === undefined ? {} : { reply_text: reply.text })
      })
    )
  })

  const recover = Effect.fn("Broadcaster.recover")(function*(options?: RecoverOptions) {
    const now = yield* DateTime.now
    const recovered: Array<Recovered> = []
    for (const broadcast of yield* store.listBroadcasts()) {
      if (broadcast.status === "scheduled" && broadcast.scheduledAt !== undefined) {
        if (!(yield* FiberMap.has(timers, broadcast.id))) yield* arm(broadcast.id, broadcast.scheduledAt)
        continue
      }
      if (broadcast.status !== "sending") continue
      // A loop of this process holds live leases: only expired ones (another worker's) are abandoned.
      const takeOver = options?.takeOver === true && !active.has(broadcast.id)
      const atLeastOnce = (broadcast.policy.inDoubt ?? Broadcast.defaults.inDoubt) === "at-least-once"
      // Where `submit` only adds to a remote campaign that drops addresses added twice (Kapso), an abandoned row was
      // at most added, never sent (the campaign starts once every row is settled): adding it again is safe.
      const resend = atLeastOnce || (!caps.startsOnSubmit && caps.providerDedupe)
      const released = yield* store.releaseLeases(broadcast.id, {
        expiredBy: takeOver ? undefined : now,
        to: resend ? "pending" : "in_doubt"
      })
      const requeued = atLeastOnce ? yield* store.requeueInDoubt(broadcast.id) : 0
      yield* ensureLoop(broadcast.id)
      recovered.push({
        broadcastId: broadcast.id,
        inDoubt: resend ? 0 : released,
        requeued: resend ? released + requeued : 0
      })
    }
    return recovered
  })

  return Broadcaster.of({
    create,
    addRecipients,
    schedule,
    start,
    pause,
    resume,
    cancel,
    get,
    wait,
    progress,
    recipients,
    applyStatusEvents,
    recordReply,
    recover
  })
})
