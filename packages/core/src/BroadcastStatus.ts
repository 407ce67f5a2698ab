/**
 * The lifecycle of a broadcast and the moves between its statuses.
 *
 * | from      | allowed to                            | why                                                    |
 * |-----------|---------------------------------------|--------------------------------------------------------|
 * | draft     | scheduled, sending, cancelled         | schedule, start now, discard                           |
 * | scheduled | draft, sending, cancelled             | unschedule (to edit), start (time reached or now), drop |
 * | sending   | paused, completed, failed, cancelled  | pause / breaker, every row settled, fatal error, stop  |
 * | paused    | sending, cancelled                    | resume, give up                                        |
 * | completed | —                                     | terminal: read-only                                    |
 * | failed    | —                                     | terminal                                               |
 * | cancelled | —                                     | terminal                                               |
 *
 * Only a sending broadcast completes or fails: both are verdicts of the send loop, which does not run while
 * paused (a paused broadcast with nothing left completes on resume). A status never "transitions" to itself; the
 * `Unchanged` reason lets a caller treat a repeated command (a retried `pause`) as a no-op.
 */
import { Result, Schema } from "effect"

export const BroadcastStatus = Schema.Literals([
  "draft",
  "scheduled",
  "sending",
  "paused",
  "completed",
  "failed",
  "cancelled"
])
export type BroadcastStatus = typeof BroadcastStatus.Type

const allowed: Record<BroadcastStatus, ReadonlyArray<BroadcastStatus>> = {
  draft: ["scheduled", "sending", "cancelled"],
  scheduled: ["draft", "sending", "cancelled"],
  sending: ["paused", "completed", "failed", "cancelled"],
  paused: ["sending", "cancelled"],
  completed: [],
  failed: [],
  cancelled: []
}

export const canTransition = (from: BroadcastStatus, to: BroadcastStatus): boolean => allowed[from].includes(to)

export const isTerminal = (s: BroadcastStatus): boolean => s === "completed" || s === "failed" || s === "cancelled"

/**
 * A paused broadcast does not accept recipients: it has started, and "sending broadcasts cannot be edited" must
 * not be bypassed by pause → add → resume. Kapso could not take them either: its remote broadcast is already sent.
 */
export const acceptsRecipients = (s: BroadcastStatus): boolean => s === "draft" || s === "scheduled"

export const InvalidTransitionReason = Schema.Literals(["Unchanged", "Terminal", "NotSending", "AlreadyStarted"])
export type InvalidTransitionReason = typeof InvalidTransitionReason.Type

export class InvalidTransition extends Schema.TaggedError<InvalidTransition>()("InvalidTransition", {
  from: BroadcastStatus,
  to: BroadcastStatus,
  reason: InvalidTransitionReason,
  message: Schema.String
}) {}

const action: Record<BroadcastStatus, string> = {
  draft: "moved back to draft",
  scheduled: "scheduled",
  sending: "started or resumed",
  paused: "paused",
  completed: "completed",
  failed: "marked failed",
  cancelled: "cancelled"
}

// Only called for pairs outside `allowed`, so every case below is a refusal.
const refusal = (from: BroadcastStatus, to: BroadcastStatus): InvalidTransition => {
  const [reason, message]: readonly [InvalidTransitionReason, string] = from === to
    ? ["Unchanged", `the broadcast is already ${from}`]
    : isTerminal(from)
    ? ["Terminal", `a ${from} broadcast is final and cannot be ${action[to]}`]
    : to === "draft" || to === "scheduled"
    ? ["AlreadyStarted", `a ${from} broadcast has already started, so it cannot be ${action[to]}`]
    : ["NotSending", `a ${from} broadcast is not sending, so it cannot be ${action[to]}`]
  return new InvalidTransition({ from, to, reason, message })
}

export const transition = (
  from: BroadcastStatus,
  to: BroadcastStatus
): Result.Result<BroadcastStatus, InvalidTransition> =>
  canTransition(from, to) ? Result.succeed(to) : Result.fail(refusal(from, to))
