/**
 * The WhatsApp Cloud API as a `BroadcastTransport`: one request per recipient to
 * `POST /{phone_number_id}/marketing_messages` (the default, for marketing templates) or `/messages`, against Meta's
 * Graph API (`Authorization: Bearer`) or Kapso's Meta proxy (`X-API-Key`). The same code serves both; only the base
 * URL and the credential header differ.
 *
 * - Pacing: each phone number's sends are spaced at `messagesPerSecond` (default 70: Meta's 80 per second counts
 *   inbound messages too), making up slots missed by a short stall (`catchUp`). A throughput answer (130429) halves
 *   that number's rate, which climbs back over `recovery`; the engine also holds the sender and retries the message.
 *   The pacing is per process: workers sharing a number share the engine's `messagesPerSecond` policy instead.
 * - Answers are classified by `TransportError.fromMetaError` (by code, never by HTTP status; a body without a Meta
 *   error falls back to the status). What the engine then does follows the reason: a retryable reason (130429, 4,
 *   80007, 131056, 131000, 5xx, 134101, timeouts) fails the call and is retried; a reason about this recipient
 *   (131026, 131049, 131050, …) comes back as a `Rejected` outcome; a reason about the template, the account or
 *   the token (132001, 132015, 131048, 190, …) fails the call and pauses the broadcast.
 * - Parameters: every row was validated against the broadcast's spec, so when Meta still refuses the structure
 *   (132000 count, 132012 format, 131008 missing) the spec does not match the template and every row would fail
 *   alike: that pauses the broadcast. A refused value (132005, 131009, 100) fails its recipient only.
 * - An accepted message is not sent: statuses arrive by webhook (`MetaWebhook`), correlated by
 *   `biz_opaque_callback_data` (our recipient id). `held_for_quality_assessment` is accepted and `held`.
 * - Nothing is recalled on `cancel`: the engine stops handing messages over, and what Meta accepted goes out.
 *
 * The phone number is the broadcast's `sender`, or `phoneNumberId` when the sender is empty.
 */
import * as Address from "@crier/core/Address"
import type * as Broadcast from "@crier/core/Broadcast"
import {
  type BatchReceipt,
  BroadcastTransport,
  type Capabilities,
  type ItemOutcome,
  type Outgoing
} from "@crier/core/BroadcastTransport"
import * as TemplateParams from "@crier/core/TemplateParams"
import * as TransportError from "@crier/core/TransportError"
import { Config, ConfigProvider, DateTime, Duration, Effect, Layer, Option, Redacted, Result, Schema } from "effect"
import { HttpClient, HttpClientRequest, type HttpClientResponse } from "effect/http"
import * as Throughput from "./internal/throughput.ts"
import * as TemplateMessage from "./TemplateMessage.ts"

export const graphBaseUrl = "https://graph.facebook.com/v24.0"
export const kapsoBaseUrl = "https://api.kapso.ai/meta/whatsapp/v24.0"

export type Credential =
  | { readonly _tag: "AccessToken"; readonly token: Redacted.Redacted<string> }
  | { readonly _tag: "KapsoApiKey"; readonly apiKey: Redacted.Redacted<string> }

/** Meta's Graph API, with a system user or business access token. */
export const accessToken = (token: Redacted.Redacted<string>): Credential => ({ _tag: "AccessToken", token })

/** Kapso's Meta proxy, with a Kapso project API key. */
export const kapsoApiKey = (apiKey: Redacted.Redacted<string>): Credential => ({ _tag: "KapsoApiKey", apiKey })

export const Endpoint = Schema.Literals(["marketing_messages", "messages"])
export type Endpoint = typeof Endpoint.Type

/** Meta's throughput per phone number, messages per second, inbound included. */
export const throughputLimits = { shared: 20, standard: 80, upgraded: 1000 } as const

/** The share of a number's throughput left for inbound messages. */
export const inboundHeadroom = 0.125

/** A send rate that leaves room for inbound messages under a throughput limit: 17, 70 and 875 for Meta's three. */
export const messagesPerSecondFor = (limit: number): number => Math.floor(limit * (1 - inboundHeadroom))

export const defaultMessagesPerSecond = messagesPerSecondFor(throughputLimits.standard)

