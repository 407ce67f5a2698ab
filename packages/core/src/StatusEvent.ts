/**
 * An observed change of a recipient's status: a provider receipt, a polled row, a webhook, an inbound reply.
 * The store merges events forward-only (`RecipientStatus.merge`), so duplicates and reordering are harmless.
 */
import { Schema } from "effect"
import * as Broadcast from "./Broadcast.ts"
import * as RecipientStatus from "./RecipientStatus.ts"

/** How an event names its recipient: by our id (echoed by the provider) or by the provider's message id. */
export const RecipientRef = Schema.Union([
  Schema.TaggedStruct("ById", { broadcastId: Broadcast.BroadcastId, seq: Schema.Int }),
  Schema.TaggedStruct("ByProviderMessageId", { providerMessageId: Schema.String })
])
export type RecipientRef = typeof RecipientRef.Type

export class StatusEvent extends Schema.Class<StatusEvent>("@crier/core/StatusEvent")({
  ref: RecipientRef,
  status: RecipientStatus.RecipientStatus,
  at: Schema.DateTimeUtc,
  /** The provider's message id when the event carries one, recorded if the row has none yet. */
  providerMessageId: Schema.optional(Schema.String)
}) {}
