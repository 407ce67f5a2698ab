/**
 * The rules every `ProgressStore` applies to one recipient row: merging an observed status and recording a receipt
 * outcome. Each store keeps its rows its own way (objects in memory, rows read under lock in SQL) and its own
 * instants (`DateTime`s, epoch millis); it hands the rules a row and the `Hooks` that keep the rest of the store (its
 * counts, its indexes) in step, and the rules change the row in place.
 */
import type { DateTime } from "effect"
import type * as ProgressStore from "./ProgressStore.ts"
import * as RecipientStatus from "./RecipientStatus.ts"

/** What the rules read and change of a row; `T` is how the store keeps an instant. */
export interface Row<T> {
  status: RecipientStatus.RecipientStatus
  attempts: number
  providerMessageId: string | undefined
  lastError: string | undefined
  notBefore: T | undefined
  updatedAt: T
  acceptedAt: T | undefined
  sentAt: T | undefined
  deliveredAt: T | undefined
  readAt: T | undefined
  repliedAt: T | undefined
  failedAt: T | undefined
}

export type Stamp = "acceptedAt" | "sentAt" | "deliveredAt" | "readAt" | "repliedAt" | "failedAt"

/** What a store does when the rules change one of its rows, and how it keeps instants. */
export interface Hooks<T, R extends Row<T>> {
  readonly millis: (instant: T) => number
  readonly fromDateTime: (instant: DateTime.Utc) => T
  /** Sets the row's status; the store moves its counts along. */
  readonly setStatus: (row: R, status: RecipientStatus.RecipientStatus) => void
  /** The row went back to `pending` after a claim, claimable from its `notBefore` (if any). */
  readonly requeued: (row: R) => void
  /** The row got its first `acceptedAt`. */
  readonly accepted: (row: R) => void
  /** The row got its provider message id. */
  readonly identified: (row: R) => void
}

// The provider ladder: a status on it implies every step below it, so it fills their timestamps too.
const ladder: ReadonlyArray<Stamp> = ["acceptedAt", "sentAt", "deliveredAt", "readAt", "repliedAt"]
const ladderStep: Partial<Record<RecipientStatus.Tag, number>> = {
  accepted: 0,
  sent: 1,
  delivered: 2,
  read: 3,
  replied: 4
}

/** Statuses a provider can report; the others are the engine's own moves, so an event carrying one is not news. */
export const isObservable = (status: RecipientStatus.RecipientStatus): boolean =>
  status._tag !== "skipped" && RecipientStatus.rank(status._tag) > RecipientStatus.rank("in_doubt")

const stamp = <T, R extends Row<T>>(hooks: Hooks<T, R>, row: R, field: Stamp, at: T): boolean => {
  const current = row[field]
  if (current !== undefined && hooks.millis(current) <= hooks.millis(at)) return false
  ;(row as Row<T>)[field] = at
  if (field === "acceptedAt" && current === undefined) hooks.accepted(row)
  return true
}

/**
 * Merges an observed status into a row: forward only, timestamps earliest-wins, so the end state does not depend on
 * the order or repetition of observations. Returns whether the row changed (then its `updatedAt` is `now`).
 */
export const observe = <T, R extends Row<T>>(
  hooks: Hooks<T, R>,
  row: R,
  incoming: RecipientStatus.RecipientStatus,
  at: T,
  providerMessageId: string | undefined,
  now: T
): boolean => {
  // A skipped row was never sent: nothing merges into it (and `skipped` never goes into `merge`).
  if (row.status._tag === "skipped") return false
  const merged = RecipientStatus.merge(row.status, incoming)
  let changed = merged !== row.status
  if (changed) {
    // Evidence of delivery replaced a failure: the row ends as if the failure had arrived after it (ignored).
    if (row.status._tag === "failed" && merged._tag !== "failed") row.failedAt = undefined
    hooks.setStatus(row, merged)
  }
  const step = ladderStep[incoming._tag]
  if (step !== undefined) {
    for (let i = 0; i <= step; i++) changed = stamp(hooks, row, ladder[i]!, at) || changed
  } else if (incoming._tag === "failed" && merged._tag === "failed") {
    changed = stamp(hooks, row, "failedAt", at) || changed
  }
  if (providerMessageId !== undefined && row.providerMessageId === undefined) {
    row.providerMessageId = providerMessageId
    hooks.identified(row)
    changed = true
  }
  if (changed) row.updatedAt = now
  return changed
}

const requeue = <T, R extends Row<T>>(hooks: Hooks<T, R>, row: R, now: T): void => {
  hooks.setStatus(row, RecipientStatus.pending)
  row.updatedAt = now
  hooks.requeued(row)
}

/**
 * Records one receipt outcome at `now`; returns whether the row changed. Accepted and Failed merge like observations
 * (a webhook may have moved the row on already); Retry, Released and InDoubt act only on a row still `submitting`.
 */
export const receive = <T, R extends Row<T>>(
  hooks: Hooks<T, R>,
  row: R,
  outcome: ProgressStore.ReceiptOutcome,
  now: T
): boolean => {
  switch (outcome._tag) {
    case "Accepted":
      return observe(hooks, row, RecipientStatus.accepted, now, outcome.providerMessageId, now)
    case "Failed":
      return observe(hooks, row, RecipientStatus.failed(outcome.reason, outcome.code), now, undefined, now)
    case "Retry":
      if (row.status._tag !== "submitting") return false
      row.notBefore = hooks.fromDateTime(outcome.notBefore)
      row.lastError = outcome.error
      requeue(hooks, row, now)
      return true
    case "Released":
      // The recipient was never handed over: the claim's attempt does not count.
      if (row.status._tag !== "submitting") return false
      row.attempts--
      requeue(hooks, row, now)
      return true
    case "InDoubt":
      if (row.status._tag !== "submitting") return false
      row.lastError = outcome.error
      hooks.setStatus(row, RecipientStatus.inDoubt)
      row.updatedAt = now
      return true
  }
}
