/**
 * Meta's webhooks into the engine: status updates of the messages `MetaCloud` sent, and inbound messages (replies).
 *
 * - `POST`: the `X-Hub-Signature-256` header (`sha256=<hex HMAC-SHA256 of the raw body, keyed with the app
 *   secret>`) is checked over the exact bytes received, in constant time, before anything is read. Unsigned, badly
 *   signed and non-JSON bodies are refused with a 4xx and change nothing.
 * - `GET`: the subscription check (`hub.mode=subscribe`, `hub.verify_token`, `hub.challenge`) echoes the challenge
 *   when the verify token matches.
 * - `statuses[]` become `StatusEvent`s (sent, delivered, read, failed with Meta's code) named by
 *   `biz_opaque_callback_data` — our recipient id — or, without it, by the wamid; the store merges them forward
 *   only, so duplicates and any arrival order leave the same result.
 * - `messages[]` are replies: each marks the latest recipient row of its sender `replied` (`recordReply`), and the
 *   broadcast it answers comes back to the caller (the result of `receive`, and `onReply`) to route it.
 *
 * Statuses are written in shared batches: deliveries arriving within `batchWindow` of each other go to the store in
 * one write, and each is answered once that write is done. A store that syncs every commit to disk (SQLite with
 * `synchronous = FULL` takes milliseconds per commit, blocking the process) thus keeps up with hundreds of webhooks
 * a second — one Meta sends for every sent, delivered and read message.
 *
 * Replays: Meta signs no timestamp, so an old body re-sent is still authentic, and Meta itself redelivers for days.
 * Statuses of a replayed body change nothing (the store's merge); an inbound message id seen before (the last
 * `rememberedMessages`, in this process) is not recorded or routed again, so an agent does not answer twice.
 *
 * The intake is offered as an effect/http handler (`httpEffect`) and as a web-standard
 * `(Request) => Promise<Response>` (`handler`), for other frameworks.
 */
import * as Address from "@crier/core/Address"
import * as Broadcaster from "@crier/core/Broadcaster"
import type * as ProgressStore from "@crier/core/ProgressStore"
import * as Recipient from "@crier/core/Recipient"
import * as RecipientStatus from "@crier/core/RecipientStatus"
import * as RetryPolicy from "@crier/core/RetryPolicy"
import * as StatusEvent from "@crier/core/StatusEvent"
import * as TransportError from "@crier/core/TransportError"
import { Config, DateTime, Deferred, Duration, Effect, Option, Queue, Redacted, Result, Schema } from "effect"
import { HttpEffect, HttpServerRequest, HttpServerResponse } from "effect/http"
import { createHash, createHmac, timingSafeEqual } from "node:crypto"

export class WebhookRejected extends Schema.TaggedError<WebhookRejected>()("WebhookRejected", {
  reason: Schema.Literals(["MissingSignature", "BadSignature", "NotJson", "BadPayload"]),
  message: Schema.String
}) {}

// ---------------------------------------------------------------------------------------------------------------
// Payload

/** Unix seconds, as a string (what Meta sends) or a number. */
const Timestamp = Schema.Union([Schema.FiniteFromString, Schema.Finite])

export const StatusError = Schema.Struct({
  code: Schema.Number,
  title: Schema.optionalKey(Schema.String),
  message: Schema.optionalKey(Schema.String),
  error_data: Schema.optionalKey(Schema.Struct({ details: Schema.optionalKey(Schema.String) }))
})

export const Status = Schema.Struct({
  id: Schema.String,
  status: Schema.String,
  timestamp: Timestamp,
  recipient_id: Schema.optionalKey(Schema.String),
  recipient_user_id: Schema.optionalKey(Schema.String),
  biz_opaque_callback_data: Schema.optionalKey(Schema.String),
  errors: Schema.optionalKey(Schema.Array(StatusError))
})
export type Status = typeof Status.Type

