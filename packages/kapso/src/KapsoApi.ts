/**
 * Kapso's v1 REST API (`https://app.kapso.ai/api/v1`, header `X-API-Key`) as crier's Kapso transports use it: the
 * Broadcasts endpoints, the template list and `send_template`.
 *
 * Every answer is decoded with `Schema`, and every failure is one `TransportError` (provider "kapso"):
 *
 * | answer                                  | reason                                                               |
 * |-----------------------------------------|----------------------------------------------------------------------|
 * | 401                                     | `Unauthorized` (the API key)                                         |
 * | 404                                     | `InvalidRequest` (no such broadcast), `TemplateRejected` (template)  |
 * | 422                                     | by its documented message: see `refinements`                         |
 * | 429                                     | `RateLimited { limit: "credential" }`, with `Retry-After` when given |
 * | 5xx, other statuses                     | `TransportError.fromHttpStatus` (5xx retryable, 504 a `Timeout`)     |
 * | no answer within `timeout`              | `Timeout`                                                            |
 * | connection refused or reset             | `Network`                                                            |
 * | 2xx whose body is not JSON, or not the  | `InvalidRequest`: we cannot tell what Kapso did, so the broadcast    |
 * |   documented shape                      |   pauses for a human rather than guessing                            |
 *
 * The error's message carries Kapso's own `error` text, never the API key.
 */
import * as TemplateSpec from "@crier/core/TemplateSpec"
import * as TransportError from "@crier/core/TransportError"
import { Config, DateTime, Duration, Effect, Option, Redacted, Result, Schema } from "effect"
import { HttpClient, HttpClientError, HttpClientRequest } from "effect/http"

export const provider = "kapso"

export const defaultBaseUrl = "https://app.kapso.ai/api/v1"

/** Per request, body included. */
export const defaultTimeout = Duration.seconds(30)

export interface Options {
  readonly apiKey: Redacted.Redacted<string>
  /** Default `defaultBaseUrl`; a testkit emulator's `url` in tests. */
  readonly baseUrl?: string | undefined
  /** The WhatsApp config (sender) used when a broadcast names none. */
  readonly whatsappConfigId?: string | undefined
  /**
   * Kapso template ids by `"<name>:<language>"` or `"<name>"`. A template not listed is looked up by name and
   * language in Kapso's template list (once per transport).
   */
  readonly templateIds?: Readonly<Record<string, string>> | undefined
  /** Per request. Default 30 seconds. */
  readonly timeout?: Duration.Input | undefined
}

/** `KAPSO_API_KEY` (required), `KAPSO_BASE_URL`, `KAPSO_WHATSAPP_CONFIG_ID`. */
export const config: Config.Config<Options> = Config.all({
  apiKey: Config.Redacted("KAPSO_API_KEY"),
  baseUrl: Config.String("KAPSO_BASE_URL").pipe(Config.withDefault(defaultBaseUrl)),
  whatsappConfigId: Config.option(Config.String("KAPSO_WHATSAPP_CONFIG_ID"))
}).pipe(
  Config.map(({ apiKey, baseUrl, whatsappConfigId }): Options => ({
    apiKey,
    baseUrl,
    whatsappConfigId: Option.getOrUndefined(whatsappConfigId)
  }))
)

// ---------------------------------------------------------------------------------------------------------------
// Answers

const Count = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const Timestamp = Schema.optionalKey(Schema.NullOr(Schema.DateTimeUtcFromString))

/** `WhatsappBroadcast`. Statuses are kept as strings: a status Kapso adds later must not break polling. */
export const Broadcast = Schema.Struct({
  id: Schema.String,
  name: Schema.optionalKey(Schema.String),
  status: Schema.String,
  started_at: Timestamp,
  completed_at: Timestamp,
  total_recipients: Count,
  sent_count: Count,
  failed_count: Count,
  delivered_count: Count,
  read_count: Count,
  responded_count: Count,
  pending_count: Count
})
export type Broadcast = typeof Broadcast.Type

/** Broadcast statuses after which nothing is sent any more. */
export const finalStatuses: ReadonlySet<string> = new Set(["completed", "failed", "cancelled", "stopped"])

/** `WhatsappBroadcastRecipient`. `error_details.error_code` is a Meta code, as a string in the spec's example. */
export const BroadcastRecipient = Schema.Struct({
  id: Schema.String,
  phone_number: Schema.String,
  status: Schema.String,
  sent_at: Timestamp,
  delivered_at: Timestamp,
  read_at: Timestamp,
  responded_at: Timestamp,
  failed_at: Timestamp,
  error_message: Schema.optionalKey(Schema.NullOr(Schema.String)),
  error_details: Schema.optionalKey(Schema.NullOr(Schema.Struct({
    error_code: Schema.optionalKey(Schema.NullOr(Schema.Union([Schema.String, Schema.Number])))
  })))
})
export type BroadcastRecipient = typeof BroadcastRecipient.Type

