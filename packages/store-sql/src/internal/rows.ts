/**
 * How broadcasts and recipients are laid out in rows, and the codecs between rows and the domain. Every value read
 * back is decoded with `Schema`; a row that does not decode fails with `StoreError { reason: "Corrupt" }`.
 *
 * Instants are epoch milliseconds (`BIGINT`); PostgreSQL returns them as `bigint`, SQLite as `number`. A status is
 * its tag plus the failure code and reason or the skip reason; template, policy, params and metadata are JSON text.
 */
import * as Broadcast from "@crier/core/Broadcast"
import * as BroadcastStatus from "@crier/core/BroadcastStatus"
import * as ProgressStore from "@crier/core/ProgressStore"
import * as Recipient from "@crier/core/Recipient"
import * as RecipientStatus from "@crier/core/RecipientStatus"
import * as TemplateParams from "@crier/core/TemplateParams"
import * as TemplateSpec from "@crier/core/TemplateSpec"
import { DateTime, Result, Schema } from "effect"
import type { ColumnType } from "./dialect.ts"
import type * as Progress from "./progress.ts"

type Column = readonly [name: string, type: ColumnType]

const Int = Schema.Union([Schema.Number, Schema.BigInt])
const OptionalInt = Schema.NullOr(Int)
const OptionalText = Schema.NullOr(Schema.String)

const toNumber = (value: number | bigint): number => typeof value === "number" ? value : Number(value)
const toOptionalNumber = (value: number | bigint | null): number | undefined =>
  value === null ? undefined : toNumber(value)
const toOptional = <A>(value: A | null): A | undefined => value === null ? undefined : value

const corrupt = (what: string, issue: unknown): ProgressStore.StoreError =>
  new ProgressStore.StoreError({ reason: "Corrupt", message: `${what} cannot be read: ${String(issue)}` })

// ---------------------------------------------------------------------------------------------------------------
// Hot rows

/**
 * How a column reads: text or an integer (PostgreSQL returns `BIGINT` as `bigint`), `?` when it may be NULL. The rows
 * every claim, receipt and event batch reads are checked against such a shape by hand, not by a Schema struct: they
 * were validated before they were stored, and a struct decode cost more per row than the statement that read it.
 */
type Read = "text" | "text?" | "int" | "int?"

type Shape = Readonly<Record<string, Read>>

type RowOf<S extends Shape> = {
  readonly [K in keyof S]: S[K] extends "text" ? string
    : S[K] extends "text?" ? string | null
    : S[K] extends "int" ? number | bigint
    : number | bigint | null
}

const isInt = (value: unknown): boolean => typeof value === "bigint" || Number.isSafeInteger(value)

const fits: Record<Read, (value: unknown) => boolean> = {
  text: (value) => typeof value === "string",
  "text?": (value) => value === null || typeof value === "string",
  int: isInt,
  "int?": (value) => value === null || isInt(value)
}