export const Message = Schema.Struct({
  id: Schema.String,
  /** The sender's WhatsApp id (digits, no "+"); absent for a sender known only by BSUID. */
  from: Schema.optionalKey(Schema.String),
  from_user_id: Schema.optionalKey(Schema.String),
  timestamp: Timestamp,
  type: Schema.String,
  text: Schema.optionalKey(Schema.Struct({ body: Schema.String })),
  button: Schema.optionalKey(Schema.Struct({ text: Schema.optionalKey(Schema.String) })),
  interactive: Schema.optionalKey(Schema.Struct({
    button_reply: Schema.optionalKey(Schema.Struct({ title: Schema.String })),
    list_reply: Schema.optionalKey(Schema.Struct({ title: Schema.String }))
  })),
  context: Schema.optionalKey(Schema.Struct({ id: Schema.optionalKey(Schema.String) }))
})
export type Message = typeof Message.Type

export const Value = Schema.Struct({
  metadata: Schema.optionalKey(Schema.Struct({ phone_number_id: Schema.String })),
  statuses: Schema.optionalKey(Schema.Array(Status)),
  messages: Schema.optionalKey(Schema.Array(Message))
})
export type Value = typeof Value.Type

export const Payload = Schema.Struct({
  object: Schema.String,
  entry: Schema.Array(Schema.Struct({
    changes: Schema.Array(Schema.Struct({ field: Schema.String, value: Schema.Unknown }))
  }))
})

const decodeJson = Schema.decodeUnknownResult(Schema.fromJsonString(Schema.Unknown))
const decodePayload = Schema.decodeUnknownResult(Payload)
const decodeValue = Schema.decodeUnknownResult(Value)

/** An inbound message, as crier reads it. */
export interface InboundMessage {
  /** Meta's id of the inbound message. */
  readonly id: string
  readonly from: Address.Address
  readonly at: DateTime.Utc
  readonly text: string | undefined
  /** The wamid of the message it answers, when the user replied to one. */
  readonly replyTo: string | undefined
  /** The business number that received it. */
  readonly phoneNumberId: string | undefined
}

export interface Notification {
  readonly events: ReadonlyArray<StatusEvent.StatusEvent>
  readonly messages: ReadonlyArray<InboundMessage>
  /** Entries crier does not track: other statuses (`deleted`, `warning`, …), senders it cannot read. */
  readonly ignored: number
}

const statuses: Readonly<Record<string, RecipientStatus.RecipientStatus>> = {
  sent: RecipientStatus.sent,
  delivered: RecipientStatus.delivered,
  read: RecipientStatus.read
}

const instant = (seconds: number): Option.Option<DateTime.Utc> => DateTime.make(seconds * 1000)

const failure = (status: Status, provider: string): RecipientStatus.RecipientStatus => {
  const error = status.errors?.[0]
  if (error === undefined) return RecipientStatus.failed("failed: Meta gave no error")
  const classified = TransportError.fromMetaError({
    code: error.code,
    message: error.message ?? error.title,
    details: error.error_data?.details,
    provider
  })
  return RecipientStatus.failed(RetryPolicy.describe(classified), String(error.code))
}

const eventOf = (status: Status, provider: string): Option.Option<StatusEvent.StatusEvent> => {
  const observed = status.status === "failed" ? failure(status, provider) : statuses[status.status]
  if (observed === undefined) return Option.none()
  return Option.map(instant(status.timestamp), (at) => {
    const ours = Recipient.parseRecipientId(status.biz_opaque_callback_data ?? "")
    const ref: StatusEvent.RecipientRef = Option.isSome(ours)
      ? { _tag: "ById", broadcastId: ours.value.broadcastId, seq: ours.value.seq }
      : { _tag: "ByProviderMessageId", providerMessageId: status.id }
    return new StatusEvent.StatusEvent({ ref, status: observed, at, providerMessageId: status.id })
  })
}

const readAddress = (input: string | undefined): Option.Option<Address.Address> =>
  input === undefined ? Option.none() : Result.getSuccess(Address.parse(input))

