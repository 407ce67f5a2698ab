/**
 * A broadcast: one template sent to a list of recipients through one transport, under one policy.
 */
import { Clock, Effect, Random, Schema } from "effect"
import * as BroadcastStatus from "./BroadcastStatus.ts"
import * as TemplateSpec from "./TemplateSpec.ts"

/** `bc_` + a ULID: 48-bit time then 80 random bits in Crockford base32, so ids sort by creation time. */
export const BroadcastId = Schema.String.pipe(
  Schema.check(Schema.isPattern(/^bc_[0-9A-HJKMNP-TV-Z]{26}$/)),
  Schema.brand("BroadcastId")
)
export type BroadcastId = typeof BroadcastId.Type

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

/** A new time-sortable id from the Effect `Clock` and `Random`, so tests get deterministic ids. */
export const makeId: Effect.Effect<BroadcastId> = Effect.gen(function*() {
  let time = yield* Clock.currentTimeMillis
  let timePart = ""
  for (let i = 0; i < 10; i++) {
    timePart = crockford[time % 32]! + timePart
    time = Math.floor(time / 32)
  }
  let randomPart = ""
  for (let i = 0; i < 16; i++) randomPart += crockford[yield* Random.nextIntBetween(0, 32, { halfOpen: true })]!
  return BroadcastId.make(`bc_${timePart}${randomPart}`)
})

export const InDoubtPolicy = Schema.Literals(["at-most-once", "at-least-once"])
export type InDoubtPolicy = typeof InDoubtPolicy.Type

const PositiveInt = Schema.Int.check(Schema.isGreaterThan(0))
const PositiveNumber = Schema.Finite.check(Schema.isGreaterThan(0))

/** A budget of `limit` requests per `windowMillis`, e.g. Keebai's 60 per minute and 1,000 per hour per token. */
export class RequestBudget extends Schema.Class<RequestBudget>("@crier/core/Broadcast/RequestBudget")({
  limit: PositiveInt,
  windowMillis: PositiveInt
}) {}

/**
 * How a broadcast is sent. Every field is optional: what is absent takes the default below or the transport's own
 * (see `Broadcaster`), so a stored policy says only what its author chose.
 */
export class Policy extends Schema.Class<Policy>("@crier/core/Broadcast/Policy")({
  /** Messages per second for this sender; absent = not paced by us (e.g. Kapso paces its own campaigns). */
  messagesPerSecond: Schema.optional(PositiveNumber),
  /**
   * Request budgets of the credential, each enforced by the pacer, beside the transport's own
   * (`Capabilities.requestBudgets`): for a stricter plan, or a budget shared with other software.
   */
  requestBudgets: Schema.optional(Schema.Array(RequestBudget)),
  /** Optional batch pacing: at most `size` messages per `everyMillis`. */
  batchPacing: Schema.optional(Schema.Struct({ size: PositiveInt, everyMillis: PositiveInt })),
  /** Recipients claimed per loop turn; capped by the transport's batch size for batch transports. */
  batchSize: Schema.optional(PositiveInt),
  /** Per-message transports: requests in flight at once. */
  concurrency: Schema.optional(PositiveInt),
  /** Submission attempts per recipient before it is `failed` with the last reason. */
  maxAttempts: Schema.optional(PositiveInt),
  inDoubt: Schema.optional(InDoubtPolicy)
}) {}

export const defaults = {
  concurrency: 16,
  maxAttempts: 5,
  inDoubt: "at-most-once"
} as const satisfies Partial<Policy>

export class Broadcast extends Schema.Class<Broadcast>("@crier/core/Broadcast")({
  id: BroadcastId,
  name: Schema.NonEmptyString,
  /** Transport name, e.g. "kapso", "keebai", "meta", "memory". */
  transport: Schema.String,
  /** The sender on that transport: Kapso config id, Keebai channel id, Meta phone_number_id. */
  sender: Schema.String,
  template: TemplateSpec.TemplateSpec,
  policy: Policy,
  status: BroadcastStatus.BroadcastStatus,
  /** Why the broadcast is paused or failed, e.g. the breaker's reason. */
  statusReason: Schema.optional(Schema.String),
  /** The provider-side campaign id for transports with a remote campaign. */
  remoteId: Schema.optional(Schema.String),
  createdAt: Schema.DateTimeUtc,
  scheduledAt: Schema.optional(Schema.DateTimeUtc),
  startedAt: Schema.optional(Schema.DateTimeUtc),
  completedAt: Schema.optional(Schema.DateTimeUtc)
}) {}