/** A check of rows against `shape`: the row, or what is wrong with its first column that does not fit. */
const rowCheck = <S extends Shape>(shape: S) => {
  const columns = Object.entries(shape).map(([column, read]) => [column, read, fits[read]] as const)
  return (row: unknown): Result.Result<RowOf<S>, string> => {
    if (typeof row !== "object" || row === null) return Result.fail("not a row")
    for (const [column, read, fit] of columns) {
      const value = (row as Record<string, unknown>)[column]
      if (!fit(value)) return Result.fail(`${column} should be ${read}, not ${typeof value} ${String(value)}`)
    }
    return Result.succeed(row as RowOf<S>)
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Recipients

const stateShape = {
  broadcast_id: "text",
  seq: "int",
  address: "text",
  status: "text",
  failure_code: "text?",
  failure_reason: "text?",
  skip_reason: "text?",
  attempts: "int",
  provider_message_id: "text?",
  last_error: "text?",
  not_before: "int?",
  ready_at: "int?",
  lease_owner: "text?",
  lease_until: "int?",
  updated_at: "int",
  accepted_at: "int?",
  sent_at: "int?",
  delivered_at: "int?",
  read_at: "int?",
  replied_at: "int?",
  failed_at: "int?"
} as const satisfies Shape

const recipientShape = { ...stateShape, params: "text", metadata: "text" } as const satisfies Shape

type StateRow = RowOf<typeof stateShape>

/** What a merge reads of a row; `params` and `metadata` are read only when a row is handed out. */
export const stateColumns = Object.keys(stateShape)
export const recipientColumns = Object.keys(recipientShape)

const checkStateRow = rowCheck(stateShape)
const checkRecipientRow = rowCheck(recipientShape)
const decodeStatus = Schema.decodeUnknownResult(RecipientStatus.RecipientStatus)
const decodeMetadataJson = Schema.decodeUnknownResult(Recipient.Metadata)
export const encodeParams = Schema.encodeSync(Schema.fromJsonString(TemplateParams.TemplateParams))
export const encodeMetadata = Schema.encodeSync(Schema.fromJsonString(Recipient.Metadata))

// The values were checked against the template before they were stored; the class's constructor checks their shape.
const decodeParams = (text: string): Result.Result<TemplateParams.TemplateParams, unknown> =>
  Result.try({
    try: () => new TemplateParams.TemplateParams(JSON.parse(text), { disableChecks: true }),
    catch: (cause) => cause
  })

const decodeMetadata = (text: string): Result.Result<Recipient.Recipient["metadata"], unknown> =>
  Result.flatMap(Result.try({ try: () => JSON.parse(text) as unknown, catch: (cause) => cause }), decodeMetadataJson)

const statusOf = (row: StateRow): Result.Result<RecipientStatus.RecipientStatus, unknown> =>
  decodeStatus(
    row.status === "failed"
      ? { _tag: "failed", reason: row.failure_reason, ...(row.failure_code === null ? {} : { code: row.failure_code }) }
      : row.status === "skipped"
      ? { _tag: "skipped", reason: row.skip_reason }
      : { _tag: row.status }
  )

const toState = (row: StateRow, status: RecipientStatus.RecipientStatus): Progress.State => ({
  broadcastId: row.broadcast_id,
  seq: toNumber(row.seq),
  address: row.address,
  status,
  attempts: toNumber(row.attempts),
  providerMessageId: toOptional(row.provider_message_id),
  lastError: toOptional(row.last_error),
  notBefore: toOptionalNumber(row.not_before),
  readyAt: toOptionalNumber(row.ready_at),
  leaseOwner: toOptional(row.lease_owner),
  leaseUntil: toOptionalNumber(row.lease_until),
  updatedAt: toNumber(row.updated_at),
  acceptedAt: toOptionalNumber(row.accepted_at),
  sentAt: toOptionalNumber(row.sent_at),
  deliveredAt: toOptionalNumber(row.delivered_at),
  readAt: toOptionalNumber(row.read_at),
  repliedAt: toOptionalNumber(row.replied_at),
  failedAt: toOptionalNumber(row.failed_at)
})

const rowName = (row: unknown): string =>
  typeof row === "object" && row !== null && "broadcast_id" in row && "seq" in row
    ? `recipient ${String(row.broadcast_id)}:${String(row.seq)}`
    : "a recipient row"

export const decodeState = (row: unknown): Result.Result<Progress.State, ProgressStore.StoreError> =>
  Result.mapError(
    Result.flatMap(
      checkStateRow(row),
      (decoded) => Result.map(statusOf(decoded), (status) => toState(decoded, status))
    ),
    (issue) => corrupt(rowName(row), issue)
  )

// The address is not checked again either: with libphonenumber, that would cost more than the rest of a claim.
const toRecipient = (
  state: Progress.State,
  params: TemplateParams.TemplateParams,
  metadata: Recipient.Recipient["metadata"]
): Recipient.Recipient =>
  Recipient.fromStored({
    ...state,
    broadcastId: state.broadcastId as Broadcast.BroadcastId,
    address: state.address as Recipient.Recipient["address"],
    params,
    metadata
  }, DateTime.makeUnsafe)

export const decodeRecipient = (row: unknown): Result.Result<Recipient.Recipient, ProgressStore.StoreError> => {
  const decoded = checkRecipientRow(row)
  if (Result.isFailure(decoded)) return Result.fail(corrupt(rowName(row), decoded.failure))
  const status = statusOf(decoded.success)
  const params = decodeParams(decoded.success.params)
  const metadata = decodeMetadata(decoded.success.metadata)
  if (Result.isFailure(status)) return Result.fail(corrupt(rowName(row), status.failure))
  if (Result.isFailure(params)) return Result.fail(corrupt(rowName(row), params.failure))
  if (Result.isFailure(metadata)) return Result.fail(corrupt(rowName(row), metadata.failure))
  return Result.succeed(toRecipient(toState(decoded.success, status.success), params.success, metadata.success))
}

const instant = (millis: number | undefined): DateTime.Utc | undefined =>
  millis === undefined ? undefined : DateTime.makeUnsafe(millis)

const optional = <K extends string, A>(key: K, value: A | undefined): { readonly [P in K]?: A } =>
  (value === undefined ? {} : { [key]: value }) as { readonly [P in K]?: A }

/** Whether a recipient row (already decoded) was never claimed before the claim that returned it. */
export const neverClaimed = (row: unknown): boolean => (row as { readonly ready_at: unknown }).ready_at === null

/** Decodes every row, or fails with the first that does not decode. */
export const decodeAll = <A>(
  rows: ReadonlyArray<unknown>,
  decode: (row: unknown) => Result.Result<A, ProgressStore.StoreError>
): Result.Result<ReadonlyArray<A>, ProgressStore.StoreError> => {
  const out: Array<A> = []
  for (const row of rows) {
    const decoded = decode(row)
    if (Result.isFailure(decoded)) return Result.fail(decoded.failure)
    out.push(decoded.success)
  }
  return Result.succeed(out)
}

const checkAddressSeqRow = rowCheck({ address: "text", seq: "int" })

export const decodeAddressSeq = (
  row: unknown
): Result.Result<{ readonly address: string; readonly seq: number }, ProgressStore.StoreError> =>
  Result.mapBoth(checkAddressSeqRow(row), {
    onFailure: (issue) => corrupt(rowName(row), issue),
    onSuccess: (decoded) => ({ address: decoded.address, seq: toNumber(decoded.seq) })
  })

const checkProviderRefRow = rowCheck({ broadcast_id: "text", seq: "int", provider_message_id: "text" })

export const decodeProviderRef = (
  row: unknown
): Result.Result<
  { readonly broadcast_id: string; readonly seq: number; readonly providerMessageId: string },
  ProgressStore.StoreError
> =>
  Result.mapBoth(checkProviderRefRow(row), {
    onFailure: (issue) => corrupt(rowName(row), issue),
    onSuccess: (decoded) => ({
      broadcast_id: decoded.broadcast_id,
      seq: toNumber(decoded.seq),
      providerMessageId: decoded.provider_message_id
    })
  })

/** What one receipt outcome writes to a row still `submitting` (see `SqlStore`), keyed by `receiptColumns`. */
export const receiptJson = (
  broadcastId: string,
  outcome: ProgressStore.ReceiptOutcome,
  now: number
): Record<string, string | number | undefined> => ({ outcome_broadcast: broadcastId, ...receiptFields(outcome, now) })

const receiptFields = (
  outcome: ProgressStore.ReceiptOutcome,
  now: number
): Record<string, string | number | undefined> => {
  switch (outcome._tag) {
    case "Accepted":
      return {
        outcome_seq: outcome.seq,
        status: "accepted",
        attempts_delta: 0,
        provider_message_id: outcome.providerMessageId,
        accepted_at: now
      }
    case "Failed":
      return {
        outcome_seq: outcome.seq,
        status: "failed",
        failure_code: outcome.code,
        failure_reason: outcome.reason,
        attempts_delta: 0,
        failed_at: now
      }
    case "Retry":
      return {
        outcome_seq: outcome.seq,
        status: "pending",
        attempts_delta: 0,
        last_error: outcome.error,
        not_before: DateTime.toEpochMillis(outcome.notBefore)
      }
    case "Released":
      return { outcome_seq: outcome.seq, status: "pending", attempts_delta: -1 }
    case "InDoubt":
      return { outcome_seq: outcome.seq, status: "in_doubt", attempts_delta: 0, last_error: outcome.error }
  }
}

export const receiptColumns: ReadonlyArray<Column> = [
  ["outcome_broadcast", "text"],
  ["outcome_seq", "int"],
  ["status", "text"],
  ["failure_code", "text"],
  ["failure_reason", "text"],
  ["attempts_delta", "int"],
  ["provider_message_id", "text"],
  ["last_error", "text"],
  ["not_before", "bigint"],
  ["accepted_at", "bigint"],
  ["failed_at", "bigint"]
]

const checkSeqRow = rowCheck({ seq: "int" })

export const decodeSeq = (row: unknown): Result.Result<number, ProgressStore.StoreError> =>
  Result.mapBoth(checkSeqRow(row), {
    onFailure: (issue) => corrupt(rowName(row), issue),
    onSuccess: (decoded) => toNumber(decoded.seq)
  })

/** The columns of `stateJson`, key first. */
export const stateWriteColumns: ReadonlyArray<Column> = [
  ["broadcast_id", "text"],
  ["seq", "int"],
  ["status", "text"],
  ["failure_code", "text"],
  ["failure_reason", "text"],
  ["skip_reason", "text"],
  ["attempts", "int"],
  ["provider_message_id", "text"],
  ["last_error", "text"],
  ["not_before", "bigint"],
  ["ready_at", "bigint"],
  ["lease_owner", "text"],
  ["lease_until", "bigint"],
  ["updated_at", "bigint"],
  ["accepted_at", "bigint"],
  ["sent_at", "bigint"],
  ["delivered_at", "bigint"],
  ["read_at", "bigint"],
  ["replied_at", "bigint"],
  ["failed_at", "bigint"]
]

/** A row's state as the JSON object a batched write reads back (absent keys are NULL). */
export const stateJson = (row: Progress.State): Record<string, string | number | undefined> => ({
  broadcast_id: row.broadcastId,
  seq: row.seq,
  status: row.status._tag,
  failure_code: row.status._tag === "failed" ? row.status.code : undefined,
  failure_reason: row.status._tag === "failed" ? row.status.reason : undefined,
  skip_reason: row.status._tag === "skipped" ? row.status.reason : undefined,
  attempts: row.attempts,
  provider_message_id: row.providerMessageId,
  last_error: row.lastError,
  not_before: row.notBefore,
  ready_at: row.readyAt,
  lease_owner: row.leaseOwner,
  lease_until: row.leaseUntil,
  updated_at: row.updatedAt,
  accepted_at: row.acceptedAt,
  sent_at: row.sentAt,
  delivered_at: row.deliveredAt,
  read_at: row.readAt,
  replied_at: row.repliedAt,
  failed_at: row.failedAt
})

// ---------------------------------------------------------------------------------------------------------------
// Broadcasts

const BroadcastRow = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  transport: Schema.String,
  sender: Schema.String,
  // Parsed here, checked with the rest of the broadcast below.
  template: Schema.fromJsonString(Schema.Unknown),
  policy: Schema.fromJsonString(Schema.Unknown),
  status: Schema.String,
  status_reason: OptionalText,
  remote_id: OptionalText,
  created_at: Int,
  scheduled_at: OptionalInt,
  started_at: OptionalInt,
  completed_at: OptionalInt
})

