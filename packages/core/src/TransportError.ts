/**
 * The one error every `BroadcastTransport` fails with, and the one mapping from provider answers to it.
 *
 * A `TransportError` carries a tagged `reason` (handle one with `Effect.catchReason("TransportError", "RateLimited",
 * …)`) and answers the engine's two questions: `isRetryable`, and `scope` — how far the failure reaches:
 *
 * | scope       | engine action                                                                                  |
 * |-------------|------------------------------------------------------------------------------------------------|
 * | `message`   | retry this request (honouring `retryAfter`) while `isRetryable`, else fail this recipient only |
 * | `broadcast` | pause this broadcast with the reason; an operator fixes the cause and resumes                  |
 * | `account`   | the credential itself is refused: pause this broadcast and every other one sending with it     |
 *
 * Every retryable reason has scope `message`: whole-campaign problems never retry silently.
 *
 * Meta answers are classified by `code`, never by HTTP status (Meta returns 400 even for rate limits): `metaCodes`
 * is the whole table. A code missing from it is classified by its HTTP status when one is given, and otherwise
 * is an `InvalidRequest` — an answer we do not understand pauses the broadcast for a human rather than failing
 * every recipient or retrying. `TemplateParamsMismatch` fails only its recipient when the request carried that
 * one recipient's values (`perRecipient`), and otherwise pauses the broadcast.
 */
import { DateTime, Duration, Option, Predicate, Schema } from "effect"
import type { HttpClientError } from "effect/http"

export type Scope = "message" | "broadcast" | "account"

/** Whose budget a rate limit counts against, so the pacer can slow the right bucket. */
export const Limit = Schema.Literals(["sender", "credential", "app", "account"])
export type Limit = typeof Limit.Type

// `Schema.Number`, not `Int`: building a reason from a provider's answer must never fail.
const context = {
  message: Schema.String,
  code: Schema.optionalKey(Schema.Number),
  subcode: Schema.optionalKey(Schema.Number),
  httpStatus: Schema.optionalKey(Schema.Number)
}
// Millis, so the encoded error is plain JSON for the store.
const retryAfter = Schema.optionalKey(Schema.DurationFromMillis)

export class RateLimited extends Schema.TaggedError<RateLimited>()("RateLimited", {
  ...context,
  limit: Limit,
  retryAfter
}) {
  get isRetryable(): boolean {
    return true
  }
  get scope(): Scope {
    return "message"
  }
}

/** Too many messages to one recipient: retry that recipient only, after 4^attempt seconds. */
export class PairRateLimited extends Schema.TaggedError<PairRateLimited>()("PairRateLimited", context) {
  get isRetryable(): boolean {
    return true
  }
  get scope(): Scope {
    return "message"
  }
}

export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", context) {
  get isRetryable(): boolean {
    return false
  }
  get scope(): Scope {
    return "account"
  }
}

export class Forbidden extends Schema.TaggedError<Forbidden>()("Forbidden", context) {
  get isRetryable(): boolean {
    return false
  }
  get scope(): Scope {
    return "account"
  }
}

/** A request the provider refuses as malformed: our bug or our configuration, the same for every recipient. */
export class InvalidRequest extends Schema.TaggedError<InvalidRequest>()("InvalidRequest", context) {
  get isRetryable(): boolean {
    return false
  }
  get scope(): Scope {
    return "broadcast"
  }
}

/** The template is missing, paused or disabled. */
export class TemplateRejected extends Schema.TaggedError<TemplateRejected>()("TemplateRejected", context) {
  get isRetryable(): boolean {
    return false
  }
  get scope(): Scope {
    return "broadcast"
  }
}

export class TemplateParamsMismatch extends Schema.TaggedError<TemplateParamsMismatch>()("TemplateParamsMismatch", {
  ...context,
  perRecipient: Schema.optionalKey(Schema.Boolean)
}) {
  get isRetryable(): boolean {
    return false
  }
  get scope(): Scope {
    return this.perRecipient === true ? "message" : "broadcast"
  }
}

/** This recipient cannot or must not get the message, in any broadcast. */
export class RecipientRejected extends Schema.TaggedError<RecipientRejected>()("RecipientRejected", context) {
  get isRetryable(): boolean {
    return false
  }
  get scope(): Scope {
    return "message"
  }
}

