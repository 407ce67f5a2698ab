/**
 * The `/v1/messages/bulk` transport (Keebai): one `POST /v1/messages/bulk` per batch of up to 5,000 recipients,
 * each call its own remote broadcast with a distinct `campaign_name`.
 *
 * - Nothing invalid is sent: Keebai refuses a whole call for one malformed number, so an item whose address is not a
 *   phone number in E.164 (a BSUID, or a value no parser made) is rejected here, alone, and the rest go. A 400 that
 *   still happens fails the whole batch with Keebai's message (`InvalidRequest`: the engine pauses the broadcast).
 * - Keebai does not dedupe and charges every copy: the engine's import dedupe is what prevents duplicates.
 * - Its request budget (60 per minute and 1,000 per hour per token) is in its `capabilities`, so the engine's pacer
 *   spends it for every broadcast. A 429 is `RateLimited` on the credential, its `Retry-After` plus up to
 *   a quarter in jitter (without one the engine's own backoff, jittered, applies); 401 and 403 (a token without the
 *   `messages:bulk` scope) are account-scope reasons that stop the broadcast with a message saying what to fix.
 * - Statuses: Keebai's answer to a call names only its remote broadcast, so per-recipient statuses come from its
 *   signed webhooks (`KeebaiWebhook`). `poll` reads `GET /v1/messages/bulk/:id` for the remote broadcasts this process
 *   sent, oldest unfinished first and at most `maxReadsPerPoll` per call (GETs spend the same budget), reports their
 *   aggregate progress (`KeebaiBulk.progress`, and a debug log), and says `done` once every one of them is over. It
 *   carries no events.
 * - Both documented readings: the sender goes as `channel_id` (default) or `phone_number_id`, and a new remote
 *   broadcast may be `PENDING` or `scheduled`.
 * - Keebai documents no cancel: `cancel` fails with `Unsupported`. Only body variables travel (positional ones as
 *   `"1"`, `"2"`, …): templates with header or button parameters are refused by `unsupported`.
 */
import * as Address from "@crier/core/Address"
import * as Broadcast from "@crier/core/Broadcast"
import {
  BroadcastTransport,
  type Capabilities,
  type ItemOutcome,
  type Outgoing,
  type StatusPage
} from "@crier/core/BroadcastTransport"
import type * as TemplateParams from "@crier/core/TemplateParams"
import type * as TemplateSpec from "@crier/core/TemplateSpec"
import * as TransportError from "@crier/core/TransportError"
import { Config, Context, DateTime, Duration, Effect, Layer, Option, Random, Redacted, Result, Schema } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"

export const provider = "keebai"
export const defaultBaseUrl = "https://api.keebai.com"
/** Where our recipient id travels in each recipient's `meta_data`, for webhooks to echo. */
export const metaDataKey = "crier_recipient_id"

/** Keebai's request budget per token. */
export const requestBudgets: ReadonlyArray<Broadcast.RequestBudget> = [
  new Broadcast.RequestBudget({ limit: 60, windowMillis: 60_000 }),
  new Broadcast.RequestBudget({ limit: 1000, windowMillis: 3_600_000 })
]

/**
 * Keebai sends each call at its own pace, so no message rate of ours applies (`providerPaced`); only the request
 * budgets do.
 */
export const capabilities: Capabilities = {
  maxBatchSize: 5000,
  remoteCampaign: false,
  startsOnSubmit: true,
  tracking: "both",
  providerDedupe: false,
  providerPaced: true,
  requestBudgets
}

export interface Options {
  readonly token: Redacted.Redacted<string>
  /** Default `https://api.keebai.com`. */
  readonly baseUrl?: string | undefined
  /** The sender when a broadcast names none. */
  readonly channelId?: string | undefined
  /** The field the sender travels in: the docs say `channel_id`, one page `phone_number_id`. */
  readonly senderField?: "channel_id" | "phone_number_id" | undefined
  /** The transport's name. Default "keebai". */
  readonly name?: string | undefined
  /** One request's limit; past it the call fails with `Timeout`. Default 30 s. */
  readonly timeout?: Duration.Input | undefined
  /** GETs one `poll` may spend. Default 5. */
  readonly maxReadsPerPoll?: number | undefined
  /** The token's request budgets, which the engine's pacer spends. Default Keebai's documented `requestBudgets`. */
  readonly requestBudgets?: ReadonlyArray<Broadcast.RequestBudget> | undefined
}

export const BatchStatus = Schema.Literals(["PENDING", "IN_PROGRESS", "COMPLETED", "FAILED", "CANCELLED"])
export type BatchStatus = typeof BatchStatus.Type

/** One remote broadcast (one call), as last read. */
export interface Batch {
  readonly remoteId: string
  readonly campaignName: string
  readonly recipients: number
  readonly status: BatchStatus
  readonly sent: number
  readonly failed: number
  readonly pending: number
}