export const broadcastColumns = Object.keys(BroadcastRow.fields)

const decodeBroadcastRow = Schema.decodeUnknownResult(BroadcastRow)
const decodeBroadcastFields = Schema.decodeUnknownResult(Broadcast.Broadcast)
const encodeTemplate = Schema.encodeSync(Schema.fromJsonString(TemplateSpec.TemplateSpec))
const encodePolicy = Schema.encodeSync(Schema.fromJsonString(Broadcast.Policy))

export const decodeBroadcast = (row: unknown): Result.Result<Broadcast.Broadcast, ProgressStore.StoreError> =>
  Result.mapError(
    Result.flatMap(decodeBroadcastRow(row), (decoded) =>
      decodeBroadcastFields({
        id: decoded.id,
        name: decoded.name,
        transport: decoded.transport,
        sender: decoded.sender,
        template: decoded.template,
        policy: decoded.policy,
        status: decoded.status,
        createdAt: DateTime.makeUnsafe(toNumber(decoded.created_at)),
        ...optional("statusReason", toOptional(decoded.status_reason)),
        ...optional("remoteId", toOptional(decoded.remote_id)),
        ...optional("scheduledAt", instant(toOptionalNumber(decoded.scheduled_at))),
        ...optional("startedAt", instant(toOptionalNumber(decoded.started_at))),
        ...optional("completedAt", instant(toOptionalNumber(decoded.completed_at)))
      })),
    (issue) =>
      corrupt(
        typeof row === "object" && row !== null && "id" in row ? `broadcast ${String(row.id)}` : "a broadcast row",
        issue
      )
  )

