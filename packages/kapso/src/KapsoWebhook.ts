/**
 * Kapso's webhooks: signature check and parsing into status events and replies.
 *
 * Kapso signs each delivery with HMAC-SHA256 of the raw body, keyed with the webhook's secret, hex-encoded in
 * `X-Webhook-Signature`; the event name is in `X-Webhook-Event` (older payloads also carry it as `event`). A
 * delivery holds one payload, `{ event, data: payload }`, or, with `X-Webhook-Batch: true`, `{ batch: true,
 * data: [payload, …] }`.
 *
 * Payloads are read in both of Kapso's formats: v2 (Meta-style `message` with `id` = wamid, `timestamp` in Unix
 * seconds, `from`, `context.id`, and `message.kapso.statuses[]` carrying each status's time and errors) and v1
 * (`message.whatsapp_message_id`, `content`, `phone_number`, `created_at`).
 *
 * | event                        | yields                                                                          |
 * |------------------------------|---------------------------------------------------------------------------------|
 * | `whatsapp.message.sent`      | a `sent` event for the wamid                                                    |
 * | `…delivered`, `…read`        | `delivered`, `read`                                                             |
 * | `…failed`                    | `failed { code, reason }` from the status's first error                         |
 * | `whatsapp.message.received`  | a `Reply` (for `Broadcaster.recordReply`), and `replied` for the wamid it quotes |
 * | anything else                | nothing                                                                         |
 *
 * Events name their message by wamid (`ByProviderMessageId`): the id `KapsoTemplateSend` records. Messages of a
 * Kapso broadcast are followed by polling instead (see `KapsoBroadcasts`); their webhooks name wamids the store
 * does not know, and count as unknown there.
 */
import * as Address from "@crier/core/Address"
import { Broadcaster, type Reply } from "@crier/core/Broadcaster"
import * as RecipientStatus from "@crier/core/RecipientStatus"
import * as StatusEvent from "@crier/core/StatusEvent"
import * as TransportError from "@crier/core/TransportError"
import { DateTime, Effect, Option, Redacted, Result, Schema } from "effect"
import { createHmac, timingSafeEqual } from "node:crypto"

export class WebhookError extends Schema.TaggedError<WebhookError>()("KapsoWebhookError", {
  reason: Schema.Literals(["MissingSignature", "BadSignature", "Malformed"]),
  message: Schema.String
}) {}

export const signatureHeader = "x-webhook-signature"
export const eventHeader = "x-webhook-event"
export const batchHeader = "x-webhook-batch"

/** The signature Kapso sends for `body`: hex HMAC-SHA256 keyed with the webhook's secret. */
export const sign = (secret: Redacted.Redacted<string>, body: string | Uint8Array): string =>
  createHmac("sha256", Redacted.value(secret)).update(body).digest("hex")

/** Checks `signature` against the raw body in constant time. A `sha256=` prefix and upper case are accepted. */
export const verify = (
  secret: Redacted.Redacted<string>,
  body: string | Uint8Array,
  signature: string | undefined
): Result.Result<void, WebhookError> => {
  if (signature === undefined || signature.trim() === "") {
    return Result.fail(new WebhookError({ reason: "MissingSignature", message: "no X-Webhook-Signature header" }))
  }
  const given = Buffer.from(signature.trim().replace(/^sha256=/i, "").toLowerCase(), "utf8")
  const expected = Buffer.from(sign(secret, body), "utf8")
  return given.length === expected.length && timingSafeEqual(given, expected)
    ? Result.void
    : Result.fail(new WebhookError({ reason: "BadSignature", message: "X-Webhook-Signature does not match the body" }))
}

// ---------------------------------------------------------------------------------------------------------------
// Payloads

const Time = Schema.Union([Schema.String, Schema.Number])

const MetaError = Schema.Struct({
  code: Schema.optionalKey(Schema.NullOr(Schema.Union([Schema.Number, Schema.String]))),
  title: Schema.optionalKey(Schema.NullOr(Schema.String)),
  message: Schema.optionalKey(Schema.NullOr(Schema.String)),
  error_data: Schema.optionalKey(Schema.NullOr(Schema.Struct({
    details: Schema.optionalKey(Schema.NullOr(Schema.String))
  })))
})