export interface Options {
  readonly credential: Credential
  /** Default: `graphBaseUrl` for an access token, `kapsoBaseUrl` for a Kapso API key. */
  readonly baseUrl?: string | undefined
  /** The sending number when a broadcast's `sender` is empty. */
  readonly phoneNumberId?: string | undefined
  /** Default `marketing_messages`. */
  readonly endpoint?: Endpoint | undefined
  /** Per phone number. Default `defaultMessagesPerSecond`. */
  readonly messagesPerSecond?: number | undefined
  /** After a throughput answer, the time to climb back from half the rate to all of it. Default 30 s. */
  readonly recovery?: Duration.Input | undefined
  /**
   * Send slots missed by at most this much (the process was busy, the engine between batches) are made up at once,
   * so a short stall does not lower the rate; a second then sees up to `messagesPerSecond × (1 + catchUp)` sends,
   * which the default rate's headroom absorbs. Default 100 ms; zero spaces sends strictly.
   */
  readonly catchUp?: Duration.Input | undefined
  /** Marketing Messages API only. */
  readonly productPolicy?: TemplateMessage.ProductPolicy | undefined
  /** One request's limit; past it the message is in doubt (`Timeout`). Default 20 s. */
  readonly timeout?: Duration.Input | undefined
  /** The transport's name. Default "meta". */
  readonly name?: string | undefined
}

export const capabilities: Capabilities = {
  maxBatchSize: 1,
  remoteCampaign: false,
  startsOnSubmit: true,
  tracking: "webhook",
  providerDedupe: false,
  providerPaced: false,
  requestBudgets: []
}

// ---------------------------------------------------------------------------------------------------------------
// Meta's answers

export const SendResponse = Schema.Struct({
  messaging_product: Schema.optionalKey(Schema.String),
  contacts: Schema.optionalKey(Schema.Array(Schema.Struct({
    input: Schema.optionalKey(Schema.String),
    wa_id: Schema.optionalKey(Schema.String),
    user_id: Schema.optionalKey(Schema.String)
  }))),
  messages: Schema.NonEmptyArray(Schema.Struct({
    id: Schema.String,
    message_status: Schema.optionalKey(Schema.String)
  }))
})
export type SendResponse = typeof SendResponse.Type

export const GraphError = Schema.Struct({
  error: Schema.Struct({
    message: Schema.optionalKey(Schema.String),
    type: Schema.optionalKey(Schema.String),
    code: Schema.Number,
    error_subcode: Schema.optionalKey(Schema.Number),
    error_data: Schema.optionalKey(Schema.Struct({ details: Schema.optionalKey(Schema.String) })),
    fbtrace_id: Schema.optionalKey(Schema.String)
  })
})
export type GraphError = typeof GraphError.Type

export const heldStatus = "held_for_quality_assessment"

const decodeSendResponse = Schema.decodeUnknownResult(Schema.fromJsonString(SendResponse))
const decodeGraphError = Schema.decodeUnknownResult(Schema.fromJsonString(GraphError))

// Codes whose refusal is about the template's structure, which every row shares (see the module comment).
const structuralCodes: ReadonlySet<number> = new Set([132000, 132012, 131008])
// Graph API code 100 subcode 33: the phone number id does not exist or the token cannot see it.
const unknownObject = (code: number, subcode: number | undefined) => code === 100 && subcode === 33

// ---------------------------------------------------------------------------------------------------------------
// The transport