export interface Progress {
  readonly batches: ReadonlyArray<Batch>
  readonly total: number
  readonly sent: number
  readonly failed: number
  readonly pending: number
  /** Every remote broadcast is over. */
  readonly done: boolean
}

export class KeebaiBulk extends Context.Service<KeebaiBulk, {
  /** The remote broadcasts this process sent for a broadcast, as `poll` last read them. */
  readonly progress: (broadcastId: Broadcast.BroadcastId) => Effect.Effect<Progress>
}>()("@crier/keebai/KeebaiBulk") {}

// ---------------------------------------------------------------------------------------------------------------
// The wire

// Lower-case and `scheduled` spellings are documented too; all are read as the upper-case statuses.
const WireStatus = Schema.Literals([
  "PENDING",
  "IN_PROGRESS",
  "COMPLETED",
  "FAILED",
  "CANCELLED",
  "SCHEDULED",
  "pending",
  "scheduled",
  "in_progress",
  "completed",
  "failed",
  "cancelled"
])

const normalStatus = (status: typeof WireStatus.Type): BatchStatus => {
  const upper = status.toUpperCase()
  return upper === "SCHEDULED" ? "PENDING" : (upper as BatchStatus)
}

const Accepted = Schema.Struct({
  broadcast_id: Schema.NonEmptyString,
  status: Schema.optionalKey(WireStatus),
  total_recipients: Schema.optionalKey(Schema.Number)
})

const Count = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

const Remote = Schema.Struct({
  broadcast_id: Schema.String,
  status: WireStatus,
  total_recipients: Count,
  sent: Count,
  failed: Count,
  pending: Count
})

const ErrorBody = Schema.Union([
  Schema.Struct({ error: Schema.Struct({ message: Schema.String }) }),
  Schema.Struct({ error: Schema.String }),
  Schema.Struct({ message: Schema.String })
])

const decodeAccepted = Schema.decodeUnknownResult(Schema.fromJsonString(Accepted))
const decodeRemote = Schema.decodeUnknownResult(Schema.fromJsonString(Remote))
const decodeError = Schema.decodeUnknownResult(Schema.fromJsonString(ErrorBody))

/** The provider's own words from an error body, when it has any we can read. */
const errorMessage = (body: string): string | undefined =>
  Result.match(decodeError(body), {
    onFailure: () => undefined,
    onSuccess: (decoded) =>
      "message" in decoded ? decoded.message : typeof decoded.error === "string" ? decoded.error : decoded.error.message
  })

// What the operator should fix, added to the provider's words unless they already name it.
const hints: Partial<Record<number, { readonly names: string; readonly hint: string }>> = {
  401: { names: "KEEBAI_TOKEN", hint: "check KEEBAI_TOKEN: it is missing, invalid or expired" },
  403: { names: "messages:bulk", hint: "the token needs the messages:bulk scope" }
}

/** Share of a `Retry-After` added as jitter, so clients sharing a token do not all come back at once. */
export const retryJitter = 0.25

const E164 = /^\+[1-9]\d{7,14}$/

/** Whether Keebai would take this address as a recipient's `to`. */
export const isSendable = (address: Address.Address): boolean => {
  const parsed = Address.parse(address)
  return Result.isSuccess(parsed) && parsed.success === address && Address.kind(address) === "phone" &&
    E164.test(address)
}

const isPositional = (body: TemplateParams.TemplateParams["body"]): body is ReadonlyArray<string> => Array.isArray(body)

const variablesOf = ({ body }: TemplateParams.TemplateParams): Record<string, string> =>
  isPositional(body) ? Object.fromEntries(body.map((value, i) => [String(i + 1), value])) : { ...body }

const unsupported = (template: TemplateSpec.TemplateSpec): Option.Option<string> =>
  template.header !== "none" || template.buttons.length > 0
    ? Option.some("Keebai's bulk API takes body variables only: no header or button parameters")
    : Option.none()

interface Answer {
  readonly status: number
  readonly body: string
  readonly retryAfter: string | undefined
}

interface Ledger {
  calls: number
  readonly batches: Array<Batch>
}

const isOver = (status: BatchStatus): boolean => status !== "PENDING" && status !== "IN_PROGRESS"

const progressOf = (batches: ReadonlyArray<Batch>): Progress => ({
  batches: batches.slice(),
  total: batches.reduce((sum, batch) => sum + batch.recipients, 0),
  sent: batches.reduce((sum, batch) => sum + batch.sent, 0),
  failed: batches.reduce((sum, batch) => sum + batch.failed, 0),
  pending: batches.reduce((sum, batch) => sum + batch.pending, 0),
  done: batches.every((batch) => isOver(batch.status))
})

// ---------------------------------------------------------------------------------------------------------------
// The transport