const Status = Schema.Struct({
  id: Schema.optionalKey(Schema.NullOr(Schema.String)),
  status: Schema.optionalKey(Schema.NullOr(Schema.String)),
  timestamp: Schema.optionalKey(Schema.NullOr(Time)),
  errors: Schema.optionalKey(Schema.NullOr(Schema.Array(MetaError)))
})

const Text = Schema.optionalKey(Schema.NullOr(Schema.String))

const Message = Schema.Struct({
  id: Schema.String,
  timestamp: Schema.optionalKey(Schema.NullOr(Time)),
  from: Text,
  text: Schema.optionalKey(Schema.NullOr(Schema.Struct({ body: Text }))),
  context: Schema.optionalKey(Schema.NullOr(Schema.Struct({ id: Text }))),
  kapso: Schema.optionalKey(Schema.NullOr(Schema.Struct({
    statuses: Schema.optionalKey(Schema.NullOr(Schema.Array(Status))),
    content: Text,
    error: Schema.optionalKey(Schema.NullOr(MetaError))
  }))),
  // v1
  whatsapp_message_id: Text,
  content: Text,
  phone_number: Text,
  created_at: Text,
  error_message: Text
})

const Payload = Schema.Struct({
  event: Schema.optionalKey(Schema.String),
  message: Schema.optionalKey(Schema.NullOr(Message)),
  conversation: Schema.optionalKey(Schema.NullOr(Schema.Struct({
    phone_number: Text,
    business_scoped_user_id: Text
  })))
})
type Payload = typeof Payload.Type

const Delivery = Schema.Union([
  Schema.Struct({ batch: Schema.Literal(true), data: Schema.Array(Payload) }),
  Schema.Struct({ event: Schema.optionalKey(Schema.String), data: Payload }),
  Payload
])

const decodeDelivery = Schema.decodeUnknownResult(Schema.fromJsonString(Delivery))

export interface Parsed {
  readonly events: ReadonlyArray<StatusEvent.StatusEvent>
  readonly replies: ReadonlyArray<Reply>
  /** Inbound messages whose sender is neither a phone number nor a BSUID we can read. */
  readonly unattributed: number
}

const empty: Parsed = { events: [], replies: [], unattributed: 0 }

const timeOf = (value: string | number | null | undefined): Option.Option<DateTime.Utc> => {
  if (value === undefined || value === null) return Option.none()
  const text = String(value).trim()
  // Unix seconds (Meta-style), else an ISO date.
  return /^\d+$/.test(text) ? DateTime.make(Number(text) * 1000) : DateTime.make(text)
}

const statusOf: Record<string, RecipientStatus.RecipientStatus | "failed"> = {
  "whatsapp.message.sent": RecipientStatus.sent,
  "whatsapp.message.delivered": RecipientStatus.delivered,
  "whatsapp.message.read": RecipientStatus.read,
  "whatsapp.message.failed": "failed"
}

const failureOf = (error: typeof MetaError.Type | null | undefined, fallback: string | null | undefined) => {
  const raw = error?.code
  const code = raw === undefined || raw === null ? undefined : String(raw)
  const known = code === undefined ? undefined : TransportError.metaCodes.get(Number(code))
  const texts = [error?.title ?? error?.message, error?.error_data?.details].filter((text) =>
    text !== undefined && text !== null && text.trim() !== ""
  )
  const reason = texts.join(": ") || fallback?.trim() || known?.meaning || "Kapso reported the message as failed"
  return RecipientStatus.failed(reason, code)
}

const statusEvent = (
  event: string,
  message: typeof Message.Type,
  now: DateTime.Utc
): Option.Option<StatusEvent.StatusEvent> => {
  const status = statusOf[event]
  if (status === undefined) return Option.none()
  const wamid = message.whatsapp_message_id ?? message.id
  const name = event.slice("whatsapp.message.".length)
  const entry = (message.kapso?.statuses ?? []).filter((s) => s.status === name).at(-1)
  const at = Option.getOrElse(timeOf(entry?.timestamp), () => now)
  const resolved = status === "failed"
    ? failureOf(entry?.errors?.[0] ?? message.kapso?.error, message.error_message)
    : status
  return Option.some(
    new StatusEvent.StatusEvent({
      ref: { _tag: "ByProviderMessageId", providerMessageId: wamid },
      status: resolved,
      at,
      providerMessageId: wamid
    })
  )
}