/** Meta chose not to deliver to this recipient now: fail it for this broadcast, never retry within 24 h. */
export class RecipientDeclined extends Schema.TaggedError<RecipientDeclined>()("RecipientDeclined", context) {
  get isRetryable(): boolean {
    return false
  }
  get scope(): Scope {
    return "message"
  }
}

/** Spam limit, policy block, locked account or payment issue. */
export class PolicyBlocked extends Schema.TaggedError<PolicyBlocked>()("PolicyBlocked", context) {
  get isRetryable(): boolean {
    return false
  }
  get scope(): Scope {
    return "broadcast"
  }
}

/** The provider is not ready for this yet (a new marketing template syncs within 10 minutes). */
export class NotReady extends Schema.TaggedError<NotReady>()("NotReady", {
  ...context,
  retryAfter: Schema.DurationFromMillis
}) {
  get isRetryable(): boolean {
    return true
  }
  get scope(): Scope {
    return "message"
  }
}

export class ProviderUnavailable extends Schema.TaggedError<ProviderUnavailable>()("ProviderUnavailable", {
  ...context,
  retryAfter
}) {
  get isRetryable(): boolean {
    return true
  }
  get scope(): Scope {
    return "message"
  }
}

/** No answer in time: the provider may have acted on the request (the engine's in-doubt policy applies). */
export class Timeout extends Schema.TaggedError<Timeout>()("Timeout", context) {
  get isRetryable(): boolean {
    return true
  }
  get scope(): Scope {
    return "message"
  }
}

/**
 * The connection failed. `afterSend`: once the request may have been written (a reset, a closed socket, an answer that
 * could not be read), so the provider may have acted; otherwise before (refused, no such host).
 */
export class Network extends Schema.TaggedError<Network>()("Network", {
  ...context,
  afterSend: Schema.optionalKey(Schema.Boolean)
}) {
  get isRetryable(): boolean {
    return true
  }
  get scope(): Scope {
    return "message"
  }
}

/** An operation this provider does not offer (Kapso v1 has no cancel). */
export class Unsupported extends Schema.TaggedError<Unsupported>()("Unsupported", context) {
  get isRetryable(): boolean {
    return false
  }
  get scope(): Scope {
    return "broadcast"
  }
}

export const Reason = Schema.Union([
  RateLimited,
  PairRateLimited,
  Unauthorized,
  Forbidden,
  InvalidRequest,
  TemplateRejected,
  TemplateParamsMismatch,
  RecipientRejected,
  RecipientDeclined,
  PolicyBlocked,
  NotReady,
  ProviderUnavailable,
  Timeout,
  Network,
  Unsupported
])
export type Reason = typeof Reason.Type

