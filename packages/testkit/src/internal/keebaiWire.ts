/**
 * The Keebai bulk API on the wire, as the emulator reads and writes it (PROVIDERS.md, "Keebai bulk API"). Kept apart
 * from `@crier/keebai`'s own reading on purpose: the adapter is tested against an independent reading of the docs.
 */
import { Schema } from "effect"
import { createHmac } from "node:crypto"

export const maxRecipients = 5000
export const requiredScope = "messages:bulk"
/** The header carrying `sha256=<hex HMAC-SHA256 of the raw body>`, keyed with the `whsec_` secret. */
export const signatureHeader = "x-keebai-signature"

// E.164: a plus, a non-zero country digit, at most 15 digits in all. Shorter than 8 digits is no mobile number.
const E164 = /^\+[1-9]\d{7,14}$/

export const isE164 = (to: string): boolean => E164.test(to)

const Value = Schema.Union([Schema.String, Schema.Finite, Schema.Boolean])

export const Recipient = Schema.Struct({
  to: Schema.String,
  variables: Schema.optionalKey(Schema.Record(Schema.String, Value)),
  meta_data: Schema.optionalKey(Schema.Record(Schema.String, Schema.Unknown))
})
export type Recipient = typeof Recipient.Type

export const BulkRequest = Schema.Struct({
  template_name: Schema.NonEmptyString,
  language: Schema.NonEmptyString,
  channel_id: Schema.optionalKey(Schema.NonEmptyString),
  phone_number_id: Schema.optionalKey(Schema.NonEmptyString),
  campaign_name: Schema.optionalKey(Schema.String),
  recipients: Schema.Array(Recipient)
})
export type BulkRequest = typeof BulkRequest.Type

export const decodeBulkRequest = Schema.decodeUnknownResult(Schema.fromJsonString(BulkRequest))

export type BulkStatus = "PENDING" | "scheduled" | "IN_PROGRESS" | "COMPLETED" | "FAILED" | "CANCELLED"

export type EventType = "sent" | "delivered" | "read" | "failed" | "received"

export const errorBody = (code: string, message: string) => ({ error: { code, message } })

export const sign = (secret: string, rawBody: string): string =>
  `sha256=${createHmac("sha256", secret).update(rawBody, "utf8").digest("hex")}`