const HeadRow = Schema.Struct({ status: BroadcastStatus.BroadcastStatus, last_seq: Int })
const decodeHeadRow = Schema.decodeUnknownResult(HeadRow)

/** What an insert needs of its broadcast: the status (is it editable?) and the last seq assigned. */
export const decodeHead = (
  row: unknown
): Result.Result<
  { readonly status: BroadcastStatus.BroadcastStatus; readonly lastSeq: number },
  ProgressStore.StoreError
> =>
  Result.mapBoth(decodeHeadRow(row), {
    onFailure: (issue) => corrupt("a broadcast row", issue),
    onSuccess: (decoded) => ({ status: decoded.status, lastSeq: toNumber(decoded.last_seq) })
  })

const millis = (instant: DateTime.Utc | undefined): number | null =>
  instant === undefined ? null : DateTime.toEpochMillis(instant)

/** The row of a broadcast, keyed by `broadcastColumns`. */
export const broadcastRow = (broadcast: Broadcast.Broadcast): Record<keyof typeof BroadcastRow.fields, unknown> => ({
  id: broadcast.id,
  name: broadcast.name,
  transport: broadcast.transport,
  sender: broadcast.sender,
  template: encodeTemplate(broadcast.template),
  policy: encodePolicy(broadcast.policy),
  status: broadcast.status,
  status_reason: broadcast.statusReason ?? null,
  remote_id: broadcast.remoteId ?? null,
  created_at: DateTime.toEpochMillis(broadcast.createdAt),
  scheduled_at: millis(broadcast.scheduledAt),
  started_at: millis(broadcast.startedAt),
  completed_at: millis(broadcast.completedAt)
})