export class TransportError extends Schema.TaggedError<TransportError>()("TransportError", {
  provider: Schema.String,
  operation: Schema.optionalKey(Schema.String),
  reason: Reason
}) {
  get isRetryable(): boolean {
    return this.reason.isRetryable
  }

  /**
   * Whether the provider may have acted on the request though it failed: no answer came in time (`Timeout`), or the
   * connection failed after the request may have been written (`Network` with `afterSend`). The engine sets such a
   * recipient `in_doubt` under the at-most-once policy instead of retrying it, since a retry could send it twice.
   */
  get mayHaveActed(): boolean {
    return this.reason._tag === "Timeout" || (this.reason._tag === "Network" && this.reason.afterSend === true)
  }

  get scope(): Scope {
    return this.reason.scope
  }

  get retryAfter(): Option.Option<Duration.Duration> {
    return "retryAfter" in this.reason ? Option.fromUndefinedOr(this.reason.retryAfter) : Option.none()
  }

  override get message(): string {
    const { code, httpStatus, message, subcode } = this.reason
    const where = [this.provider, this.operation ?? ""].filter((part) => part.trim() !== "").join(" ") || "transport"
    const ids = [
      ...(code === undefined ? [] : [subcode === undefined ? `code ${code}` : `code ${code}/${subcode}`]),
      ...(httpStatus === undefined ? [] : [`HTTP ${httpStatus}`])
    ]
    const head = `${where} failed: ${this.reason._tag}${ids.length === 0 ? "" : ` (${ids.join(", ")})`}`
    const text = message.trim() === "" ? head : `${head}: ${message}`
    return Option.match(this.retryAfter, {
      onNone: () => text,
      onSome: (after) => `${text}; retry after ${Duration.format(after)}`
    })
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never

/** A reason as data, minus what the provider's answer supplies. */
export type ReasonSpec = DistributiveOmit<typeof Reason.Encoded, keyof typeof context>

export interface Classification {
  readonly meaning: string
  readonly reason: ReasonSpec
}

const entry = (meaning: string, reason: ReasonSpec): Classification => ({ meaning, reason })

/** Meta error codes: every code of PROVIDERS.md's table, plus Graph API codes that would otherwise be misread. */
export const metaCodes: ReadonlyMap<number, Classification> = new Map([
  [130429, entry("throughput limit of the sending phone number", { _tag: "RateLimited", limit: "sender" })],
  [4, entry("app rate limit (too many API calls)", { _tag: "RateLimited", limit: "app" })],
  [80007, entry("WhatsApp Business Account rate limit", { _tag: "RateLimited", limit: "account" })],
  [131056, entry("pair rate limit: too many messages to the same recipient", { _tag: "PairRateLimited" })],
  [131000, entry("something went wrong at Meta", { _tag: "ProviderUnavailable" })],
  [131016, entry("service unavailable", { _tag: "ProviderUnavailable" })],
  [133004, entry("server temporarily unavailable", { _tag: "ProviderUnavailable" })],
  [1, entry("unknown API error or possible server error", { _tag: "ProviderUnavailable" })],
  [2, entry("API service down or overloaded", { _tag: "ProviderUnavailable" })],
  [131057, entry("business account in maintenance mode", { _tag: "ProviderUnavailable" })],
  [131026, entry("message undeliverable to this recipient", { _tag: "RecipientRejected" })],
  [131050, entry("recipient stopped marketing messages", { _tag: "RecipientRejected" })],
  [130472, entry("recipient is part of a Meta experiment", { _tag: "RecipientRejected" })],
  [130497, entry("business may not message recipients in this country", { _tag: "RecipientRejected" })],
  [131047, entry("more than 24 hours since the recipient last replied", { _tag: "RecipientRejected" })],
  [131049, entry("Meta chose not to deliver (per-user marketing limit)", { _tag: "RecipientDeclined" })],
  [132000, entry("number of parameters does not match the template", { _tag: "TemplateParamsMismatch" })],
  [132005, entry("translated text too long", { _tag: "TemplateParamsMismatch" })],
  [132012, entry("parameter format does not match the template", { _tag: "TemplateParamsMismatch" })],
  [131008, entry("required parameter is missing", { _tag: "TemplateParamsMismatch" })],
  [131009, entry("parameter value is not valid", { _tag: "TemplateParamsMismatch" })],
  [100, entry("invalid parameter", { _tag: "TemplateParamsMismatch" })],
  [132001, entry("template does not exist in this language", { _tag: "TemplateRejected" })],
  [132015, entry("template is paused for low quality", { _tag: "TemplateRejected" })],
  [132016, entry("template is disabled for low quality", { _tag: "TemplateRejected" })],
  [131048, entry("spam rate limit on this phone number", { _tag: "PolicyBlocked" })],
  [368, entry("temporarily blocked for policy violations", { _tag: "PolicyBlocked" })],
  [131031, entry("business account locked or restricted", { _tag: "PolicyBlocked" })],
  [131042, entry("business payment issue", { _tag: "PolicyBlocked" })],
  [190, entry("access token expired or invalid", { _tag: "Unauthorized" })],
  [0, entry("authentication failed", { _tag: "Unauthorized" })],
  [134101, entry("marketing template not yet synced", { _tag: "NotReady", retryAfter: 10 * 60 * 1000 })],
  // Beyond PROVIDERS.md: Meta answers 3 with HTTP 500, which would otherwise be retried as transient.
  [3, entry("app lacks the capability or permission", { _tag: "Forbidden" })],
  [10, entry("permission denied", { _tag: "Forbidden" })]
])

/** HTTP statuses (Kapso, Keebai, and Meta answers without a known code). */
export const httpStatuses: ReadonlyMap<number, Classification> = new Map([
  [400, entry("bad request", { _tag: "InvalidRequest" })],
  [401, entry("credential missing, invalid or expired", { _tag: "Unauthorized" })],
  [403, entry("credential lacks a permission or scope", { _tag: "Forbidden" })],
  [404, entry("not found", { _tag: "InvalidRequest" })],
  [408, entry("request timeout", { _tag: "Timeout" })],
  [409, entry("conflict with the resource's state", { _tag: "InvalidRequest" })],
  [413, entry("request too large", { _tag: "InvalidRequest" })],
  [422, entry("request refused as unprocessable", { _tag: "InvalidRequest" })],
  [429, entry("request budget of this credential exceeded", { _tag: "RateLimited", limit: "credential" })],
  [500, entry("internal server error", { _tag: "ProviderUnavailable" })],
  [502, entry("bad gateway", { _tag: "ProviderUnavailable" })],
  [503, entry("service unavailable", { _tag: "ProviderUnavailable" })],
  [504, entry("gateway timeout", { _tag: "Timeout" })]
])

const otherClientError = entry("request refused", { _tag: "InvalidRequest" })
// A status outside 4xx (an unexpected 3xx, a 5xx we do not list) is the provider misbehaving: retry, bounded.
const otherStatus = entry("unexpected HTTP status", { _tag: "ProviderUnavailable" })
const unknownMetaCode = entry("unrecognised Meta error code", { _tag: "InvalidRequest" })

const classifyStatus = (status: number): Classification =>
  httpStatuses.get(status) ?? (status >= 400 && status < 500 ? otherClientError : otherStatus)

const decodeReason = Schema.decodeSync(Reason)

interface Answer {
  readonly provider: string
  readonly operation?: string | undefined
  readonly message?: string | undefined
  readonly code?: number | undefined
  readonly subcode?: number | undefined
  readonly httpStatus?: number | undefined
  readonly retryAfter?: Duration.Duration | undefined
  readonly perRecipient?: boolean | undefined
}

const make = (classification: Classification, answer: Answer): TransportError => {
  const message = answer.message === undefined || answer.message.trim() === "" ? classification.meaning : answer.message
  // Decoding drops what a reason does not declare (a Retry-After on a 401, perRecipient off a params error).
  const reason = decodeReason({
    ...classification.reason,
    message,
    ...(answer.code === undefined ? {} : { code: answer.code }),
    ...(answer.subcode === undefined ? {} : { subcode: answer.subcode }),
    ...(answer.httpStatus === undefined ? {} : { httpStatus: answer.httpStatus }),
    ...(answer.retryAfter === undefined ? {} : { retryAfter: Duration.toMillis(answer.retryAfter) }),
    ...(answer.perRecipient === undefined ? {} : { perRecipient: answer.perRecipient })
  })
  return new TransportError({
    provider: answer.provider,
    ...(answer.operation === undefined ? {} : { operation: answer.operation }),
    reason
  })
}

/**
 * Classifies a Meta Graph API error (`{ error: { code, error_subcode, message, error_data: { details } } }`), from
 * Meta directly, through Kapso's proxy, or from a failed status webhook. Set `perRecipient` when the request
 * carried one recipient's parameters, so a parameter mismatch fails that recipient instead of the broadcast.
 */
export const fromMetaError = (input: {
  readonly code: number
  readonly subcode?: number | undefined
  readonly httpStatus?: number | undefined
  readonly message?: string | undefined
  readonly details?: string | undefined
  readonly provider: string
  readonly operation?: string | undefined
  readonly retryAfter?: Duration.Duration | undefined
  readonly perRecipient?: boolean | undefined
}): TransportError => {
  const known = metaCodes.get(input.code)
  const classification = known ??
    (input.httpStatus === undefined
      ? unknownMetaCode
      : { meaning: unknownMetaCode.meaning, reason: classifyStatus(input.httpStatus).reason })
  const texts = [input.message, input.details].filter((text) => text !== undefined && text.trim() !== "")
  return make(classification, { ...input, message: texts.join(": ") })
}

/** Classifies a failed HTTP answer that carries no provider error code we know. */
export const fromHttpStatus = (input: {
  readonly status: number
  readonly retryAfterHeader?: string | undefined
  readonly now: DateTime.Utc
  readonly provider: string
  readonly operation?: string | undefined
  readonly message?: string | undefined
}): TransportError =>
  make(classifyStatus(input.status), {
    ...input,
    httpStatus: input.status,
    retryAfter: input.retryAfterHeader === undefined
      ? undefined
      : Option.getOrUndefined(parseRetryAfter(input.retryAfterHeader, input.now))
  })

const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
const month = months.join("|")
const time = "(?<hour>\\d{2}):(?<minute>\\d{2}):(?<second>\\d{2})"
// RFC 9110 §5.6.7: recipients must accept IMF-fixdate and the two obsolete forms, all in GMT.
const httpDates = [
  new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (?<day>\\d{2}) (?<month>${month}) (?<year>\\d{4}) ${time} GMT$`),
  new RegExp(
    `^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (?<day>\\d{2})-(?<month>${month})-(?<year>\\d{2}) ${time} GMT$`
  ),
  new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?<month>${month}) (?<day>[ \\d]\\d) ${time} (?<year>\\d{4})$`)
]

const parseHttpDate = (header: string, now: DateTime.Utc): Option.Option<DateTime.Utc> => {
  const groups = httpDates.map((pattern) => pattern.exec(header)?.groups).find((found) => found !== undefined)
  if (groups === undefined) return Option.none()
  const parts = {
    year: Number(groups.year),
    month: months.indexOf(groups.month ?? "") + 1,
    day: Number(groups.day),
    hour: Number(groups.hour),
    minute: Number(groups.minute),
    second: Number(groups.second)
  }
  // RFC 9110: a two-digit year more than 50 years ahead is in the past century.
  const nowYear = DateTime.toPartsUtc(now).year
  const year = groups.year?.length === 2
    ? 2000 + parts.year > nowYear + 50 ? 1900 + parts.year : 2000 + parts.year
    : parts.year
  const inRange = parts.hour < 24 && parts.minute < 60 && parts.second < 61
  return Option.filter(
    inRange ? DateTime.make({ ...parts, year }) : Option.none(),
    // Date arithmetic rolls 31 Feb over into March; a date that does not exist is garbage.
    (date) => DateTime.toPartsUtc(date).day === parts.day
  )
}

/**
 * Reads a `Retry-After` header: delta-seconds or an HTTP-date. Garbage is none; a negative delay or a date in the
 * past is zero (retry now).
 */
export const parseRetryAfter = (header: string, now: DateTime.Utc): Option.Option<Duration.Duration> => {
  const value = header.trim()
  if (/^-?\d+$/.test(value)) return Option.some(Duration.seconds(Math.max(0, Number(value))))
  return Option.map(parseHttpDate(value, now), (date) => Duration.max(DateTime.distance(now, date), Duration.zero))
}

// Error codes of a connection that was never made: the request cannot have reached the provider.
const beforeSend = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EAI_NONAME",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "UND_ERR_CONNECT_TIMEOUT"
])

