/**
 * A recipient row's mutable state as the SQL store reads it inside a write transaction. A batch (receipts, status
 * events) reads its rows once, applies every item with the shared rules (`RecipientUpdate`, which the memory store
 * applies too) in order, and writes the changed rows back in one statement; the count changes are computed here.
 */
import type * as ProgressStore from "@crier/core/ProgressStore"
import type * as RecipientStatus from "@crier/core/RecipientStatus"
import type * as RecipientUpdate from "@crier/core/RecipientUpdate"
import { DateTime } from "effect"

/** A row's state; instants are epoch millis. */
export interface State extends RecipientUpdate.Row<number> {
  readonly broadcastId: string
  readonly seq: number
  readonly address: string
  /**
   * When a row back in `pending` after a claim may go again: its `notBefore`, or 0 when it has none. Absent while the
   * row was never claimed. It puts never-claimed rows and returned rows in two claim indexes: the first read in seq
   * order, the second by due time, so a claim does not look through returned rows that are not due yet.
   */
  readyAt: number | undefined
  leaseOwner: string | undefined
  leaseUntil: number | undefined
}

/**
 * The shared rules' hooks for rows read under lock: the caller (`SqlStore`) derives count changes from each row's
 * status before and after a batch, and the indexes are the database's.
 */
export const hooks: RecipientUpdate.Hooks<number, State> = {
  millis: (instant) => instant,
  fromDateTime: DateTime.toEpochMillis,
  setStatus: (row, status) => {
    row.status = status
  },
  requeued: (row) => {
    row.readyAt = row.notBefore ?? 0
  },
  accepted: () => {},
  identified: () => {}
}

/** The status an outcome moves a `submitting` row to. */
export const outcomeStatus = (outcome: ProgressStore.ReceiptOutcome): RecipientStatus.Tag => {
  switch (outcome._tag) {
    case "Accepted":
      return "accepted"
    case "Failed":
      return "failed"
    case "InDoubt":
      return "in_doubt"
    case "Retry":
    case "Released":
      return "pending"
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