const senderOf = (message: Message): Option.Option<Address.Address> =>
  Option.orElse(
    readAddress(message.from === undefined ? undefined : `+${message.from}`),
    () => readAddress(message.from_user_id)
  )

const inboundOf = (message: Message, phoneNumberId: string | undefined): Option.Option<InboundMessage> =>
  Option.flatMap(senderOf(message), (from) =>
    Option.map(instant(message.timestamp), (at) => ({
      id: message.id,
      from,
      at,
      text: message.text?.body ?? message.button?.text ?? message.interactive?.button_reply?.title ??
        message.interactive?.list_reply?.title,
      replyTo: message.context?.id,
      phoneNumberId
    })))

/** Reads a webhook body (already verified). Fields other than `messages` are skipped. */
export const parse = (body: string, provider = "meta"): Result.Result<Notification, WebhookRejected> => {
  const json = decodeJson(body)
  if (Result.isFailure(json)) return Result.fail(new WebhookRejected({ reason: "NotJson", message: "not JSON" }))
  const payload = decodePayload(json.success)
  if (Result.isFailure(payload)) {
    return Result.fail(new WebhookRejected({ reason: "BadPayload", message: payload.failure.message }))
  }
  const events: Array<StatusEvent.StatusEvent> = []
  const messages: Array<InboundMessage> = []
  let ignored = 0
  for (const entry of payload.success.entry) {
    for (const change of entry.changes) {
      if (change.field !== "messages") continue
      const value = decodeValue(change.value)
      if (Result.isFailure(value)) {
        return Result.fail(new WebhookRejected({ reason: "BadPayload", message: value.failure.message }))
      }
      for (const status of value.success.statuses ?? []) {
        const event = eventOf(status, provider)
        if (Option.isSome(event)) events.push(event.value)
        else ignored++
      }
      for (const message of value.success.messages ?? []) {
        const inbound = inboundOf(message, value.success.metadata?.phone_number_id)
        if (Option.isSome(inbound)) messages.push(inbound.value)
        else ignored++
      }
    }
  }
  return Result.succeed({ events, messages, ignored })
}

// ---------------------------------------------------------------------------------------------------------------
// Signatures

const SIGNATURE = /^sha256=([0-9a-fA-F]{64})$/

const digest = (body: Uint8Array | string, secret: Redacted.Redacted<string>): Buffer =>
  createHmac("sha256", Redacted.value(secret)).update(body).digest()

/** The `X-Hub-Signature-256` value Meta sends with `body`. */
export const sign = (body: Uint8Array | string, appSecret: Redacted.Redacted<string>): string =>
  `sha256=${digest(body, appSecret).toString("hex")}`

/** Whether `header` signs exactly these bytes with the app secret; compared in constant time. */
export const verify = (
  body: Uint8Array,
  header: string | undefined,
  appSecret: Redacted.Redacted<string>
): Result.Result<void, WebhookRejected> => {
  if (header === undefined || header.trim() === "") {
    return Result.fail(new WebhookRejected({ reason: "MissingSignature", message: "no X-Hub-Signature-256 header" }))
  }
  const hex = SIGNATURE.exec(header.trim())?.[1]
  const matches = hex !== undefined && timingSafeEqual(Buffer.from(hex, "hex"), digest(body, appSecret))
  return matches
    ? Result.void
    : Result.fail(new WebhookRejected({ reason: "BadSignature", message: "X-Hub-Signature-256 does not match" }))
}

// Hashing both sides first gives equal lengths, so the comparison takes the same time whatever was sent.
const sameSecret = (given: string, expected: Redacted.Redacted<string>): boolean =>
  timingSafeEqual(
    createHash("sha256").update(given).digest(),
    createHash("sha256").update(Redacted.value(expected)).digest()
  )