/** The first error `code` along a chain of causes (fetch wraps the socket's error in its own). */
const codeOf = (cause: unknown): string | undefined => {
  for (let current = cause, depth = 0; current !== undefined && depth < 5; depth++) {
    if (Predicate.hasProperty(current, "code") && typeof current.code === "string") return current.code
    current = Predicate.hasProperty(current, "cause") ? current.cause : undefined
  }
  return undefined
}

/**
 * The reason for a request effect/http could not complete: a URL or body that cannot be sent is `InvalidRequest`; a
 * connection that was never made (refused, no such host, TLS refused) is `Network`; anything after that (a reset, a
 * closed socket, an answer that could not be read, or a failure it cannot place) is `Network` with `afterSend`, since
 * the provider may have acted. Messages carry no headers, so no credential.
 */
export const fromHttpClientError = (error: HttpClientError.HttpClientError): Reason => {
  const reason = error.reason
  const message = `${reason._tag}: ${reason.message}`
  switch (reason._tag) {
    case "InvalidUrlError":
    case "EncodeError":
      return new InvalidRequest({ message })
    case "TransportError": {
      const code = codeOf(reason.cause)
      const before = code !== undefined && (beforeSend.has(code) || /^(CERT_|ERR_TLS_|ERR_SSL_)/.test(code))
      return new Network({ message: code === undefined ? message : `${message} (${code})`, afterSend: !before })
    }
    default:
      return new Network({ message, afterSend: true })
  }
}