export const make = Effect.fn("KeebaiBulk.make")(function*(options: Options) {
  const client = yield* HttpClient.HttpClient
  const name = options.name ?? provider
  const baseUrl = (options.baseUrl ?? defaultBaseUrl).replace(/\/+$/, "")
  const senderField = options.senderField ?? "channel_id"
  const timeout = Duration.fromInputUnsafe(options.timeout ?? Duration.seconds(30))
  const maxReads = Math.max(1, options.maxReadsPerPoll ?? 5)
  const ledgers = new Map<Broadcast.BroadcastId, Ledger>()

  const failure = (operation: string, reason: TransportError.Reason) =>
    new TransportError.TransportError({ provider: name, operation, reason })

  /** A refused answer, classified by its status, worded by Keebai, with a hint and jitter where they help. */
  const refused = Effect.fnUntraced(function*(operation: string, answer: Answer) {
    const said = errorMessage(answer.body)
    const known = hints[answer.status]
    const hint = known === undefined || said?.includes(known.names) === true ? undefined : known.hint
    const error = TransportError.fromHttpStatus({
      status: answer.status,
      retryAfterHeader: answer.retryAfter,
      now: yield* DateTime.now,
      provider: name,
      operation,
      message: [said, hint].filter((part) => part !== undefined).join(": ") || undefined
    })
    const reason = error.reason
    if (reason._tag !== "RateLimited" || reason.retryAfter === undefined) return error
    const jitter = 1 + retryJitter * (yield* Random.next)
    return failure(
      operation,
      new TransportError.RateLimited({
        message: reason.message,
        limit: reason.limit,
        ...(reason.httpStatus === undefined ? {} : { httpStatus: reason.httpStatus }),
        retryAfter: Duration.millis(Math.round(Duration.toMillis(reason.retryAfter) * jitter))
      })
    )
  })

  /** Sends one request; any 2xx is the body, anything else a classified `TransportError`. */
  const send = (operation: string, request: HttpClientRequest.HttpClientRequest) =>
    client.execute(HttpClientRequest.bearerToken(request, options.token)).pipe(
      Effect.flatMap((response) =>
        Effect.map(response.text, (body): Answer => ({
          status: response.status,
          body,
          retryAfter: response.headers["retry-after"]
        }))
      ),
      Effect.timeoutOrElse({
        duration: timeout,
        orElse: () =>
          Effect.fail(failure(
            operation,
            new TransportError.Timeout({ message: `no answer within ${Duration.format(timeout)}` })
          ))
      }),
      Effect.catchTag(
        "HttpClientError",
        (error) => Effect.fail(failure(operation, TransportError.fromHttpClientError(error)))
      ),
      Effect.flatMap((answer) =>
        answer.status >= 200 && answer.status < 300 ? Effect.succeed(answer) : Effect.flip(refused(operation, answer))
      )
    )

  /** An answer we cannot read is a question for a human: the call may have been acted on. */
  const unreadable = (operation: string, answer: Answer, problem: string, consequence: string) =>
    failure(
      operation,
      new TransportError.InvalidRequest({
        message: `Keebai answered HTTP ${answer.status} with a body crier cannot read (${problem}); ${consequence}`,
        httpStatus: answer.status
      })
    )

  const submit = Effect.fn("KeebaiBulk.submit")(
    function*(broadcast: Broadcast.Broadcast, batch: readonly [Outgoing, ...Array<Outgoing>]) {
      if (batch.length > capabilities.maxBatchSize) {
        return yield* failure(
          "submit",
          new TransportError.InvalidRequest({
            message: `${batch.length} recipients in one call; Keebai takes at most ${capabilities.maxBatchSize}`
          })
        )
      }
      const sender = broadcast.sender.trim() === "" ? options.channelId : broadcast.sender
      if (sender === undefined || sender.trim() === "") {
        return yield* failure(
          "submit",
          new TransportError.InvalidRequest({
            message: "no Keebai channel id: give the broadcast a sender, or set KEEBAI_CHANNEL_ID"
          })
        )
      }
      const sendable = batch.filter((item) => isSendable(item.address))
      const outcomes = (accepted: ItemOutcome): ReadonlyArray<ItemOutcome> =>
        batch.map((item) =>
          isSendable(item.address) ? accepted : {
            _tag: "Rejected",
            error: failure(
              "submit",
              new TransportError.RecipientRejected({
                message: `${item.address} is not a phone number in E.164 form; Keebai sends to phone numbers only`
              })
            )
          }
        )
      const [first] = sendable
      const last = sendable[sendable.length - 1]
      if (first === undefined || last === undefined) {
        return { outcomes: outcomes({ _tag: "Accepted", providerMessageId: Option.none(), held: false }) }
      }
      const ledger = ledgers.get(broadcast.id) ?? { calls: 0, batches: [] }
      ledgers.set(broadcast.id, ledger)
      // Distinct per call, and it says which rows went in it.
      const campaignName = `${broadcast.name} · part ${++ledger.calls} (#${first.seq}–#${last.seq})`
      const answer = yield* send(
        "submit",
        HttpClientRequest.post(`${baseUrl}/v1/messages/bulk`).pipe(
          HttpClientRequest.bodyJsonUnsafe({
            template_name: broadcast.template.name,
            language: broadcast.template.language,
            [senderField]: sender,
            campaign_name: campaignName,
            recipients: sendable.map((item) => ({
              to: item.address,
              variables: variablesOf(item.params),
              meta_data: { [metaDataKey]: item.recipientId }
            }))
          })
        )
      )
      const decoded = decodeAccepted(answer.body)
      if (Result.isFailure(decoded)) {
        return yield* unreadable(
          "submit",
          answer,
          decoded.failure.message,
          "the batch may have been sent: check Keebai before resuming"
        )
      }
      ledger.batches.push({
        remoteId: decoded.success.broadcast_id,
        campaignName,
        recipients: sendable.length,
        status: decoded.success.status === undefined ? "PENDING" : normalStatus(decoded.success.status),
        sent: 0,
        failed: 0,
        pending: sendable.length
      })
      return { outcomes: outcomes({ _tag: "Accepted", providerMessageId: Option.none(), held: false }) }
    }
  )

  const read = Effect.fnUntraced(function*(batch: Batch) {
    const answer = yield* send(
      "poll",
      HttpClientRequest.get(`${baseUrl}/v1/messages/bulk/${encodeURIComponent(batch.remoteId)}`)
    )
    const decoded = decodeRemote(answer.body)
    if (Result.isFailure(decoded)) {
      return yield* unreadable("poll", answer, decoded.failure.message, "its progress is unknown")
    }
    const remote = decoded.success
    return {
      ...batch,
      status: normalStatus(remote.status),
      sent: remote.sent,
      failed: remote.failed,
      pending: remote.pending
    } satisfies Batch
  })

  const poll = Effect.fn("KeebaiBulk.poll")(function*(broadcast: Broadcast.Broadcast, _cursor: Option.Option<string>) {
    const batches = ledgers.get(broadcast.id)?.batches ?? []
    // The oldest unfinished first: Keebai works through calls in order, so a later one rarely finishes sooner.
    for (let reads = 0; reads < maxReads; reads++) {
      const index = batches.findIndex((batch) => !isOver(batch.status))
      if (index === -1) break
      const updated = yield* read(batches[index]!)
      batches[index] = updated
      if (!isOver(updated.status)) break
    }
    const progress = progressOf(batches)
    yield* Effect.logDebug("Keebai progress").pipe(
      Effect.annotateLogs({
        broadcast: broadcast.id,
        calls: progress.batches.length,
        total: progress.total,
        sent: progress.sent,
        failed: progress.failed,
        pending: progress.pending
      })
    )
    return { events: [], cursor: Option.none(), done: progress.done } satisfies StatusPage
  })

  const cancel = Effect.fn("KeebaiBulk.cancel")(function*(_broadcast: Broadcast.Broadcast) {
    return yield* failure(
      "cancel",
      new TransportError.Unsupported({ message: "Keebai's bulk API documents no way to cancel a broadcast" })
    )
  })

  const transport = BroadcastTransport.of({
    name,
    capabilities: { ...capabilities, requestBudgets: options.requestBudgets ?? requestBudgets },
    unsupported,
    open: () => Effect.succeed(Option.none()),
    submit,
    start: () => Effect.void,
    poll,
    cancel
  })
  const bulk = KeebaiBulk.of({
    progress: (broadcastId) => Effect.sync(() => progressOf(ledgers.get(broadcastId)?.batches ?? []))
  })
  return Context.make(BroadcastTransport, transport).pipe(Context.add(KeebaiBulk, bulk))
})

export const layer = (
  options: Options
): Layer.Layer<BroadcastTransport | KeebaiBulk, never, HttpClient.HttpClient> => Layer.effectContext(make(options))

/** `KEEBAI_TOKEN` (secret), `KEEBAI_BASE_URL` (default `https://api.keebai.com`), `KEEBAI_CHANNEL_ID` (optional). */
export const config = Config.all({
  token: Config.Redacted("KEEBAI_TOKEN"),
  baseUrl: Config.String("KEEBAI_BASE_URL").pipe(Config.withDefault(defaultBaseUrl)),
  channelId: Config.String("KEEBAI_CHANNEL_ID").pipe(Config.option, Config.map(Option.getOrUndefined))
})

export const layerConfig: Layer.Layer<
  BroadcastTransport | KeebaiBulk,
  Config.ConfigError,
  HttpClient.HttpClient
> = Layer.effectContext(Effect.flatMap(config, make))