/** The challenge to echo for Meta's subscription check, when it carries our verify token. */
export const challenge = (
  params: URLSearchParams,
  verifyToken: Redacted.Redacted<string>
): Option.Option<string> => {
  const answer = params.get("hub.challenge")
  const token = params.get("hub.verify_token")
  return params.get("hub.mode") === "subscribe" && answer !== null && token !== null && sameSecret(token, verifyToken)
    ? Option.some(answer)
    : Option.none()
}

// ---------------------------------------------------------------------------------------------------------------
// The intake

export interface RoutedReply {
  readonly message: InboundMessage
  /** The broadcast its sender last got; none when crier never sent to that address. */
  readonly context: Option.Option<Broadcaster.ReplyContext>
}

export interface Received {
  readonly statuses: ProgressStore.ApplyResult
  /** New inbound messages, recorded, with what they answer. */
  readonly replies: ReadonlyArray<RoutedReply>
  /** Inbound messages seen before (a redelivery or a replay): neither recorded nor routed again. */
  readonly repeated: number
  readonly ignored: number
}

export interface Options {
  readonly appSecret: Redacted.Redacted<string>
  readonly verifyToken: Redacted.Redacted<string>
  /** Called once for each new inbound message, after it is recorded. A defect in it is logged, not retried. */
  readonly onReply?: ((reply: RoutedReply) => Effect.Effect<void>) | undefined
  /** Inbound message ids remembered against redelivery. Default 10,000. */
  readonly rememberedMessages?: number | undefined
  /** The provider named in failure reasons. Default "meta". */
  readonly provider?: string | undefined
  /**
   * How long a status write waits for more deliveries to share it. Default 50 ms; zero shares only the deliveries
   * that arrived while the previous write was under way.
   */
  readonly batchWindow?: Duration.Input | undefined
}

/** `META_APP_SECRET` and `META_VERIFY_TOKEN`. */
export const config = Config.all({
  appSecret: Config.Redacted("META_APP_SECRET"),
  verifyToken: Config.Redacted("META_VERIFY_TOKEN")
})

export interface Intake {
  /**
   * A `POST`: its raw body and its `X-Hub-Signature-256` header. `statuses` counts the events of the write this
   * delivery shared with others that arrived with it.
   */
  readonly receive: (
    rawBody: Uint8Array,
    signature: string | undefined
  ) => Effect.Effect<Received, WebhookRejected | ProgressStore.StoreError | ProgressStore.BroadcastNotFound>
  /** The subscription check's answer for a `GET`'s query. */
  readonly challenge: (params: URLSearchParams) => Option.Option<string>
  /** GET and POST of one webhook URL, for an effect/http router. */
  readonly httpEffect: Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpServerRequest.HttpServerRequest>
  /** The same, as a web-standard handler. */
  readonly handler: (request: Request) => Promise<Response>
}

const statusOf = (error: WebhookRejected): number =>
  error.reason === "MissingSignature" || error.reason === "BadSignature" ? 401 : 400