// ---------------------------------------------------------------------------------------------------------------
// Counts and reports

/** A count change per status, as `applyDeltas` carries it. */
export const countColumns: ReadonlyArray<Column> = [
  ["broadcast_id", "text"],
  ...RecipientStatus.tags.map((tag) => [tag, "int"] as const)
]

const CountsRow = Schema.Struct(
  Object.fromEntries(RecipientStatus.tags.map((tag) => [tag, Int])) as Record<RecipientStatus.Tag, typeof Int>
)
const decodeCountsRow = Schema.decodeUnknownResult(CountsRow)

export const decodeCounts = (row: unknown): Result.Result<ProgressStore.Counts, ProgressStore.StoreError> =>
  Result.mapBoth(decodeCountsRow(row), {
    onFailure: (issue) => corrupt("the status counts", issue),
    onSuccess: (decoded) => {
      const counts = { ...ProgressStore.emptyCounts }
      let total = 0
      for (const tag of RecipientStatus.tags) {
        const n = toNumber(decoded[tag])
        ;(counts as Record<string, number>)[tag] = n
        total += n
      }
      return { ...counts, total }
    }
  })

const FailureRow = Schema.Struct({ reason: Schema.String, code: OptionalText, n: Int })
const decodeFailureRow = Schema.decodeUnknownResult(FailureRow)

export const decodeFailure = (row: unknown): Result.Result<ProgressStore.FailureCount, ProgressStore.StoreError> =>
  Result.mapBoth(decodeFailureRow(row), {
    onFailure: (issue) => corrupt("a failure count", issue),
    onSuccess: (decoded) => ({ reason: decoded.reason, code: toOptional(decoded.code), count: toNumber(decoded.n) })
  })

const InstantRow = Schema.Struct({ at: OptionalInt })
const decodeInstantRow = Schema.decodeUnknownResult(InstantRow)

export const decodeInstant = (row: unknown): Result.Result<DateTime.Utc | undefined, ProgressStore.StoreError> =>
  Result.mapBoth(decodeInstantRow(row), {
    onFailure: (issue) => corrupt("an instant", issue),
    onSuccess: (decoded) => instant(toOptionalNumber(decoded.at))
  })