export const make = Effect.fn("MetaCloud.make")(function*(options: Options) {
  const client = yield* HttpClient.HttpClient
  const name = options.name ?? "meta"
  const endpoint = options.endpoint ?? "marketing_messages"
  const credential = options.credential
  const base = (options.baseUrl ?? (credential._tag === "AccessToken" ? graphBaseUrl : kapsoBaseUrl)).replace(
    /\/+$/,
    ""
  )
  const messagesPerSecond = options.messagesPerSecond ?? defaultMessagesPerSecond
  if (!(messagesPerSecond > 0 && Number.isFinite(messagesPerSecond))) {
    return yield* Effect.die(`MetaCloud: messagesPerSecond must be a positive number, got ${messagesPerSecond}`)
  }
  const recoveryMillis = Duration.toMillis(options.recovery ?? Duration.seconds(30))
  const catchUpMillis = Duration.toMillis(options.catchUp ?? Duration.millis(100))
  const timeout = Duration.fromInputUnsafe(options.timeout ?? Duration.seconds(20))
  const numbers = new Map<string, Throughput.Throughput>()

  const throughputOf = (phoneNumberId: string): Throughput.Throughput => {
    const found = numbers.get(phoneNumberId)
    if (found !== undefined) return found
    const made = Throughput.make({
      messagesPerSecond,
      recoveryMillis,
      catchUpMillis,
      floor: Math.min(1, messagesPerSecond)
    })
    numbers.set(phoneNumberId, made)
    return made
  }

  const rejected = (error: TransportError.TransportError): BatchReceipt => ({
    outcomes: [{ _tag: "Rejected", error }]
  })

  const fail = (reason: TransportError.Reason) =>
    new TransportError.TransportError({ provider: name, operation: "submit", reason })

  const authorize = credential._tag === "AccessToken"
    ? HttpClientRequest.bearerToken(credential.token)
    : HttpClientRequest.setHeader("x-api-key", Redacted.value(credential.apiKey))

  const senderOf = (broadcast: Broadcast.Broadcast): string | undefined =>
    broadcast.sender.trim() !== "" ? broadcast.sender.trim() : options.phoneNumberId

  /** The message for one recipient, or why the recipient is refused before any request. */
  const prepare = (
    broadcast: Broadcast.Broadcast,
    item: Outgoing
  ): Result.Result<TemplateMessage.TemplateMessage, TransportError.TransportError> => {
    const address = Address.parse(item.address)
    if (Result.isFailure(address) || address.success !== item.address) {
      return Result.fail(fail(new TransportError.RecipientRejected({ message: "invalid phone number or BSUID" })))
    }
    return Result.mapBoth(TemplateParams.validate(broadcast.template, item.params), {
      onFailure: (issues) =>
        fail(
          new TransportError.TemplateParamsMismatch({
            message: issues.map((issue) => `${issue.field}: ${issue.reason}`).join("; "),
            perRecipient: true
          })
        ),
      onSuccess: (params) =>
        TemplateMessage.make({
          template: broadcast.template,
          params,
          address: item.address,
          callbackData: item.recipientId,
          productPolicy: endpoint === "marketing_messages" ? options.productPolicy : undefined
        })
    })
  }

  const read = (response: HttpClientResponse.HttpClientResponse) =>
    Effect.gen(function*() {
      const text = yield* response.text
      if (response.status >= 200 && response.status < 300) {
        const decoded = decodeSendResponse(text)
        if (Result.isSuccess(decoded)) {
          const message = decoded.success.messages[0]
          return {
            _tag: "Accepted",
            providerMessageId: Option.some(message.id),
            held: message.message_status === heldStatus
          } satisfies ItemOutcome
        }
        // A 2xx means Meta took the message: sending it again would duplicate it. Webhooks still find the row.
        yield* Effect.logWarning(`${name}: accepted, but the answer is not a Cloud API send response`)
        return { _tag: "Accepted", providerMessageId: Option.none(), held: false } satisfies ItemOutcome
      }
      const graph = decodeGraphError(text)
      const retryAfterHeader = response.headers["retry-after"]
      if (Result.isFailure(graph)) {
        return yield* TransportError.fromHttpStatus({
          status: response.status,
          retryAfterHeader,
          now: yield* DateTime.now,
          provider: name,
          operation: "submit"
        })
      }
      const { code, error_data, error_subcode, message } = graph.success.error
      const retryAfter = retryAfterHeader === undefined
        ? Option.none()
        : TransportError.parseRetryAfter(retryAfterHeader, yield* DateTime.now)
      return yield* TransportError.fromMetaError({
        code,
        subcode: error_subcode,
        httpStatus: response.status,
        message,
        details: error_data?.details,
        provider: name,
        operation: "submit",
        retryAfter: Option.getOrUndefined(retryAfter),
        perRecipient: !structuralCodes.has(code) && !unknownObject(code, error_subcode)
      })
    })

  const send = (phoneNumberId: string, message: TemplateMessage.TemplateMessage) =>
    HttpClientRequest.post(`${base}/${encodeURIComponent(phoneNumberId)}/${endpoint}`).pipe(
      authorize,
      HttpClientRequest.acceptJson,
      HttpClientRequest.bodyJsonUnsafe(message),
      client.execute,
      Effect.flatMap(read),
      // The error names the request (never its headers) and whether it may have reached Meta.
      Effect.catchTag("HttpClientError", (error) => Effect.fail(fail(TransportError.fromHttpClientError(error)))),
      Effect.timeoutOrElse({
        duration: timeout,
        orElse: () =>
          Effect.fail(fail(new TransportError.Timeout({ message: `no answer within ${Duration.format(timeout)}` })))
      })
    )

  const submit = Effect.fn("MetaCloud.submit")(
    function*(
      broadcast: Broadcast.Broadcast,
      batch: readonly [Outgoing, ...Array<Outgoing>]
    ): Effect.fn.Return<BatchReceipt, TransportError.TransportError> {
      if (batch.length > capabilities.maxBatchSize) {
        return yield* fail(
          new TransportError.InvalidRequest({
            message: `${batch.length} recipients in one call; the Cloud API takes one message per request`
          })
        )
      }
      const phoneNumberId = senderOf(broadcast)
      if (phoneNumberId === undefined) {
        return yield* fail(
          new TransportError.InvalidRequest({
            message: "no phone_number_id: set the broadcast's sender or the transport's phoneNumberId"
          })
        )
      }
      const prepared = prepare(broadcast, batch[0])
      if (Result.isFailure(prepared)) return rejected(prepared.failure)
      const throughput = throughputOf(phoneNumberId)
      yield* throughput.acquire
      const answer = yield* Effect.result(send(phoneNumberId, prepared.success))
      if (Result.isSuccess(answer)) return { outcomes: [answer.success] } satisfies BatchReceipt
      const error = answer.failure
      if (error.reason._tag === "RateLimited" && error.reason.limit === "sender") yield* throughput.slowDown
      if (error.isRetryable || error.scope !== "message") return yield* error
      return rejected(error)
    }
  )

  return BroadcastTransport.of({
    name,
    capabilities,
    unsupported: () => Option.none(),
    open: () => Effect.succeed(Option.none()),
    submit,
    start: () => Effect.void,
    poll: () => Effect.succeed({ events: [], cursor: Option.none(), done: true }),
    cancel: () => Effect.void
  })
})

