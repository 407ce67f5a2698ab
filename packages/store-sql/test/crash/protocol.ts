/**
 * What the crash test's parent (`crash.test.ts`) and its child (`worker.ts`) agree on: the broadcast's policy, the
 * two transport configurations, which recipients the provider refuses, the journal's line format, and the progress
 * lines the child prints so the parent can time its kills. No test framework here: the child imports it too.
 */
import * as Broadcast from "@crier/core/Broadcast"
import type * as BroadcastTransport from "@crier/core/BroadcastTransport"

/** Recipients claimed per loop turn, so at most this many are in flight (claimed, not yet recorded) at a kill. */
export const claimSize = 25

export const policy = (inDoubt: Broadcast.InDoubtPolicy): Broadcast.Policy =>
  new Broadcast.Policy({ inDoubt, batchSize: claimSize, concurrency: 5 })

/** `per-message`: Meta-like, one recipient per call, 5 calls at once. `batch`: one call for the whole claim. */
export const transports = ["per-message", "batch"] as const
export type TransportKind = (typeof transports)[number]

export const capabilities = (kind: TransportKind): BroadcastTransport.Capabilities => ({
  maxBatchSize: kind === "per-message" ? 1 : 100,
  remoteCampaign: false,
  startsOnSubmit: true,
  // Nothing to poll: the broadcast completes once every row is settled.
  tracking: "webhook",
  providerDedupe: false,
  providerPaced: false,
  requestBudgets: []
})

/** The provider refuses these recipients for good (Meta 131026): they end `failed` and are never journaled. */
export const refused = (seq: number): boolean => seq % 41 === 0
export const refusedCode = 131026

/** The provider's message id: which run accepted which recipient, so a journal line names its run. */
export const messageId = (run: number, seq: number): string => `m${run}.${seq}`

export const parseMessageId = (id: string): { readonly run: number; readonly seq: number } | undefined => {
  const match = /^m([0-9]+)\.([0-9]+)$/.exec(id)
  return match === null ? undefined : { run: Number(match[1]), seq: Number(match[2]) }
}

/** One accepted message, as the provider journals it. */
export const journalLine = (recipientId: string, id: string): string => `${recipientId} ${id}\n`

/**
 * Progress lines on the child's stdout, `@ <event> <value>`:
 * - `loaded`: the program is loaded; `ready`: recovered and sending; `done <status>`: the broadcast is over;
 * - `recovered <inDoubt> <requeued>`: what `recover` did;
 * - `claim-begin <limit>` / `claimed <n>`, `record-begin <n>` / `recorded <n>`: around the store's claim and
 *   receipt writes;
 * - `submit <n>`: a call leaves; `journaled <n>`: the provider has journaled (and fsync'd) its n accepted messages
 *   and is about to answer.
 */
export const events = [
  "loaded",
  "recovered",
  "ready",
  "claim-begin",
  "claimed",
  "submit",
  "journaled",
  "record-begin",
  "recorded",
  "done"
] as const
export type Event = (typeof events)[number]

export const eventLine = (event: Event, ...values: ReadonlyArray<string | number>): string =>
  `@ ${[event, ...values].join(" ")}\n`

export const parseEventLine = (
  line: string
): { readonly event: Event; readonly values: ReadonlyArray<string> } | undefined => {
  if (!line.startsWith("@ ")) return undefined
  const [event, ...values] = line.slice(2).trim().split(" ")
  return events.find((known) => known === event) === undefined ? undefined : { event: event as Event, values }
}