const senderOf = (payload: Payload): Option.Option<Address.Address> => {
  const phone = payload.message?.from ?? payload.conversation?.phone_number ?? payload.message?.phone_number
  const candidates = [
    ...(phone === undefined || phone === null ? [] : [`+${phone.replace(/\D/g, "")}`]),
    ...(payload.conversation?.business_scoped_user_id ? [payload.conversation.business_scoped_user_id] : [])
  ]
  for (const candidate of candidates) {
    const parsed = Address.parse(candidate)
    if (Result.isSuccess(parsed)) return Option.some(parsed.success)
  }
  return Option.none()
}

const received = (payload: Payload, message: typeof Message.Type, now: DateTime.Utc): Parsed => {
  const at = Option.getOrElse(timeOf(message.timestamp ?? message.created_at), () => now)
  const quoted = message.context?.id
  const events = quoted === undefined || quoted === null ? [] : [
    new StatusEvent.StatusEvent({
      ref: { _tag: "ByProviderMessageId", providerMessageId: quoted },
      status: RecipientStatus.replied,
      at,
      providerMessageId: quoted
    })
  ]
  const text = message.text?.body ?? message.kapso?.content ?? message.content ?? undefined
  return Option.match(senderOf(payload), {
    onNone: () => ({ events, replies: [], unattributed: 1 }),
    onSome: (from) => ({ events, replies: [{ from, at, ...(text === undefined ? {} : { text }) }], unattributed: 0 })
  })
}

const parsePayload = (event: string | undefined, payload: Payload, now: DateTime.Utc): Parsed => {
  const name = event ?? payload.event
  const message = payload.message
  if (name === undefined || message === undefined || message === null) return empty
  if (name === "whatsapp.message.received") return received(payload, message, now)
  return Option.match(statusEvent(name, message, now), {
    onNone: () => empty,
    onSome: (status) => ({ events: [status], replies: [], unattributed: 0 })
  })
}

/**
 * Parses one delivery's raw body. `event` is the `X-Webhook-Event` header (when absent, the body's `event`); `now`
 * stands in for a status time the payload does not carry.
 */
export const parse = (input: {
  readonly event?: string | undefined
  readonly body: string
  readonly now: DateTime.Utc
}): Result.Result<Parsed, WebhookError> =>
  Result.match(decodeDelivery(input.body), {
    onFailure: (error) =>
      Result.fail(new WebhookError({ reason: "Malformed", message: `not a Kapso webhook payload: ${error.message}` })),
    onSuccess: (delivery) => {
      const [event, payloads] = "batch" in delivery
        ? [input.event, delivery.data]
        : "data" in delivery
        ? [input.event ?? delivery.event, [delivery.data]]
        : [input.event, [delivery]]
      const parts = payloads.map((payload) => parsePayload(event, payload, input.now))
      return Result.succeed({
        events: parts.flatMap((part) => part.events),
        replies: parts.flatMap((part) => part.replies),
        unattributed: parts.reduce((sum, part) => sum + part.unattributed, 0)
      })
    }
  })

/** Verifies then parses one delivery. Header names are matched case-insensitively. */
export const read = (input: {
  readonly secret: Redacted.Redacted<string>
  readonly headers: Readonly<Record<string, string | undefined>>
  readonly body: string
  readonly now: DateTime.Utc
}): Result.Result<Parsed, WebhookError> => {
  const header = (name: string) =>
    Object.entries(input.headers).find(([key]) => key.toLowerCase() === name)?.[1] ?? undefined
  return Result.flatMap(
    verify(input.secret, input.body, header(signatureHeader)),
    () => parse({ event: header(eventHeader), body: input.body, now: input.now })
  )
}

/** Verifies and parses a delivery, then applies it: status events to the store, replies to their broadcasts. */
export const intake = Effect.fn("KapsoWebhook.intake")(function*(input: {
  readonly secret: Redacted.Redacted<string>
  readonly headers: Readonly<Record<string, string | undefined>>
  readonly body: string
}) {
  const broadcaster = yield* Broadcaster
  const parsed = yield* Effect.fromResult(read({ ...input, now: yield* DateTime.now }))
  const applied = yield* broadcaster.applyStatusEvents(parsed.events)
  const replies = yield* Effect.forEach(parsed.replies, (reply) => broadcaster.recordReply(reply))
  return { applied, replies, unattributed: parsed.unattributed }
})