export const layer = (options: Options): Layer.Layer<BroadcastTransport, never, HttpClient.HttpClient> =>
  Layer.effect(BroadcastTransport, make(options))

const PositiveRate = Schema.Finite.check(Schema.isGreaterThan(0))

/**
 * Options from the environment: `META_ACCESS_TOKEN` (Meta's Graph API) or `KAPSO_API_KEY` (Kapso's proxy) — one of
 * the two, so a token is never sent to the other party's host — and optionally `META_BASE_URL`,
 * `META_PHONE_NUMBER_ID`, `META_ENDPOINT` (`marketing_messages` | `messages`), `META_MESSAGES_PER_SECOND`.
 */
export const config: Config.Config<Options> = Config.all({
  token: Config.option(Config.Redacted("META_ACCESS_TOKEN")),
  apiKey: Config.option(Config.Redacted("KAPSO_API_KEY")),
  baseUrl: Config.option(Config.String("META_BASE_URL")),
  phoneNumberId: Config.option(Config.String("META_PHONE_NUMBER_ID")),
  endpoint: Config.schema(Endpoint, "META_ENDPOINT").pipe(Config.withDefault<Endpoint>("marketing_messages")),
  messagesPerSecond: Config.option(Config.schema(PositiveRate, "META_MESSAGES_PER_SECOND"))
}).pipe(
  Config.flatMap((read): Config.Config<Options> => {
    const credential = Option.isSome(read.token)
      ? Option.isSome(read.apiKey) ? undefined : accessToken(read.token.value)
      : Option.isSome(read.apiKey)
      ? kapsoApiKey(read.apiKey.value)
      : undefined
    if (credential === undefined) {
      return Config.fail(
        new ConfigProvider.SourceError({ message: "set exactly one of META_ACCESS_TOKEN and KAPSO_API_KEY" })
      )
    }
    return Config.succeed({
      credential,
      endpoint: read.endpoint,
      baseUrl: Option.getOrUndefined(read.baseUrl),
      phoneNumberId: Option.getOrUndefined(read.phoneNumberId),
      messagesPerSecond: Option.getOrUndefined(read.messagesPerSecond)
    })
  })
)

export const layerConfig: Layer.Layer<BroadcastTransport, Config.ConfigError, HttpClient.HttpClient> = Layer.unwrap(
  Effect.map(config, layer)
)
