/**
 * A recipient of a broadcast: what the importer or the caller hands in (`NewRecipient`), and the durable row the
 * store keeps for it (`Recipient`).
 */
import { type DateTime, Option, Schema } from "effect"
import type { Mutable } from "effect/Types"
import * as Address from "./Address.ts"
import * as Broadcast from "./Broadcast.ts"
import * as RecipientStatus from "./RecipientStatus.ts"
import * as TemplateParams from "./TemplateParams.ts"

/** Position of a recipient within its broadcast, from 1 in insertion order: the store's key and send order. */
export const Seq = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))

export const Metadata = Schema.Record(Schema.String, Schema.String)

export class NewRecipient extends Schema.Class<NewRecipient>("@crier/core/Recipient/NewRecipient")({
  address: Address.Address,
  params: TemplateParams.TemplateParams,
  metadata: Metadata,
  /** Line in the source file where the row started, when it came from a file. */
  line: Schema.optional(Schema.Int)
}) {}

export class Recipient extends Schema.Class<Recipient>("@crier/core/Recipient")({
  broadcastId: Broadcast.BroadcastId,
  seq: Seq,
  address: Address.Address,
  params: TemplateParams.TemplateParams,
  metadata: Metadata,
  status: RecipientStatus.RecipientStatus,
  /** Submissions so far (a claim counts one). */
  attempts: Schema.Int,
  /** The provider's id for the message once accepted (wamid, provider recipient id, remote batch id). */
  providerMessageId: Schema.optional(Schema.String),
  /** The reason of the last failed attempt, kept while the recipient waits for a retry. */
  lastError: Schema.optional(Schema.String),
  /** A pending recipient is not claimed before this instant (retry backoff). */
  notBefore: Schema.optional(Schema.DateTimeUtc),
  updatedAt: Schema.DateTimeUtc,
  acceptedAt: Schema.optional(Schema.DateTimeUtc),
  sentAt: Schema.optional(Schema.DateTimeUtc),
  deliveredAt: Schema.optional(Schema.DateTimeUtc),
  readAt: Schema.optional(Schema.DateTimeUtc),
  repliedAt: Schema.optional(Schema.DateTimeUtc),
  failedAt: Schema.optional(Schema.DateTimeUtc)
}) {}

/** A recipient row's fields as a store keeps them, every one checked on its way in; `T` is how it keeps instants. */
export interface StoredFields<T> {
  readonly broadcastId: Broadcast.BroadcastId
  readonly seq: number
  readonly address: Address.Address
  readonly params: TemplateParams.TemplateParams
  readonly metadata: Recipient["metadata"]
  readonly status: RecipientStatus.RecipientStatus
  readonly attempts: number
  readonly providerMessageId: string | undefined
  readonly lastError: string | undefined
  readonly notBefore: T | undefined
  readonly updatedAt: T
  readonly acceptedAt: T | undefined
  readonly sentAt: T | undefined
  readonly deliveredAt: T | undefined
  readonly readAt: T | undefined
  readonly repliedAt: T | undefined
  readonly failedAt: T | undefined
}

/**
 * A `Recipient` from a store's row, whose fields were checked on their way in. The constructor would parse them all
 * again (even with `disableChecks`, about 3 µs a row: the largest cost of a claim after the store's own read), and
 * Effect has no public constructor for trusted fields. So the instance is made as the constructor makes it: the
 * class's prototype with the fields as own properties, in the schema's order, optional ones only when set (each
 * store's tests check the two stay alike).
 */
export const fromStored = <T>(row: StoredFields<T>, toDateTime: (instant: T) => DateTime.Utc): Recipient => {
  const recipient: Mutable<Recipient> = Object.create(Recipient.prototype)
  recipient.broadcastId = row.broadcastId
  recipient.seq = row.seq
  recipient.address = row.address
  recipient.params = row.params
  recipient.metadata = row.metadata
  recipient.status = row.status
  recipient.attempts = row.attempts
  if (row.providerMessageId !== undefined) recipient.providerMessageId = row.providerMessageId
  if (row.lastError !== undefined) recipient.lastError = row.lastError
  if (row.notBefore !== undefined) recipient.notBefore = toDateTime(row.notBefore)
  recipient.updatedAt = toDateTime(row.updatedAt)
  if (row.acceptedAt !== undefined) recipient.acceptedAt = toDateTime(row.acceptedAt)
  if (row.sentAt !== undefined) recipient.sentAt = toDateTime(row.sentAt)
  if (row.deliveredAt !== undefined) recipient.deliveredAt = toDateTime(row.deliveredAt)
  if (row.readAt !== undefined) recipient.readAt = toDateTime(row.readAt)
  if (row.repliedAt !== undefined) recipient.repliedAt = toDateTime(row.repliedAt)
  if (row.failedAt !== undefined) recipient.failedAt = toDateTime(row.failedAt)
  return recipient
}

/**
 * The opaque id handed to providers that echo one back (`biz_opaque_callback_data`, `meta_data`), so a webhook
 * finds its row without a lookup table: `<broadcast id>:<seq>`.
 */
export const recipientId = (broadcastId: Broadcast.BroadcastId, seq: number): string => `${broadcastId}:${seq}`

export const parseRecipientId = (
  id: string
): Option.Option<{ readonly broadcastId: Broadcast.BroadcastId; readonly seq: number }> => {
  const match = /^(bc_[0-9A-HJKMNP-TV-Z]{26}):([1-9][0-9]{0,14})$/.exec(id)
  return match === null
    ? Option.none()
    : Option.some({ broadcastId: Broadcast.BroadcastId.make(match[1]!), seq: Number(match[2]) })
}
