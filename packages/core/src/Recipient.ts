/**
 * A recipient of a broadcast: what the importer or the caller hands in (`NewRecipient`), and the durable row the
 * store keeps for it (`Recipient`).
 */
import { Option, Schema } from "effect"
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
