/**
 * A local HTTP emulator of Keebai's bulk API (`POST /v1/messages/bulk`, `GET /v1/messages/bulk/:id`) that behaves as
 * its documentation says (PROVIDERS.md, "Keebai bulk API"):
 *
 * - bearer tokens with scopes: 401 for a missing or unknown token, 403 without `messages:bulk`;
 * - a request budget per token (default 60 per minute and 1,000 per hour, in sliding windows), 429 with
 *   `Retry-After` beyond it; every authenticated request counts, GETs too;
 * - 400 for an empty list, more than 5,000 recipients, a missing sender field, or a malformed number on ANY
 *   recipient (the whole call fails); with `templates` known, an unknown template is a 400 and a recipient missing
 *   one of its variables fails alone;
 * - no dedupe: the same number twice is sent (and counted) twice — `sendCount` is there for assertions;
 * - each call becomes a remote broadcast that moves PENDING (or `scheduled`) → IN_PROGRESS → COMPLETED on the
 *   Effect `Clock`, sending at `messagesPerSecond`, each message then sent → delivered → read (→ a reply), or failed,
 *   by a seeded outcome mix;
 * - signed webhooks (`x-keebai-signature: sha256=<hex HMAC-SHA256 of the raw body>`) for every step, through
 *   `WebhookDelivery` (delays, reordering, duplicates, retries), echoing each recipient's `meta_data` unless told not.
 *
 * It serves on 127.0.0.1 (an ephemeral port by default) for as long as its scope lives, and delivers webhooks with
 * its own HTTP client. Outcomes and webhook delays come from the Effect `Random` in force when it is made.
 */
import { NodeHttpClient, NodeHttpServer } from "@effect/platform-node"
import { Clock, Context, DateTime, Duration, Effect, FiberSet, Layer, Random, References } from "effect"
import { HttpRouter, HttpServer, type HttpServerError, HttpServerRequest, HttpServerResponse } from "effect/http"
import { createServer } from "node:http"
import * as Budget from "./internal/keebaiBudget.ts"
import * as Wire from "./internal/keebaiWire.ts"
import * as WebhookDelivery from "./WebhookDelivery.ts"

export interface Token {
  readonly token: string
  /** Default `["messages:bulk"]`. */
  readonly scopes?: ReadonlyArray<string> | undefined
}

/** Shares (0–1) of accepted messages by outcome, drawn per message; the rest are delivered and stop there. */
export interface Outcomes {
  /** Fail when their turn to be sent comes (Meta 131026, undeliverable). */
  readonly failed?: number | undefined
  /** Delivered, then read. */
  readonly read?: number | undefined
  /** Delivered, read, then answered by an inbound message. */
  readonly replied?: number | undefined
}

export interface Timing {
  /** From acceptance to IN_PROGRESS. Default 100 ms. */
  readonly startAfter?: Duration.Input | undefined
  /** Sending pace once IN_PROGRESS. Default 5,000 per second. */
  readonly messagesPerSecond?: number | undefined
  /** From sent to delivered. Default 200 ms. */
  readonly deliveredAfter?: Duration.Input | undefined
  /** From delivered to read. Default 300 ms. */
  readonly readAfter?: Duration.Input | undefined
  /** From read to the reply. Default 500 ms. */
  readonly repliedAfter?: Duration.Input | undefined
}

export interface Webhook extends Omit<WebhookDelivery.Options, "url" | "sign"> {
  readonly url: string
  /** The `whsec_` signing secret. */
  readonly secret: string
  /** Echo each recipient's `meta_data` in its status webhooks. Default true. */
  readonly echoMetaData?: boolean | undefined
  /** The event types this endpoint subscribes to. Default all: sent, delivered, read, failed, received. */
  readonly events?: ReadonlyArray<"sent" | "delivered" | "read" | "failed" | "received"> | undefined
}

export interface Options {
  /** Default 0: an ephemeral port. */
  readonly port?: number | undefined
  /** Default: `defaultToken` with the `messages:bulk` scope. */
  readonly tokens?: ReadonlyArray<Token> | undefined
  /** Per token. Default 60 per minute and 1,000 per hour. */
  readonly budgets?: ReadonlyArray<Budget.Budget> | undefined
  /** Which documented sender field is required. Default "either". */
  readonly senderField?: "channel_id" | "phone_number_id" | "either" | undefined
  /** The status of a broadcast not yet started: the docs say `PENDING`, one page says `scheduled`. */
  readonly initialStatus?: "PENDING" | "scheduled" | undefined
  /** Known templates and their variable names; when given, others are refused. */
  readonly templates?: Readonly<Record<string, ReadonlyArray<string>>> | undefined
  readonly timing?: Timing | undefined
  readonly outcomes?: Outcomes | undefined
  /** Where webhooks go; none are sent without it. */
  readonly webhook?: Webhook | undefined
}