export const PaginationMeta = Schema.Struct({
  page: Schema.Int,
  per_page: Schema.Int,
  total_pages: Count,
  total_count: Count
})

export const RecipientPage = Schema.Struct({
  data: Schema.Array(BroadcastRecipient),
  meta: PaginationMeta
})
export type RecipientPage = typeof RecipientPage.Type

/** `RecipientBatchResponse`. */
export const RecipientBatch = Schema.Struct({
  added: Count,
  duplicates: Count,
  errors: Schema.Array(Schema.String)
})
export type RecipientBatch = typeof RecipientBatch.Type

export const Template = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  language_code: Schema.String,
  status: Schema.optionalKey(Schema.String),
  whatsapp_config_ids: Schema.optionalKey(Schema.NullOr(Schema.Array(Schema.String)))
})
export type Template = typeof Template.Type

const TemplatePage = Schema.Struct({ data: Schema.Array(Template), meta: Schema.optionalKey(PaginationMeta) })

/** `send_template`'s answer; `response` is Meta's, carrying the message's wamid. */
export const SendTemplateResult = Schema.Struct({
  status: Schema.optionalKey(Schema.String),
  message: Schema.optionalKey(Schema.String),
  template_id: Schema.optionalKey(Schema.String),
  response: Schema.optionalKey(Schema.NullOr(Schema.Struct({
    messages: Schema.optionalKey(Schema.Array(Schema.Struct({ id: Schema.String })))
  })))
})
export type SendTemplateResult = typeof SendTemplateResult.Type

const Data = <S extends Schema.Constraint>(schema: S) => Schema.Struct({ data: schema })

const Started = Data(Schema.Struct({ status: Schema.optionalKey(Schema.String) }))

// An error body: `{ error }` on most endpoints, `{ status: "error", message }` from send_template's 500.
const ErrorBody = Schema.Struct({
  error: Schema.optionalKey(Schema.String),
  message: Schema.optionalKey(Schema.String)
})

// ---------------------------------------------------------------------------------------------------------------
// Requests

/** A recipient of an add call, as Kapso takes it. */
export interface RecipientInput {
  readonly phone_number: string
  readonly template_parameters: ReadonlyArray<string> | Readonly<Record<string, string>>
}

/** The `template` object of a `send_template` call. */
export interface SendTemplateInput {
  readonly phone_number: string
  readonly template_parameters: ReadonlyArray<string> | Readonly<Record<string, string>>
  readonly header_type?: "text" | "image" | "video" | "document"
  readonly header_params?: string
  readonly header_filename?: string
  readonly button_url_params?: Readonly<Record<string, string>>
  readonly whatsapp_config_id?: string
}

/** Turns a 404 or 422 message into the reason it stands for, or none for the default (`InvalidRequest`). */
export type Refine = (status: number, message: string) => Option.Option<TransportError.Reason>

const fail = (operation: string, reason: TransportError.Reason) =>
  new TransportError.TransportError({ provider, operation, reason })

const truncate = (text: string) => text.length > 300 ? `${text.slice(0, 300)}…` : text

const decodeJson = Schema.decodeUnknownResult(Schema.fromJsonString(Schema.Unknown))
const decodeErrorBody = Schema.decodeUnknownResult(ErrorBody)

/** Kapso's error text from an error body: its `error`, else its `message`, else the raw body. */
export const errorText = (body: string): string => {
  const parsed = Result.flatMap(decodeJson(body), decodeErrorBody)
  const text = Result.isSuccess(parsed) ? parsed.success.error ?? parsed.success.message : undefined
  return text ?? truncate(body.trim())
}

/**
 * The documented 404 and 422 messages that mean more than `InvalidRequest` (which pauses the broadcast):
 * - create: "Template not linked to config" (or not approved) is `TemplateRejected`; "No users found for project"
 *   and a config that is not production stay `InvalidRequest`;
 * - add: "Cannot add recipients to broadcast in sending status", "Cannot add more than 1000 recipients per
 *   request", "Recipients array is required" stay `InvalidRequest`;
 * - send: "Broadcast is already sending" / "already completed" are settled by `KapsoBroadcasts.start`; "Broadcast
 *   has no recipients" stays `InvalidRequest`;
 * - send_template: 404 "Template not found" is `TemplateRejected`; a 422 about the parameters fails that recipient
 *   (`TemplateParamsMismatch`, per recipient), about the number `RecipientRejected`, about the template
 *   `TemplateRejected`.
 */
