/**
 * A recipient row's mutable state as the SQL store reads it inside a write transaction, and the changes the port
 * defines on it. A batch (receipts, status events) reads its rows once, applies every item here in order, and writes
 * the changed rows back in one statement; the rules are those of `ProgressStore.layerMemory`, the reference.
 */
import type * as ProgressStore from "@crier/core/ProgressStore"
import * as RecipientStatus from "@crier/core/RecipientStatus"
import { DateTime } from "effect"

export interface State {
  readonly broadcastId: string
  readonly seq: number
  readonly address: string
  status: RecipientStatus.RecipientStatus
  attempts: number
  providerMessageId: string | undefined
  lastError: string | undefined
  notBefore: number | undefined
  /**
   * When a row back in `pending` after a claim may go again: its `notBefore`, or 0 when it has none. Absent while the
   * row was never claimed. It puts never-claimed rows and returned rows in two claim indexes: the first read in seq
   * order, the second by due time, so a claim does not look through returned rows that are not due yet.
   */
  readyAt: number | undefined
  leaseOwner: string | undefined
  leaseUntil: number | undefined
  updatedAt: number
  acceptedAt: number | undefined
  sentAt: number | undefined
  deliveredAt: number | undefined
  readAt: number | undefined
  repliedAt: number | undefined
  failedAt: number | undefined
}

type Stamp = "acceptedAt" | "sentAt" | "deliveredAt" | "readAt" | "repliedAt" | "failedAt"

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

const stamp = (row: State, field: Stamp, at: number): boolean => {
  const current = row[field]
  if (current !== undefined && current <= at) return false
  row[field] = at
  return true
}

/**
 * Merges an observed status into a row: forward only, timestamps earliest-wins, so the end state does not depend on
 * the order or repetition of observations. Returns whether the row changed.
 */
export const observe = (
  row: State,
  incoming: RecipientStatus.RecipientStatus,
  at: number,
  providerMessageId: string | undefined,
  now: number
): boolean => {
  // A skipped row was never sent: nothing merges into it.
  if (row.status._tag === "skipped") return false
  const merged = RecipientStatus.merge(row.status, incoming)
  let changed = merged !== row.status
  if (changed) {
    // Evidence of delivery replaced a failure: the row ends as if the failure had arrived after it (ignored).
    if (row.status._tag === "failed" && merged._tag !== "failed") row.failedAt = undefined
    row.status = merged
  }
  const step = ladderStep[incoming._tag]
  if (step !== undefined) {
    for (let i = 0; i <= step; i++) changed = stamp(row, ladder[i]!, at) || changed
  } else if (incoming._tag === "failed" && merged._tag === "failed") {
    changed = stamp(row, "failedAt", at) || changed
  }
  if (providerMessageId !== undefined && row.providerMessageId === undefined) {
    row.providerMessageId = providerMessageId
    changed = true
  }
  if (changed) row.updatedAt = now
  return changed
}

// Back to `pending` after a claim, claimable from `notBefore` (if any).
const requeue = (row: State, now: number): void => {
  row.status = RecipientStatus.pending
  row.readyAt = row.notBefore ?? 0
  row.updatedAt = now
}

/** The status an outcome moves a `submitting` row to. */
export const outcomeStatus = (outcome: ProgressStore.ReceiptOutcome): RecipientStatus.Tag =>
  outcome._tag === "Accepted" ? "accepted" : outcome._tag === "Failed" ? "failed" : "pending"

/** Records one receipt outcome at `now`; returns whether the row changed. */
export const receive = (row: State, outcome: ProgressStore.ReceiptOutcome, now: number): boolean => {
  switch (outcome._tag) {
    case "Accepted":
      return observe(row, RecipientStatus.accepted, now, outcome.providerMessageId, now)
    case "Failed":
      return observe(row, RecipientStatus.failed(outcome.reason, outcome.code), now, undefined, now)
    // Retry and Released act only on a row still submitting: anything else already has newer news.
    case "Retry":
      if (row.status._tag !== "submitting") return false
      row.notBefore = DateTime.toEpochMillis(outcome.notBefore)
      row.lastError = outcome.error
      requeue(row, now)
      return true
    case "Released":
      if (row.status._tag !== "submitting") return false
      row.attempts--
      requeue(row, now)
      return true
  }
}

export type Deltas = Record<RecipientStatus.Tag, number>

export const noDeltas = (): Deltas => ({
  pending: 0,
  submitting: 0,
  accepted: 0,
  sent: 0,
  delivered: 0,
  read: 0,
  replied: 0,
  failed: 0,
  skipped: 0,
  in_doubt: 0
})

export const move = (deltas: Deltas, from: RecipientStatus.Tag, to: RecipientStatus.Tag, count = 1): void => {
  if (from === to || count === 0) return
  deltas[from] -= count
  deltas[to] += count
}
