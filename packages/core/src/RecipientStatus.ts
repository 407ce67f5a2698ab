/**
 * The status of one recipient row, and the rules for changing it.
 *
 * Observed statuses (provider receipts, polls, webhooks) are applied with `merge`, a join: the result of a set of
 * events is the same whatever their order or how often each is seen. It returns the greater of its inputs in one
 * total order:
 *
 *   pending < submitting < in_doubt < accepted < sent < failed < delivered < read < replied < skipped
 *
 * | rule                                                     | why                                                     |
 * |----------------------------------------------------------|---------------------------------------------------------|
 * | any provider status beats pending/submitting/in_doubt    | a webhook can beat our receipt write; it resolves doubt |
 * | read after replied stays replied, and so on              | the ladder only moves forward                           |
 * | failed beats submitting..sent, never delivered..replied  | evidence of delivery wins in either arrival order       |
 * | failed vs failed: a code beats none, then the smaller    | any fixed choice keeps merge commutative; a coded       |
 * |   code, then the smaller reason (code-unit order)        |   failure carries the provider's answer                 |
 * | skipped beats everything                                 | a skipped row was never sent: nothing merges into it    |
 * | skipped vs skipped: duplicate > invalid > suppressed >   | facts about the row outrank facts about the broadcast   |
 * |   cancelled                                              |                                                         |
 *
 * `skipped` is never an observed event (the engine reaches it through `canTransition`), so `merge(x, skipped)`
 * being `skipped` only keeps the algebra whole; a store should not feed it to `merge`.
 *
 * The moves the engine makes itself (claim, release for retry, recovery, resend, cancel, recording a receipt) are
 * checked with `canTransition`; several go backwards, which no merge could.
 */
import { Schema } from "effect"

export const SkipReason = Schema.Literals(["duplicate", "invalid", "suppressed", "cancelled"])
export type SkipReason = typeof SkipReason.Type

export const RecipientStatus = Schema.Union([
  Schema.TaggedStruct("pending", {}),
  Schema.TaggedStruct("submitting", {}),
  Schema.TaggedStruct("accepted", {}),
  Schema.TaggedStruct("sent", {}),
  Schema.TaggedStruct("delivered", {}),
  Schema.TaggedStruct("read", {}),
  Schema.TaggedStruct("replied", {}),
  Schema.TaggedStruct("failed", { code: Schema.optional(Schema.String), reason: Schema.String }),
  Schema.TaggedStruct("skipped", { reason: SkipReason }),
  Schema.TaggedStruct("in_doubt", {})
])
export type RecipientStatus = typeof RecipientStatus.Type

export type Tag = RecipientStatus["_tag"]

export const tags: ReadonlyArray<Tag> = [
  "pending",
  "submitting",
  "accepted",
  "sent",
  "delivered",
  "read",
  "replied",
  "failed",
  "skipped",
  "in_doubt"
]

type Of<T extends Tag> = Extract<RecipientStatus, { readonly _tag: T }>

export const pending: Of<"pending"> = { _tag: "pending" }
export const submitting: Of<"submitting"> = { _tag: "submitting" }
export const accepted: Of<"accepted"> = { _tag: "accepted" }
export const sent: Of<"sent"> = { _tag: "sent" }
export const delivered: Of<"delivered"> = { _tag: "delivered" }
export const read: Of<"read"> = { _tag: "read" }
export const replied: Of<"replied"> = { _tag: "replied" }
export const inDoubt: Of<"in_doubt"> = { _tag: "in_doubt" }

export const failed = (reason: string, code?: string): Of<"failed"> =>
  code === undefined ? { _tag: "failed", reason } : { _tag: "failed", code, reason }

export const skipped = (reason: SkipReason): Of<"skipped"> => ({ _tag: "skipped", reason })

const ranks: Record<Tag, number> = {
  pending: 0,
  submitting: 1,
  in_doubt: 2,
  accepted: 3,
  sent: 4,
  failed: 5,
  delivered: 6,
  read: 7,
  replied: 8,
  skipped: 9
}

/**
 * The merge order's first key. A store may compare it in SQL (`WHERE rank < :incoming`) to skip stale events;
 * equal ranks of `failed` or `skipped` still need `merge` for their payloads.
 */
export const rank = (tag: Tag): number => ranks[tag]

const skipRanks: Record<SkipReason, number> = { duplicate: 3, invalid: 2, suppressed: 1, cancelled: 0 }

// Does `a` win over `b`, both `failed`? Strict, so equal values keep `current`.
const failedWins = (a: Of<"failed">, b: Of<"failed">): boolean =>
  a.code === b.code
    ? a.reason < b.reason
    : a.code !== undefined && (b.code === undefined || a.code < b.code)

export const merge = (current: RecipientStatus, incoming: RecipientStatus): RecipientStatus => {
  const a = ranks[current._tag]
  const b = ranks[incoming._tag]
  if (a !== b) return a > b ? current : incoming
  if (current._tag === "failed" && incoming._tag === "failed") {
    return failedWins(incoming, current) ? incoming : current
  }
  if (current._tag === "skipped" && incoming._tag === "skipped") {
    return skipRanks[incoming.reason] > skipRanks[current.reason] ? incoming : current
  }
  return current
}

const moves: Record<Tag, ReadonlyArray<Tag>> = {
  // claim; cancel (or suppression found at claim time)
  pending: ["submitting", "skipped"],
  // released for retry; recovery after a crash mid-hand-off; the batch receipt
  submitting: ["pending", "in_doubt", "accepted", "failed"],
  // at-least-once resend; under at-most-once the row stays in_doubt and is reported
  in_doubt: ["pending"],
  accepted: [],
  sent: [],
  delivered: [],
  read: [],
  replied: [],
  failed: [],
  skipped: []
}

export const canTransition = (from: Tag, to: Tag): boolean => moves[from].includes(to)

/** The engine's work on the row is done (in_doubt included: recovery, not the send loop, decides its fate). */
export const isSettled = (s: RecipientStatus): boolean => s._tag !== "pending" && s._tag !== "submitting"

/**
 * Nothing can change it any more: no engine move leaves it, and no observed status outranks it. `failed` is not
 * final: a late `delivered` wins over it.
 */
export const isFinal = (s: RecipientStatus): boolean => s._tag === "replied" || s._tag === "skipped"

/** Funnel counts: a read or replied message was delivered, even when its `delivered` event never came. */
export const countsAsDelivered = (s: RecipientStatus): boolean =>
  s._tag === "delivered" || s._tag === "read" || s._tag === "replied"

export const countsAsRead = (s: RecipientStatus): boolean => s._tag === "read" || s._tag === "replied"