export const refinements = {
  open: (status, message) =>
    status === 422 && /template/i.test(message)
      ? Option.some(new TransportError.TemplateRejected({ message, httpStatus: status }))
      : Option.none(),
  send_template: (status, message) =>
    status === 404
      ? Option.some(new TransportError.TemplateRejected({ message, httpStatus: status }))
      : status !== 422
      ? Option.none()
      : /param/i.test(message)
      ? Option.some(new TransportError.TemplateParamsMismatch({ message, httpStatus: status, perRecipient: true }))
      : /phone|number/i.test(message)
      ? Option.some(new TransportError.RecipientRejected({ message, httpStatus: status }))
      : /template/i.test(message)
      ? Option.some(new TransportError.TemplateRejected({ message, httpStatus: status }))
      : Option.none()
} satisfies Record<string, Refine>

const requestFailed = (operation: string, error: HttpClientError.HttpClientError) =>
  fail(operation, TransportError.fromHttpClientError(error))

export interface Client {
  readonly createBroadcast: (input: {
    readonly name: string
    readonly whatsappConfigId: string
    readonly templateId: string
  }) => Effect.Effect<Broadcast, TransportError.TransportError>
  readonly addRecipients: (
    broadcastId: string,
    recipients: ReadonlyArray<RecipientInput>
  ) => Effect.Effect<RecipientBatch, TransportError.TransportError>
  /** Succeeds on 202; a 422 fails with its message (the caller decides whether it is benign). */
  readonly sendBroadcast: (broadcastId: string) => Effect.Effect<void, TransportError.TransportError>
  readonly getBroadcast: (broadcastId: string) => Effect.Effect<Broadcast, TransportError.TransportError>
  readonly listRecipients: (
    broadcastId: string,
    page: number,
    perPage: number
  ) => Effect.Effect<RecipientPage, TransportError.TransportError>
  /** The Kapso id of an approved template, from `templateIds` or the template list (cached). */
  readonly templateId: (
    template: TemplateSpec.TemplateSpec,
    whatsappConfigId: Option.Option<string>
  ) => Effect.Effect<string, TransportError.TransportError>
  readonly sendTemplate: (
    templateId: string,
    input: SendTemplateInput
  ) => Effect.Effect<SendTemplateResult, TransportError.TransportError>
}

// Name filters are "contains": a few pages of near-namesakes at most before the exact one turns up.
const maxTemplatePages = 10

