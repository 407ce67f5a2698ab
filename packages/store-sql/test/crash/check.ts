/**
 * The crash test's verdict: the stored rows after the last run against the provider's journal. Pure, so the checks
 * themselves are tested on made-up rows and journals (crash.test.ts).
 *
 * What holds for any kill points:
 * - every row is settled: `accepted`, `failed` (exactly the recipients the provider refuses, never journaled) or
 *   `in_doubt` (at-most-once only: at-least-once sends them again);
 * - a run hands a recipient over at most once;
 * - a recorded acceptance is the recipient's last journal line (its provider id names that line's run): nothing
 *   recorded as accepted was sent again;
 * - at-most-once: every recipient is journaled at most once and claimed once (attempts 1); the journaled rows not
 *   recorded as accepted are exactly the journaled `in_doubt` rows. `in_doubt` may hold more: rows a killed run
 *   had claimed but not yet handed over, which the store cannot tell from rows in flight (`inDoubtUnsent`);
 * - at-least-once: duplicates come only from killed runs, each at most its messages in flight (one claim,
 *   `claimSize`), so a recipient is journaled at most 1 + (kills that caught it in flight) times — not "at most
 *   twice": a requeued row goes first in the next run and can be caught again;
 * - at most `claimSize` rows are left unrecorded by each kill.
 */
import type * as Broadcast from "@crier/core/Broadcast"
import type { Entry } from "./journal.ts"
import * as Protocol from "./protocol.ts"

export interface Row {
  readonly seq: number
  readonly status: string
  readonly providerMessageId: string | null
  readonly hasAcceptedAt: boolean
  readonly attempts: number
  readonly failureCode: string | null
}

export interface Input {
  readonly policy: Broadcast.InDoubtPolicy
  readonly total: number
  readonly rows: ReadonlyArray<Row>
  readonly journal: ReadonlyArray<Entry>
  /** Runs 1..kills were killed; run `kills + 1` finished. */
  readonly kills: number
}

export interface Findings {
  readonly violations: ReadonlyArray<string>
  readonly journalLines: number
  /** Recipients with at least one journal line. */
  readonly journaled: number
  readonly accepted: number
  readonly failed: number
  readonly inDoubt: number
  /** `in_doubt` rows the provider did journal (sent, never recorded). */
  readonly inDoubtSent: number
  /** `in_doubt` rows never handed over (claimed by a run that was killed before their turn). */
  readonly inDoubtUnsent: number
  /** Journal lines beyond the first per recipient. */
  readonly duplicates: number
  readonly maxPerRecipient: number
  /** The most journal lines one killed run left unrecorded. */
  readonly maxUnrecordedPerKill: number
}

export const analyze = (input: Input): Findings => {
  const violations: Array<string> = []
  const fail = (message: string) => {
    if (violations.length < 50) violations.push(message)
  }
  const finalRun = input.kills + 1
  const bySeq = new Map<number, Array<Entry>>()
  for (const entry of input.journal) {
    if (entry.seq < 1 || entry.seq > input.total) fail(`journal line ${entry.line}: no recipient ${entry.seq}`)
    if (entry.run < 1 || entry.run > finalRun) fail(`journal line ${entry.line}: no run ${entry.run}`)
    const lines = bySeq.get(entry.seq) ?? []
    if (lines.some((earlier) => earlier.run === entry.run)) {
      fail(`recipient ${entry.seq} handed over twice in run ${entry.run}`)
    }
    lines.push(entry)
    bySeq.set(entry.seq, lines)
  }

  if (input.rows.length !== input.total) fail(`${input.rows.length} rows, expected ${input.total}`)
  const unrecordedByRun = new Map<number, number>()
  let accepted = 0
  let failed = 0
  let inDoubt = 0
  let inDoubtSent = 0
  let duplicates = 0
  let maxPerRecipient = 0
  for (const row of input.rows) {
    const lines = bySeq.get(row.seq) ?? []
    const last = lines[lines.length - 1]
    duplicates += Math.max(0, lines.length - 1)
    maxPerRecipient = Math.max(maxPerRecipient, lines.length)
    const recorded = row.status === "accepted" ? row.providerMessageId : null
    for (const line of lines) {
      if (line.messageId !== recorded) unrecordedByRun.set(line.run, (unrecordedByRun.get(line.run) ?? 0) + 1)
    }
    if (input.policy === "at-most-once") {
      if (lines.length > 1) fail(`recipient ${row.seq} journaled ${lines.length} times under at-most-once`)
      if (row.attempts !== 1) fail(`recipient ${row.seq} claimed ${row.attempts} times under at-most-once`)
    } else if (row.attempts < lines.length) {
      fail(`recipient ${row.seq} journaled ${lines.length} times but claimed ${row.attempts}`)
    }
    if (Protocol.refused(row.seq) && lines.length > 0) fail(`refused recipient ${row.seq} was journaled`)
    switch (row.status) {
      case "accepted": {
        accepted++
        if (!row.hasAcceptedAt) fail(`recipient ${row.seq} accepted without acceptedAt`)
        if (last === undefined) fail(`recipient ${row.seq} recorded accepted, never journaled`)
        else if (row.providerMessageId !== last.messageId) {
          fail(
            `recipient ${row.seq} recorded accepted as ${row.providerMessageId}, but its last journal line is ${last.messageId} (line ${last.line})`
          )
        }
        break
      }
      case "failed": {
        failed++
        if (!Protocol.refused(row.seq)) fail(`recipient ${row.seq} failed but the provider never refused it`)
        if (row.failureCode !== String(Protocol.refusedCode)) {
          fail(`recipient ${row.seq} failed with code ${row.failureCode}`)
        }
        break
      }
      case "in_doubt": {
        inDoubt++
        if (input.policy === "at-least-once") fail(`recipient ${row.seq} left in_doubt under at-least-once`)
        if (lines.length > 0) inDoubtSent++
        break
      }
      default:
        fail(`recipient ${row.seq} is ${row.status}, not settled`)
    }
    if (row.status !== "accepted" && row.providerMessageId !== null) {
      fail(`recipient ${row.seq} is ${row.status} with provider id ${row.providerMessageId}`)
    }
  }

  let maxUnrecordedPerKill = 0
  for (const [run, count] of unrecordedByRun) {
    if (run === finalRun) fail(`the run that finished left ${count} journaled messages unrecorded`)
    else if (count > Protocol.claimSize) {
      fail(`killed run ${run} left ${count} journaled messages unrecorded, more than one claim (${Protocol.claimSize})`)
    }
    maxUnrecordedPerKill = Math.max(maxUnrecordedPerKill, run === finalRun ? 0 : count)
  }

  // The set equalities, spelled out: journaled = recorded accepted + (at-most-once) the journaled in_doubt rows.
  const expectedUnrecorded = input.policy === "at-most-once" ? inDoubtSent : 0
  if (bySeq.size - accepted !== expectedUnrecorded) {
    fail(`${bySeq.size} recipients journaled, ${accepted} recorded accepted, ${inDoubtSent} journaled in_doubt`)
  }
  if (inDoubt > input.kills * Protocol.claimSize) {
    fail(`${inDoubt} rows in_doubt after ${input.kills} kills of at most ${Protocol.claimSize} in flight each`)
  }

  return {
    violations,
    journalLines: input.journal.length,
    journaled: bySeq.size,
    accepted,
    failed,
    inDoubt,
    inDoubtSent,
    inDoubtUnsent: inDoubt - inDoubtSent,
    duplicates,
    maxPerRecipient,
    maxUnrecordedPerKill
  }
}
