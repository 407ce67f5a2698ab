/**
 * Keebai's signed webhooks: verified, decoded into the engine's `StatusEvent`s and replies, deduplicated on the
 * event `id` (stable across Keebai's retries), and handed to the engine.
 *
 * Envelope: `{ id, type, occurred_at, company_id, channel_id, data: { message_id, recipient_id, … } }` with types
 * `whatsapp.message.sent | delivered | read | failed | received`; other types are acknowledged and ignored.
 *
 * Signature: `x-keebai-signature: sha256=<hex HMAC-SHA256 of the raw body>`, keyed with the `whsec_` secret as
 * given, compared in constant time. Keebai's docs name the algorithm and the secret but not the header; this is the
 * reading the testkit's emulator shares, kept in one constant.
 *
 * Which row an event is about: Keebai's answer to a call names only its remote broadcast, so the store never learns
 * a per-message id from `submit`, and `data.recipient_id` is Keebai's own id for the recipient. Each recipient is
 * sent with our recipient id in `meta_data` (`KeebaiBulk.metaDataKey`); an event that echoes it names its row
 * directly (`ById`, carrying `message_id`, which the store then records). An event without it falls back to
 * `message_id` (`ByProviderMessageId`), which finds the row once an earlier event echoed `meta_data` for that message,
 * and otherwise counts as unknown in the store's answer. A reply (`received`) names its sender in `data.from`: the
 * engine attributes it to the latest broadcast that address got.
 */
import * as Address from "@crier/core/Address"
import * as Broadcaster from "@crier/core/Broadcaster"
import type * as ProgressStore from "@crier/core/ProgressStore"
import * as Recipient from "@crier/core/Recipient"
import * as RecipientStatus from "@crier/core/RecipientStatus"
import * as StatusEvent from "@crier/core/StatusEvent"
import { Deferred, Effect, Exit, Option, Queue, Redacted, Result, Schema } from "effect"
import { HttpServerRequest, HttpServerResponse } from "effect/http"
import { createHmac, timingSafeEqual } from "node:crypto"
import * as KeebaiBulk from "./KeebaiBulk.ts"

export const signatureHeader = "x-keebai-signature"

export class WebhookError extends Schema.TaggedError<WebhookError>()("KeebaiWebhookError", {
  reason: Schema.Literals(["BadSignature", "Malformed"]),
  message: Schema.String
}) {}

const hmac = (secret: Redacted.Redacted<string>, rawBody: string): Buffer =>
  createHmac("sha256", Redacted.value(secret)).update(rawBody, "utf8").digest()

/** The signature header's value for a body, as Keebai sends it. */
export const sign = (secret: Redacted.Redacted<string>, rawBody: string): string =>
  `sha256=${hmac(secret, rawBody).toString("hex")}`

const HEX_SHA256 = /^(?:sha256=)?([0-9a-f]{64})$/i

/** Checks the signature header against the raw body, in constant time. */
export const verify = (
  secret: Redacted.Redacted<string>,
  rawBody: string,
  signature: string | undefined
): Result.Result<void, WebhookError> => {
  const hex = HEX_SHA256.exec(signature?.trim() ?? "")?.[1]
  if (hex === undefined) {
    return Result.fail(
      new WebhookError({ reason: "BadSignature", message: `missing or malformed ${signatureHeader} header` })
    )
  }
  // Both sides are 32 bytes here, as timingSafeEqual requires.
  return timingSafeEqual(Buffer.from(hex, "hex"), hmac(secret, rawBody))
    ? Result.void
    : Result.fail(new WebhookError({ reason: "BadSignature", message: "the signature does not match the body" }))
}

const Text = Schema.Union([Schema.String, Schema.Struct({ body: Schema.String })])

const Data = Schema.Struct({
  message_id: Schema.optionalKey(Schema.NullOr(Schema.String)),
  recipient_id: Schema.optionalKey(Schema.NullOr(Schema.String)),
  meta_data: Schema.optionalKey(Schema.NullOr(Schema.Record(Schema.String, Schema.Unknown))),
  error: Schema.optionalKey(Schema.NullOr(Schema.Struct({
    code: Schema.optionalKey(Schema.Union([Schema.String, Schema.Number])),
    message: Schema.optionalKey(Schema.String),
    title: Schema.optionalKey(Schema.String)
  }))),
  from: Schema.optionalKey(Schema.String),
  text: Schema.optionalKey(Text)
})