export const make = Effect.fn("KapsoApi.make")(function*(options: Options) {
  const http = yield* HttpClient.HttpClient
  const baseUrl = (options.baseUrl ?? defaultBaseUrl).replace(/\/+$/, "")
  const timeout = Duration.fromInputUnsafe(options.timeout ?? defaultTimeout)
  const templateIds = new Map<string, string>()

  const prepare = (request: HttpClientRequest.HttpClientRequest) =>
    request.pipe(
      HttpClientRequest.prependUrl(baseUrl),
      HttpClientRequest.setHeader("X-API-Key", Redacted.value(options.apiKey)),
      HttpClientRequest.acceptJson
    )

  const call = <S extends Schema.ConstraintDecoder<unknown>>(
    operation: string,
    request: HttpClientRequest.HttpClientRequest,
    schema: S,
    refine: Refine = () => Option.none()
  ): Effect.Effect<S["Type"], TransportError.TransportError> => {
    const decode = Schema.decodeUnknownResult(schema)
    return Effect.gen(function*() {
      const response = yield* http.execute(prepare(request))
      const body = yield* response.text
      const status = response.status
      if (status >= 200 && status < 300) {
        const json = decodeJson(body)
        if (Result.isFailure(json)) {
          return yield* fail(
            operation,
            new TransportError.InvalidRequest({
              message: `Kapso answered HTTP ${status} with a body that is not JSON: ${truncate(body)}`,
              httpStatus: status
            })
          )
        }
        const decoded = decode(json.success)
        if (Result.isFailure(decoded)) {
          return yield* fail(
            operation,
            new TransportError.InvalidRequest({
              message: `Kapso answered HTTP ${status} with an unexpected shape: ${decoded.failure.message}`,
              httpStatus: status
            })
          )
        }
        return decoded.success
      }
      const message = errorText(body)
      const refined = status === 404 || status === 422 ? refine(status, message) : Option.none()
      if (Option.isSome(refined)) return yield* fail(operation, refined.value)
      return yield* TransportError.fromHttpStatus({
        status,
        retryAfterHeader: response.headers["retry-after"],
        now: yield* DateTime.now,
        provider,
        operation,
        message
      })
    }).pipe(
      Effect.catchTag("HttpClientError", (error) => Effect.fail(requestFailed(operation, error))),
      Effect.timeoutOrElse({
        duration: timeout,
        orElse: () =>
          Effect.fail(fail(
            operation,
            new TransportError.Timeout({ message: `no answer from Kapso within ${Duration.format(timeout)}` })
          ))
      })
    )
  }

  const path = (...segments: ReadonlyArray<string>) => `/${segments.map(encodeURIComponent).join("/")}`

  const createBroadcast = Effect.fn("KapsoApi.createBroadcast")(
    function*(input: { readonly name: string; readonly whatsappConfigId: string; readonly templateId: string }) {
      const request = HttpClientRequest.post("/whatsapp_broadcasts").pipe(
        HttpClientRequest.bodyJsonUnsafe({
          whatsapp_broadcast: {
            name: input.name,
            whatsapp_config_id: input.whatsappConfigId,
            whatsapp_template_id: input.templateId
          }
        })
      )
      return (yield* call("open", request, Data(Broadcast), refinements.open)).data
    }
  )

  const addRecipients = Effect.fn("KapsoApi.addRecipients")(
    function*(broadcastId: string, recipients: ReadonlyArray<RecipientInput>) {
      const request = HttpClientRequest.post(path("whatsapp_broadcasts", broadcastId, "recipients")).pipe(
        HttpClientRequest.bodyJsonUnsafe({ recipients })
      )
      return (yield* call("submit", request, Data(RecipientBatch))).data
    }
  )

  const sendBroadcast = Effect.fn("KapsoApi.sendBroadcast")(function*(broadcastId: string) {
    yield* call("start", HttpClientRequest.post(path("whatsapp_broadcasts", broadcastId, "send")), Started)
  })

  const getBroadcast = Effect.fn("KapsoApi.getBroadcast")(function*(broadcastId: string) {
    return (yield* call("poll", HttpClientRequest.get(path("whatsapp_broadcasts", broadcastId)), Data(Broadcast))).data
  })

  const listRecipients = Effect.fn("KapsoApi.listRecipients")(
    function*(broadcastId: string, page: number, perPage: number) {
      const request = HttpClientRequest.get(path("whatsapp_broadcasts", broadcastId, "recipients")).pipe(
        HttpClientRequest.setUrlParams({ page: String(page), per_page: String(perPage) })
      )
      return yield* call("poll", request, RecipientPage)
    }
  )

  const lookupTemplate = Effect.fnUntraced(function*(
    template: TemplateSpec.TemplateSpec,
    whatsappConfigId: Option.Option<string>
  ) {
    const rejected = (message: string) => fail("template", new TransportError.TemplateRejected({ message }))
    const found: Array<Template> = []
    for (let page = 1; page <= maxTemplatePages; page++) {
      const request = HttpClientRequest.get("/whatsapp_templates").pipe(
        HttpClientRequest.setUrlParams({
          "q[name_cont]": template.name,
          "q[language_code_eq]": template.language,
          page: String(page),
          per_page: "100",
          ...Option.match(whatsappConfigId, { onNone: () => ({}), onSome: (id) => ({ whatsapp_config_id: id }) })
        })
      )
      const answer = yield* call("template", request, TemplatePage)
      found.push(...answer.data.filter((t) => t.name === template.name && t.language_code === template.language))
      if (answer.data.length === 0 || answer.meta === undefined || page >= answer.meta.total_pages) break
    }
    const approved = found.find((t) => t.status === undefined || t.status === "approved")
    if (approved !== undefined) return approved.id
    const where = `${template.name} (${template.language})`
    return yield* rejected(
      found.length === 0
        ? `Kapso has no template ${where}`
        : `Kapso's template ${where} is ${found[0]?.status ?? "not approved"}, not approved`
    )
  })

  const templateId = Effect.fn("KapsoApi.templateId")(
    function*(template: TemplateSpec.TemplateSpec, whatsappConfigId: Option.Option<string>) {
      const key = `${template.name}:${template.language}`
      const given = options.templateIds?.[key] ?? options.templateIds?.[template.name] ?? templateIds.get(key)
      if (given !== undefined) return given
      const id = yield* lookupTemplate(template, whatsappConfigId)
      templateIds.set(key, id)
      return id
    }
  )

  const sendTemplate = Effect.fn("KapsoApi.sendTemplate")(function*(templateId: string, input: SendTemplateInput) {
    const request = HttpClientRequest.post(path("whatsapp_templates", templateId, "send_template")).pipe(
      HttpClientRequest.bodyJsonUnsafe({ template: input })
    )
    return yield* call("send_template", request, SendTemplateResult, refinements.send_template)
  })

  const client: Client = {
    createBroadcast,
    addRecipients,
    sendBroadcast,
    getBroadcast,
    listRecipients,
    templateId,
    sendTemplate
  }
  return client
})

/** The sender of a broadcast: its own `sender`, else the configured `whatsappConfigId`. */
export const senderOf = (sender: string, options: Options): Option.Option<string> =>
  sender.trim() !== "" ? Option.some(sender) : Option.fromUndefinedOr(options.whatsappConfigId)