export const defaultToken = "kbai_pk_test_emulator"

/** One request as the emulator answered it. */
export interface RequestRecord {
  /** Epoch millis on the Effect `Clock`. */
  readonly at: number
  readonly method: string
  readonly path: string
  readonly status: number
  /** Recipients in a `POST`, as sent. */
  readonly recipients: number | undefined
}

export type MessageStatus = "pending" | "sent" | "delivered" | "read" | "failed"

export interface MessageRecord {
  readonly messageId: string
  readonly broadcastId: string
  readonly to: string
  readonly variables: Readonly<Record<string, unknown>>
  readonly metaData: Readonly<Record<string, unknown>> | undefined
  readonly status: MessageStatus
  readonly replied: boolean
  readonly error: { readonly code: string; readonly message: string } | undefined
}

export interface BroadcastRecord {
  readonly broadcastId: string
  readonly campaignName: string | undefined
  readonly templateName: string
  readonly language: string
  readonly sender: string
  readonly status: Wire.BulkStatus
  readonly total: number
  readonly sent: number
  readonly failed: number
  readonly acceptedAt: number
  readonly startedAt: number | undefined
  readonly completedAt: number | undefined
}

export class KeebaiEmulator extends Context.Service<KeebaiEmulator, {
  /** The base URL, e.g. `http://127.0.0.1:41234`. */
  readonly url: string
  /** Every request answered, in order. */
  readonly requests: Effect.Effect<ReadonlyArray<RequestRecord>>
  readonly broadcasts: Effect.Effect<ReadonlyArray<BroadcastRecord>>
  readonly messages: Effect.Effect<ReadonlyArray<MessageRecord>>
  /** Messages accepted for this number, duplicates included. */
  readonly sendCount: (to: string) => Effect.Effect<number>
  /** Numbers accepted more than once, with their counts. */
  readonly duplicateSends: Effect.Effect<ReadonlyMap<string, number>>
  /** Replaces the accepted tokens (revoke one, drop a scope) from now on. */
  readonly setTokens: (tokens: ReadonlyArray<Token>) => Effect.Effect<void>
  /** Every webhook attempt so far (none without `webhook`). */
  readonly webhookAttempts: Effect.Effect<ReadonlyArray<WebhookDelivery.Attempt>>
  /** Until every broadcast has run its course and every webhook was delivered or given up. */
  readonly idle: Effect.Effect<void>
}>()("@crier/testkit/KeebaiEmulator") {}

interface Message {
  readonly messageId: string
  readonly recipientId: string
  readonly broadcastId: string
  readonly sender: string
  readonly to: string
  readonly variables: Readonly<Record<string, unknown>>
  readonly metaData: Readonly<Record<string, unknown>> | undefined
  status: MessageStatus
  replied: boolean
  error: { readonly code: string; readonly message: string } | undefined
}

interface Remote {
  readonly broadcastId: string
  readonly campaignName: string | undefined
  readonly templateName: string
  readonly language: string
  readonly sender: string
  status: Wire.BulkStatus
  readonly total: number
  sent: number
  failed: number
  readonly acceptedAt: number
  startedAt: number | undefined
  completedAt: number | undefined
}

interface Step {
  readonly at: number
  readonly message: Message
  readonly type: Wire.EventType
}

class Refused {
  readonly status: number
  readonly code: string
  readonly message: string
  readonly headers: Readonly<Record<string, string>>
  constructor(status: number, code: string, message: string, headers: Readonly<Record<string, string>> = {}) {
    this.status = status
    this.code = code
    this.message = message
    this.headers = headers
  }
}

const iso = (millis: number): string => DateTime.formatIso(DateTime.makeUnsafe(millis))
const isoOrNull = (millis: number | undefined): string | null => millis === undefined ? null : iso(millis)

const millisOf = (input: Duration.Input | undefined, fallback: number): number =>
  input === undefined ? fallback : Duration.toMillis(input)