const Envelope = Schema.Struct({
  id: Schema.NonEmptyString,
  type: Schema.String,
  occurred_at: Schema.DateTimeUtcFromString,
  data: Data
})
type Envelope = typeof Envelope.Type

const decodeEnvelope = Schema.decodeUnknownResult(Schema.fromJsonString(Envelope))

export type Event =
  | { readonly _tag: "Status"; readonly id: string; readonly event: StatusEvent.StatusEvent }
  | { readonly _tag: "Reply"; readonly id: string; readonly reply: Broadcaster.Reply }
  | { readonly _tag: "Ignored"; readonly id: string; readonly type: string }

const prefix = "whatsapp.message."

const malformed = (message: string) => new WebhookError({ reason: "Malformed", message })

const statusOf = (type: string, data: Envelope["data"]): RecipientStatus.RecipientStatus | undefined => {
  switch (type) {
    case "sent":
      return RecipientStatus.sent
    case "delivered":
      return RecipientStatus.delivered
    case "read":
      return RecipientStatus.read
    case "failed": {
      const error = data.error ?? undefined
      const reason = error?.message ?? error?.title ?? "Keebai reported the message failed"
      return RecipientStatus.failed(reason, error?.code === undefined ? undefined : String(error.code))
    }
    default:
      return undefined
  }
}

const refOf = (envelope: Envelope): Result.Result<StatusEvent.RecipientRef, WebhookError> => {
  const echoed = envelope.data.meta_data?.[KeebaiBulk.metaDataKey]
  const ours = typeof echoed === "string" ? Recipient.parseRecipientId(echoed) : Option.none()
  if (Option.isSome(ours)) return Result.succeed({ _tag: "ById", ...ours.value })
  const messageId = envelope.data.message_id
  return messageId === undefined || messageId === null || messageId === ""
    ? Result.fail(malformed(`event ${envelope.id} names no recipient: neither meta_data nor message_id`))
    : Result.succeed({ _tag: "ByProviderMessageId", providerMessageId: messageId })
}

const replyOf = (envelope: Envelope): Result.Result<Event, WebhookError> => {
  const { from, text } = envelope.data
  // Keebai may give the sender without its plus, as WhatsApp ids are.
  const parsed = Address.parse(from !== undefined && /^\d+$/.test(from) ? `+${from}` : from ?? "")
  if (Result.isFailure(parsed)) {
    return Result.fail(malformed(`reply ${envelope.id} has no readable sender: ${parsed.failure.message}`))
  }
  const body = text === undefined ? undefined : typeof text === "string" ? text : text.body
  return Result.succeed({
    _tag: "Reply",
    id: envelope.id,
    reply: { from: parsed.success, at: envelope.occurred_at, ...(body === undefined ? {} : { text: body }) }
  })
}

/** Decodes one (verified) body into what it means for the engine. */
export const decode = (rawBody: string): Result.Result<Event, WebhookError> => {
  const decoded = decodeEnvelope(rawBody)
  if (Result.isFailure(decoded)) return Result.fail(malformed(decoded.failure.message))
  const envelope = decoded.success
  const type = envelope.type.startsWith(prefix) ? envelope.type.slice(prefix.length) : envelope.type
  if (type === "received") return replyOf(envelope)
  const status = statusOf(type, envelope.data)
  if (status === undefined) return Result.succeed({ _tag: "Ignored", id: envelope.id, type: envelope.type })
  return Result.map(refOf(envelope), (ref): Event => {
    const messageId = envelope.data.message_id
    return {
      _tag: "Status",
      id: envelope.id,
      event: new StatusEvent.StatusEvent({
        ref,
        status,
        at: envelope.occurred_at,
        ...(messageId === undefined || messageId === null || messageId === "" ? {} : { providerMessageId: messageId })
      })
    }
  })
}

export type Received = Event | { readonly _tag: "Duplicate"; readonly id: string }

export interface Intake {
  /**
   * Verifies, decodes and dedupes one delivery, and hands a new event to `apply`. An event counts as seen once
   * `apply` succeeded, or while it runs (a concurrent copy is a duplicate); if `apply` fails, a retry is taken.
   */
  readonly receive: <E, R>(
    rawBody: string,
    signature: string | undefined,
    apply: (event: Event) => Effect.Effect<void, E, R>
  ) => Effect.Effect<Received, WebhookError | E, R>
}