/** The intake over the engine; its status writer runs, and its handlers answer, while the scope is open. */
export const make = Effect.fn("MetaWebhook.make")(function*(options: Options) {
  const broadcaster = yield* Broadcaster.Broadcaster
  const provider = options.provider ?? "meta"
  const remembered = options.rememberedMessages ?? 10_000
  const seen = new Set<string>()
  const window = Duration.toMillis(options.batchWindow ?? Duration.millis(50))
  const writes = yield* Queue.unbounded<{
    readonly events: ReadonlyArray<StatusEvent.StatusEvent>
    readonly done: Deferred.Deferred<ProgressStore.ApplyResult, ProgressStore.StoreError>
  }>()

  // One writer: it takes what is waiting, lets the window fill, and answers every delivery with the one write.
  yield* Effect.forkScoped(Effect.forever(Effect.gen(function*() {
    const first = yield* Queue.takeAll(writes)
    yield* window > 0 ? Effect.sleep(window) : Effect.yieldNow
    const batch = (yield* Queue.size(writes)) > 0 ? [...first, ...(yield* Queue.takeAll(writes))] : first
    const exit = yield* Effect.exit(broadcaster.applyStatusEvents(batch.flatMap((write) => write.events)))
    yield* Effect.forEach(batch, (write) => Deferred.done(write.done, exit), { discard: true })
  })))

  const applyShared = (events: ReadonlyArray<StatusEvent.StatusEvent>) =>
    Effect.gen(function*() {
      if (events.length === 0) return { applied: 0, unchanged: 0, unknown: 0 }
      const done = yield* Deferred.make<ProgressStore.ApplyResult, ProgressStore.StoreError>()
      yield* Queue.offer(writes, { events, done })
      return yield* Deferred.await(done)
    })

  const remember = (id: string): boolean => {
    if (seen.has(id)) return false
    seen.add(id)
    // A Set iterates in insertion order: the first one is the oldest.
    if (seen.size > remembered) seen.delete(seen.values().next().value!)
    return true
  }

  const route = (message: InboundMessage) =>
    broadcaster.recordReply({ from: message.from, at: message.at, text: message.text }).pipe(
      Effect.map((context): RoutedReply => ({ message, context })),
      // Not recorded: forget it, so Meta's redelivery records it.
      Effect.onError(() => Effect.sync(() => seen.delete(message.id))),
      Effect.tap((routed) =>
        options.onReply === undefined ? Effect.void : options.onReply(routed).pipe(
          Effect.catchCause((cause) => Effect.logError(`onReply failed for inbound message ${message.id}`, cause))
        )
      )
    )

  const receive = Effect.fn("MetaWebhook.receive")(function*(rawBody: Uint8Array, signature: string | undefined) {
    yield* Effect.fromResult(verify(rawBody, signature, options.appSecret))
    const notification = yield* Effect.fromResult(parse(new TextDecoder().decode(rawBody), provider))
    const applied = yield* applyShared(notification.events)
    const replies: Array<RoutedReply> = []
    let repeated = 0
    // One at a time, remembered just before it is recorded: a failure leaves the rest for Meta's redelivery.
    for (const message of notification.messages) {
      if (remember(message.id)) replies.push(yield* route(message))
      else repeated++
    }
    return { statuses: applied, replies, repeated, ignored: notification.ignored } satisfies Received
  })

  const check = (params: URLSearchParams) => challenge(params, options.verifyToken)

  const httpEffect = Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    if (request.method === "GET") {
      const url = URL.parse(request.url, "http://webhook.invalid")
      return Option.match(url === null ? Option.none() : check(url.searchParams), {
        onNone: () => HttpServerResponse.text("verify token mismatch", { status: 403 }),
        onSome: (answer) => HttpServerResponse.text(answer)
      })
    }
    if (request.method !== "POST") return HttpServerResponse.empty({ status: 405, headers: { allow: "GET, POST" } })
    const body = yield* Effect.result(request.arrayBuffer)
    if (Result.isFailure(body)) return HttpServerResponse.text("unreadable body", { status: 400 })
    const received = yield* Effect.result(receive(new Uint8Array(body.success), request.headers["x-hub-signature-256"]))
    if (Result.isSuccess(received)) {
      const { ignored, repeated, replies, statuses } = received.success
      return HttpServerResponse.jsonUnsafe({ statuses, replies: replies.length, repeated, ignored })
    }
    const error = received.failure
    if (error._tag === "WebhookRejected") return HttpServerResponse.text(error.message, { status: statusOf(error) })
    yield* Effect.logError("Meta webhook not recorded; Meta will redeliver it", error)
    // A 5xx makes Meta deliver it again later.
    return HttpServerResponse.text("not recorded", { status: 500 })
  })

  const context = yield* Effect.context<never>()

  return {
    receive,
    challenge: check,
    httpEffect,
    handler: HttpEffect.toWebHandlerWith<never, HttpServerRequest.HttpServerRequest>(context)(httpEffect)
  } satisfies Intake
})