const bearer = /^Bearer\s+(\S+)$/i

export const make = Effect.fn("KeebaiEmulator.make")(function*(options: Options = {}) {
  const random = yield* Random.Random
  const lifecycles = yield* FiberSet.make<void, never>()
  const budgets = options.budgets ?? Budget.keebaiBudgets
  const senderField = options.senderField ?? "either"
  const initialStatus = options.initialStatus ?? "PENDING"
  const timing = {
    startAfter: millisOf(options.timing?.startAfter, 100),
    messagesPerSecond: options.timing?.messagesPerSecond ?? 5000,
    deliveredAfter: millisOf(options.timing?.deliveredAfter, 200),
    readAfter: millisOf(options.timing?.readAfter, 300),
    repliedAfter: millisOf(options.timing?.repliedAfter, 500)
  }
  const outcomes = {
    failed: options.outcomes?.failed ?? 0,
    read: options.outcomes?.read ?? 0,
    replied: options.outcomes?.replied ?? 0
  }
  const webhook = options.webhook
  // The emulator's own client, alive (with its connection pool) for as long as the emulator is.
  const delivery = webhook === undefined ? undefined : yield* WebhookDelivery.make({
    ...webhook,
    sign: (rawBody) => ({ [Wire.signatureHeader]: Wire.sign(webhook.secret, rawBody) })
  }).pipe(Effect.provideContext(yield* Layer.build(NodeHttpClient.layerUndici)))

  let tokens = new Map(
    (options.tokens ?? [{ token: defaultToken }]).map((t) => [t.token, t.scopes ?? [Wire.requiredScope]])
  )
  const spent = new Map<string, Array<number>>()
  const requests: Array<RequestRecord> = []
  const remotes = new Map<string, Remote>()
  const messages: Array<Message> = []
  const sends = new Map<string, number>()
  let events = 0

  const subscribed = new Set<Wire.EventType>(webhook?.events ?? ["sent", "delivered", "read", "failed", "received"])

  const webhookEvent = (step: Step, at: number) => {
    const { message, type } = step
    if (delivery === undefined || !subscribed.has(type)) return Effect.void
    const echo = webhook?.echoMetaData !== false && message.metaData !== undefined && type !== "received"
    const data = {
      message_id: type === "received" ? `wamid.in.${message.messageId}` : message.messageId,
      recipient_id: message.recipientId,
      broadcast_id: message.broadcastId,
      ...(type === "received"
        ? { from: message.to, text: "Yes, tell me more", context: { message_id: message.messageId } }
        : { to: message.to, status: type }),
      ...(type === "failed" && message.error !== undefined ? { error: message.error } : {}),
      ...(echo ? { meta_data: message.metaData } : {})
    }
    return delivery.enqueue({
      id: `evt_${++events}`,
      type: `whatsapp.message.${type}`,
      occurred_at: iso(at),
      company_id: "cmp_emulator",
      channel_id: message.sender,
      data
    })
  }

  const apply = (remote: Remote, step: Step, at: number) => {
    const { message, type } = step
    if (remote.startedAt === undefined) {
      remote.startedAt = at
      remote.status = "IN_PROGRESS"
    }
    if (type === "received") message.replied = true
    else message.status = type
    if (type === "sent") remote.sent++
    if (type === "failed") remote.failed++
    if (remote.sent + remote.failed === remote.total && remote.completedAt === undefined) {
      remote.completedAt = at
      remote.status = remote.failed === remote.total ? "FAILED" : "COMPLETED"
    }
    return webhookEvent(step, at)
  }

  // One fiber per remote broadcast walks its merged timeline, applying every step that has fallen due.
  const play = (remote: Remote, steps: ReadonlyArray<Step>) =>
    Effect.gen(function*() {
      let next = 0
      while (next < steps.length) {
        const wait = steps[next]!.at - (yield* Clock.currentTimeMillis)
        if (wait > 0) yield* Effect.sleep(wait)
        const now = yield* Clock.currentTimeMillis
        while (next < steps.length && steps[next]!.at <= now) {
          yield* apply(remote, steps[next]!, steps[next]!.at)
          next++
        }
      }
    })

  const plan = (message: Message, sendAt: number, draw: number, missing: ReadonlyArray<string>): Array<Step> => {
    if (missing.length > 0 || draw < outcomes.failed) {
      message.error = missing.length > 0
        ? { code: "132000", message: `missing template variable ${missing.join(", ")}` }
        : { code: "131026", message: "Message undeliverable" }
      return [{ at: sendAt, message, type: "failed" }]
    }
    const deliveredAt = sendAt + timing.deliveredAfter
    const readAt = deliveredAt + timing.readAfter
    const steps: Array<Step> = [{ at: sendAt, message, type: "sent" }, { at: deliveredAt, message, type: "delivered" }]
    if (draw < outcomes.failed + outcomes.replied + outcomes.read) steps.push({ at: readAt, message, type: "read" })
    if (draw < outcomes.failed + outcomes.replied) {
      steps.push({ at: readAt + timing.repliedAfter, message, type: "received" })
    }
    return steps
  }

  const accept = (request: Wire.BulkRequest, sender: string, now: number) =>
    Effect.gen(function*() {
      const broadcastId = `bk_${String(remotes.size + 1).padStart(6, "0")}`
      const remote: Remote = {
        broadcastId,
        campaignName: request.campaign_name,
        templateName: request.template_name,
        language: request.language,
        sender,
        status: initialStatus,
        total: request.recipients.length,
        sent: 0,
        failed: 0,
        acceptedAt: now,
        startedAt: undefined,
        completedAt: undefined
      }
      remotes.set(broadcastId, remote)
      const startAt = now + timing.startAfter
      const variables = options.templates?.[request.template_name] ?? []
      const steps: Array<Step> = []
      for (const [index, recipient] of request.recipients.entries()) {
        const message: Message = {
          messageId: `msg_${messages.length + 1}`,
          recipientId: `rcp_${messages.length + 1}`,
          broadcastId,
          sender,
          to: recipient.to,
          variables: recipient.variables ?? {},
          metaData: recipient.meta_data,
          status: "pending",
          replied: false,
          error: undefined
        }
        messages.push(message)
        sends.set(recipient.to, (sends.get(recipient.to) ?? 0) + 1)
        const missing = variables.filter((name) => recipient.variables?.[name] === undefined)
        const sendAt = startAt + Math.floor((index * 1000) / timing.messagesPerSecond)
        steps.push(...plan(message, sendAt, yield* Random.next, missing))
      }
      steps.sort((a, b) => a.at - b.at)
      yield* FiberSet.run(lifecycles, play(remote, steps))
      return remote
    }).pipe(Effect.provideService(Random.Random, random))

  // ------------------------------------------------------------------------------------------------------------
  // HTTP

  /** Authenticates the request and charges the token's budget. */
  const admit = (request: HttpServerRequest.HttpServerRequest, now: number): Refused | undefined => {
    const token = bearer.exec(request.headers.authorization ?? "")?.[1]
    const scopes = token === undefined ? undefined : tokens.get(token)
    if (token === undefined || scopes === undefined) {
      return new Refused(401, "unauthorized", "missing, invalid or expired API token")
    }
    const log = spent.get(token) ?? []
    spent.set(token, log)
    const admission = Budget.admit(log, budgets, now)
    if (!admission.ok) {
      const seconds = Math.ceil(admission.retryAfterMillis / 1000)
      return new Refused(429, "rate_limited", "request budget of this token exceeded", {
        "retry-after": String(seconds)
      })
    }
    if (!scopes.includes(Wire.requiredScope)) {
      return new Refused(403, "forbidden", `this token lacks the ${Wire.requiredScope} scope`)
    }
    return undefined
  }

  const validate = (body: string): Refused | { readonly request: Wire.BulkRequest; readonly sender: string } => {
    const decoded = Wire.decodeBulkRequest(body)
    if (decoded._tag === "Failure") return new Refused(400, "invalid_request", decoded.failure.message)
    const request = decoded.success
    const sender = senderField === "phone_number_id"
      ? request.phone_number_id
      : senderField === "channel_id"
      ? request.channel_id
      : request.channel_id ?? request.phone_number_id
    if (sender === undefined) {
      const field = senderField === "either" ? "channel_id" : senderField
      return new Refused(400, "invalid_request", `${field} is required`)
    }
    if (request.recipients.length === 0) {
      return new Refused(400, "invalid_request", "recipients must contain at least 1 item")
    }
    if (request.recipients.length > Wire.maxRecipients) {
      return new Refused(400, "invalid_request", `recipients must contain at most ${Wire.maxRecipients} items`)
    }
    const bad = request.recipients.findIndex((recipient) => !Wire.isE164(recipient.to))
    if (bad !== -1) {
      return new Refused(
        400,
        "invalid_phone_number",
        `recipients[${bad}].to: ${JSON.stringify(request.recipients[bad]!.to)} is not a valid E.164 phone number`
      )
    }
    if (options.templates !== undefined && options.templates[request.template_name] === undefined) {
      return new Refused(400, "template_not_found", `template ${request.template_name} does not exist`)
    }
    return { request, sender }
  }

  const answer = (
    request: HttpServerRequest.HttpServerRequest,
    now: number,
    result: Refused | { readonly status: number; readonly body: unknown },
    recipients?: number
  ) => {
    const path = new URL(request.url, "http://emulator").pathname
    requests.push({ at: now, method: request.method, path, status: result.status, recipients })
    return result instanceof Refused
      ? HttpServerResponse.jsonUnsafe(Wire.errorBody(result.code, result.message), {
        status: result.status,
        headers: result.headers
      })
      : HttpServerResponse.jsonUnsafe(result.body, { status: result.status })
  }

  const postBulk = Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const now = yield* Clock.currentTimeMillis
    const refused = admit(request, now)
    if (refused !== undefined) return answer(request, now, refused)
    const body = yield* request.text
    const valid = validate(body)
    if (valid instanceof Refused) return answer(request, now, valid)
    const remote = yield* accept(valid.request, valid.sender, now)
    return answer(request, now, {
      status: 202,
      body: {
        broadcast_id: remote.broadcastId,
        status: remote.status,
        total_recipients: remote.total,
        scheduled_at: iso(now + timing.startAfter)
      }
    }, remote.total)
  })

  const getBulk = Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const now = yield* Clock.currentTimeMillis
    const refused = admit(request, now)
    if (refused !== undefined) return answer(request, now, refused)
    const id = (yield* HttpRouter.params).id ?? ""
    const remote = remotes.get(id)
    if (remote === undefined) return answer(request, now, new Refused(404, "not_found", `no broadcast ${id}`))
    return answer(request, now, {
      status: 200,
      body: {
        broadcast_id: remote.broadcastId,
        status: remote.status,
        total_recipients: remote.total,
        sent: remote.sent,
        failed: remote.failed,
        pending: remote.total - remote.sent - remote.failed,
        started_at: isoOrNull(remote.startedAt),
        completed_at: isoOrNull(remote.completedAt)
      }
    })
  })

  const app = yield* HttpRouter.toHttpEffect(Layer.mergeAll(
    HttpRouter.add("POST", "/v1/messages/bulk", postBulk),
    HttpRouter.add("GET", "/v1/messages/bulk/:id", getBulk)
  ))
  const server = yield* NodeHttpServer.make(() => createServer(), { port: options.port ?? 0, host: "127.0.0.1" })
  // Spans cost a third of the throughput of a local emulator and tell a test nothing.
  yield* server.serve(app).pipe(Effect.provideService(References.TracerEnabled, false))

  const snapshotMessage = (message: Message): MessageRecord => ({
    messageId: message.messageId,
    broadcastId: message.broadcastId,
    to: message.to,
    variables: message.variables,
    metaData: message.metaData,
    status: message.status,
    replied: message.replied,
    error: message.error
  })

  return KeebaiEmulator.of({
    url: HttpServer.formatAddress(server.address),
    requests: Effect.sync(() => requests.slice()),
    broadcasts: Effect.sync(() => [...remotes.values()].map((remote) => ({ ...remote }))),
    messages: Effect.sync(() => messages.map(snapshotMessage)),
    sendCount: (to) => Effect.sync(() => sends.get(to) ?? 0),
    duplicateSends: Effect.sync(() => new Map([...sends].filter(([, count]) => count > 1))),
    setTokens: (next) =>
      Effect.sync(() => {
        tokens = new Map(next.map((t) => [t.token, t.scopes ?? [Wire.requiredScope]]))
      }),
    webhookAttempts: delivery === undefined ? Effect.succeed([]) : delivery.attempts,
    idle: Effect.andThen(FiberSet.awaitEmpty(lifecycles), delivery === undefined ? Effect.void : delivery.idle)
  })
})

/** The emulator for the life of the layer. */
export const layer = (options?: Options): Layer.Layer<KeebaiEmulator, HttpServerError.ServeError> =>
  Layer.effect(KeebaiEmulator, make(options))