export interface IntakeOptions {
  readonly secret: Redacted.Redacted<string>
  /** Event ids remembered for dedupe, the oldest forgotten first. Default 100,000. */
  readonly remember?: number | undefined
}

/** An intake with its own memory of event ids (in this process). */
export const makeIntake = Effect.fn("KeebaiWebhook.makeIntake")(function*(options: IntakeOptions) {
  const capacity = Math.max(1, options.remember ?? 100_000)
  const seen = new Set<string>()
  const remember = (id: string) => {
    seen.add(id)
    // A Set iterates in insertion order: the first is the oldest.
    if (seen.size > capacity) seen.delete(seen.values().next().value!)
  }
  const receive = <E, R>(
    rawBody: string,
    signature: string | undefined,
    apply: (event: Event) => Effect.Effect<void, E, R>
  ): Effect.Effect<Received, WebhookError | E, R> =>
    Effect.gen(function*() {
      yield* Effect.fromResult(verify(options.secret, rawBody, signature))
      const event = yield* Effect.fromResult(decode(rawBody))
      if (seen.has(event.id)) return { _tag: "Duplicate", id: event.id } as const
      remember(event.id)
      yield* apply(event).pipe(Effect.onError(() => Effect.sync(() => seen.delete(event.id))))
      return event
    })
  return { receive } satisfies Intake
})

/** Applies an event to the engine: statuses to their rows, a reply to the latest row of its sender. */
export const toEngine = Effect.fn("KeebaiWebhook.toEngine")(function*(event: Event) {
  const engine = yield* Broadcaster.Broadcaster
  if (event._tag === "Status") yield* engine.applyStatusEvents([event.event])
  if (event._tag === "Reply") yield* engine.recordReply(event.reply)
})

/**
 * Like `toEngine`, with group commit: the status events of webhooks that arrive together go to the store in one
 * `applyStatusEvents` (one transaction, one fsync on a durable store), at most `maxBatch` at a time, and each webhook
 * is answered once the write holding its event committed (a failed write fails every webhook in it, which Keebai
 * then retries). Replies are recorded one by one. The writer lives in the scope.
 */
export const toEngineBatched = Effect.fn("KeebaiWebhook.toEngineBatched")(
  function*(options?: { readonly maxBatch?: number | undefined }) {
    const engine = yield* Broadcaster.Broadcaster
    const maxBatch = Math.max(1, options?.maxBatch ?? 500)
    const pending = yield* Queue.unbounded<{
      readonly event: StatusEvent.StatusEvent
      readonly written: Deferred.Deferred<void, ProgressStore.StoreError>
    }>()
    const write = Effect.gen(function*() {
      const batch = yield* Queue.takeBetween(pending, 1, maxBatch)
      const exit = yield* Effect.exit(engine.applyStatusEvents(batch.map((item) => item.event)))
      for (const item of batch) Deferred.doneUnsafe(item.written, Exit.asVoid(exit))
    })
    yield* Effect.forkScoped(Effect.forever(write))
    return (event: Event): Effect.Effect<void, ProgressStore.StoreError | ProgressStore.BroadcastNotFound> =>
      event._tag === "Status"
        ? Effect.gen(function*() {
          const written = yield* Deferred.make<void, ProgressStore.StoreError>()
          yield* Queue.offer(pending, { event: event.event, written })
          yield* Deferred.await(written)
        })
        : event._tag === "Reply"
        ? Effect.asVoid(engine.recordReply(event.reply))
        : Effect.void
  }
)

/**
 * The webhook endpoint: 200 for an event taken (or a duplicate), 401 for a bad signature, 400 for a body that is not
 * a Keebai event, 500 when applying failed, so Keebai retries it.
 */
export const handler = <E, R>(
  intake: Intake,
  apply: (event: Event) => Effect.Effect<void, E, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpServerRequest.HttpServerRequest | R> =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const rawBody = yield* request.text
    const received = yield* intake.receive(rawBody, request.headers[signatureHeader], apply)
    return HttpServerResponse.jsonUnsafe({ received: received._tag })
  }).pipe(
    Effect.catch((error) =>
      error instanceof WebhookError
        ? Effect.succeed(
          HttpServerResponse.jsonUnsafe({ error: error.message }, {
            status: error.reason === "BadSignature" ? 401 : 400
          })
        )
        : Effect.as(
          Effect.logWarning("Keebai webhook not applied; Keebai will retry it", error),
          HttpServerResponse.jsonUnsafe({ error: "not applied" }, { status: 500 })
        )
    )
  )
