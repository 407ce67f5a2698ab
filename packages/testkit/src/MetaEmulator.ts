/**
 * A local Graph API for the WhatsApp Cloud API's template sends, on 127.0.0.1, both as Meta serves it and as
 * Kapso's Meta proxy does:
 *
 * | base                                 | credential                        |
 * |--------------------------------------|-----------------------------------|
 * | `{url}/v24.0`                        | `Authorization: Bearer <token>`   |
 * | `{url}/meta/whatsapp/v24.0`          | `X-API-Key: <key>`                |
 *
 * `POST /{phone_number_id}/messages` and `/marketing_messages` answer like Meta:
 * - a bad credential is refused (401: Meta's error 190, Kapso's own `{ error }`), an unknown phone number id is
 *   error 100 subcode 33;
 * - every number has a throughput (default 80 per second, inbound messages included): past it, 130429; each
 *   (number, user) pair gets one message per 6 s, with bursts borrowing ahead: past it, 131056;
 * - the message must fit a registered template: unknown name or language 132001, paused 132015, disabled 132016,
 *   wrong parameter count 132000, wrong format 132012, a missing parameter 131008;
 * - each recipient meets a configurable outcome (by address, by a deterministic share, or the default): delivered,
 *   read, replied, held (`held_for_quality_assessment`, then failed 132015), or failed with a code, at send time or
 *   later by webhook.
 *
 * Accepted messages live their lifecycle on the Effect `Clock` (delays drawn from the Effect `Random`), and each
 * status goes out as a webhook signed like Meta's (`X-Hub-Signature-256`) through `WebhookDelivery`: random delays
 * (so out of order), some twice, retried. Replies go out as inbound `messages` webhooks and count against the
 * number's throughput. Answers to chosen addresses can come late (`lateAnswers`), after the message went out. Every
 * request and every message is recorded for assertions.
 */
import * as Address from "@crier/core/Address"
import type * as TemplateSpec from "@crier/core/TemplateSpec"
import { NodeHttpClient, NodeHttpServer } from "@effect/platform-node"
import { Clock, Context, Duration, Effect, FiberSet, Layer, Random, Result } from "effect"
import { HttpClient, HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "effect/http"
import { createHash, createHmac } from "node:crypto"
import { createServer } from "node:http"
import * as MetaLimits from "./internal/metaLimits.ts"
import * as MetaWire from "./internal/metaWire.ts"
import * as WebhookDelivery from "./WebhookDelivery.ts"

export const defaultPhoneNumberId = "100000000000001"
export const defaultAccessToken = "meta-emulator-token"
export const defaultKapsoApiKey = "kapso-emulator-key"
export const graphVersion = "v24.0"

export type TemplateStatus = "APPROVED" | "PAUSED" | "DISABLED"

export interface Template {
  readonly spec: TemplateSpec.TemplateSpec
  /** Default APPROVED. */
  readonly status?: TemplateStatus | undefined
}

export interface PhoneNumber {
  readonly id: string
  /** Default: digits derived from the id. */
  readonly displayPhoneNumber?: string | undefined
  /** Messages per second, inbound included. Default: the emulator's `throughput`. */
  readonly throughput?: number | undefined
}

export type Outcome =
  | { readonly _tag: "Sent" }
  | { readonly _tag: "Delivered" }
  | { readonly _tag: "Read" }
  | { readonly _tag: "Replied"; readonly text: string }
  /** Accepted as `held_for_quality_assessment`, then failed 132015. */
  | { readonly _tag: "Held" }
  | { readonly _tag: "Failed"; readonly code: number; readonly at: "send" | "webhook" }

export const sent: Outcome = { _tag: "Sent" }
export const delivered: Outcome = { _tag: "Delivered" }
export const read: Outcome = { _tag: "Read" }
export const held: Outcome = { _tag: "Held" }
export const replied = (text = "Yes, tell me more"): Outcome => ({ _tag: "Replied", text })
/** 131026, 131049, 131050, …: by webhook (Meta's usual way) unless `at: "send"`. */
export const failed = (code: number, at: "send" | "webhook" = "webhook"): Outcome => ({ _tag: "Failed", code, at })

export interface Range {
  readonly min: Duration.Input
  readonly max: Duration.Input
}

/** How long each step of a lifecycle takes after the one before it. */
export interface Timing {
  readonly sent?: Range | undefined
  readonly delivered?: Range | undefined
  readonly read?: Range | undefined
  readonly replied?: Range | undefined
  /** A failure by webhook, and a held message's 132015. */
  readonly failed?: Range | undefined
}

export interface Webhook extends Omit<WebhookDelivery.Options, "sign"> {
  /** The Meta app secret that signs every body. */
  readonly appSecret: string
  /**
   * Statuses of one number that happen within `window` of the first go out in one webhook, up to `size` of them, as
   * Meta batches status updates under load. Default: one status per webhook.
   */
  readonly batch?: { readonly size: number; readonly window: Duration.Input } | undefined
}

export interface Options {
  /** Default 0: an ephemeral port. */
  readonly port?: number | undefined
  /** Default 127.0.0.1. */
  readonly host?: string | undefined
  readonly accessToken?: string | undefined
  readonly kapsoApiKey?: string | undefined
  /** Default: one number, `defaultPhoneNumberId`. */
  readonly phoneNumbers?: ReadonlyArray<PhoneNumber> | undefined
  readonly templates?: ReadonlyArray<Template> | undefined
  /** Messages per second per number, inbound included. Default 80. */
  readonly throughput?: number | undefined
  /** Default one message per 6 s per pair, bursts of 45. */
  readonly pairRate?: { readonly every?: Duration.Input | undefined; readonly burst?: number | undefined } | undefined
  readonly outcomes?: {
    /** Default `delivered`. */
    readonly default?: Outcome | undefined
    /** Deterministic shares by a hash of the address: the same address always meets the same outcome. */
    readonly mix?: ReadonlyArray<{ readonly share: number; readonly outcome: Outcome }> | undefined
    readonly byAddress?: ReadonlyMap<string, Outcome> | undefined
  } | undefined
  readonly timing?: Timing | undefined
  /** How long each API answer takes. */
  readonly latency?: Duration.Input | undefined
  /**
   * The first send to each of these addresses is accepted (and lives its lifecycle, webhooks included) but answered
   * only after `after`: a client that gives up sooner cannot know the message went out. Later sends are answered as
   * usual.
   */
  readonly lateAnswers?: {
    readonly addresses: ReadonlySet<string>
    readonly after: Duration.Input
  } | undefined
  /** Where status and inbound webhooks go. None: they are recorded, not sent. */
  readonly webhook?: Webhook | undefined
  /** The WhatsApp Business Account id in webhooks. */
  readonly wabaId?: string | undefined
}

export type Api = "graph" | "kapso"

export interface RecordedRequest {
  /** Epoch millis on the Effect `Clock`, when the request was read. */
  readonly at: number
  readonly method: string
  readonly path: string
  readonly api: Api | undefined
  readonly phoneNumberId: string | undefined
  readonly endpoint: string | undefined
  /** The JSON body, or the raw text when it is not JSON. */
  readonly body: unknown
  readonly status: number
  /** Meta's error code of the answer, if it was one. */
  readonly errorCode: number | undefined
  readonly wamid: string | undefined
}

export type Final = "sent" | "delivered" | "read" | "replied" | "failed"

export interface StatusSent {
  readonly status: "sent" | "delivered" | "read" | "failed"
  readonly at: number
  readonly code?: number | undefined
}

export interface SentMessage {
  readonly wamid: string
  readonly phoneNumberId: string
  /** The address as the request named it: `to` (without a leading "+" as Meta normalizes it) or `recipient`. */
  readonly address: Address.Address
  readonly callbackData: string | undefined
  readonly template: { readonly name: string; readonly language: string }
  readonly endpoint: string
  readonly acceptedAt: number
  readonly outcome: Outcome
  /** Where its lifecycle ends, and the code when that is `failed`. */
  readonly final: Final
  readonly code: number | undefined
  /** Statuses emitted so far, in order. */
  readonly statuses: ReadonlyArray<StatusSent>
}

export interface Inbound {
  readonly from: Address.Address
  readonly text: string
  /** Default: the first phone number. */
  readonly phoneNumberId?: string | undefined
  /** The wamid it replies to. */
  readonly replyTo?: string | undefined
}

export interface MetaEmulator {
  /** `http://127.0.0.1:<port>` */
  readonly url: string
  /** Meta's base: `{url}/v24.0`. */
  readonly graphUrl: string
  /** Kapso's Meta proxy base: `{url}/meta/whatsapp/v24.0`. */
  readonly kapsoUrl: string
  readonly accessToken: string
  readonly kapsoApiKey: string
  readonly requests: Effect.Effect<ReadonlyArray<RecordedRequest>>
  readonly messages: Effect.Effect<ReadonlyArray<SentMessage>>
  readonly setTemplateStatus: (name: string, language: string, status: TemplateStatus) => Effect.Effect<void>
  readonly setOutcome: (address: Address.Address, outcome: Outcome) => Effect.Effect<void>
  /** A message from a user to a business number: a `messages` webhook, counted against the number's throughput. */
  readonly sendInbound: (inbound: Inbound) => Effect.Effect<void>
  /** Every webhook copy and every attempt to deliver one (empty without `webhook`). */
  readonly webhooks: {
    readonly deliveries: Effect.Effect<ReadonlyArray<WebhookDelivery.Delivery>>
    readonly attempts: Effect.Effect<ReadonlyArray<WebhookDelivery.Attempt>>
  }
  /** Waits until every lifecycle has run its course and every webhook was delivered or given up. */
  readonly idle: Effect.Effect<void>
}

const defaultTiming = {
  sent: { min: Duration.millis(100), max: Duration.millis(500) },
  delivered: { min: Duration.millis(200), max: Duration.seconds(2) },
  read: { min: Duration.seconds(1), max: Duration.seconds(5) },
  replied: { min: Duration.seconds(2), max: Duration.seconds(10) },
  failed: { min: Duration.millis(200), max: Duration.seconds(2) }
} satisfies Required<Timing>

// An even spread of addresses over [0, 1), stable across runs.
const unitHash = (key: string): number => createHash("sha256").update(key).digest().readUInt32BE(0) / 0x1_0000_0000

const finalOf = (outcome: Outcome): Final => {
  switch (outcome._tag) {
    case "Sent":
      return "sent"
    case "Delivered":
      return "delivered"
    case "Read":
      return "read"
    case "Replied":
      return "replied"
    case "Held":
    case "Failed":
      return "failed"
  }
}

const PATH = /^(?<kapso>\/meta\/whatsapp)?\/(?<version>v\d+\.\d+)\/(?<id>[^/]+)\/(?<endpoint>[^/]+)\/?$/
const BSUID = /^[A-Z]{2}\.(?:ENT\.)?\d{5,}$/
const DIGITS = /^\+?\d{7,15}$/

interface Draft {
  status: number
  errorCode: number | undefined
  wamid: string | undefined
  body: unknown
  /** The answer waits this long (`lateAnswers`). */
  late: Duration.Input | undefined
}

interface MutableMessage extends Omit<SentMessage, "statuses"> {
  readonly statuses: Array<StatusSent>
}

export const make = Effect.fn("MetaEmulator.make")(function*(options: Options = {}) {
  const accessToken = options.accessToken ?? defaultAccessToken
  const kapsoApiKey = options.kapsoApiKey ?? defaultKapsoApiKey
  const wabaId = options.wabaId ?? "200000000000001"
  const phoneNumbers = options.phoneNumbers ?? [{ id: defaultPhoneNumberId }]
  const limits = new Map(
    phoneNumbers.map((number) => [number.id, MetaLimits.throughput(number.throughput ?? options.throughput ?? 80)])
  )
  const pairs = MetaLimits.pairRate({
    everyMillis: Duration.toMillis(options.pairRate?.every ?? Duration.seconds(6)),
    burst: options.pairRate?.burst ?? 45
  })
  const templates = new Map(
    (options.templates ?? []).map((template) => [
      `${template.spec.name}:${template.spec.language}`,
      { spec: template.spec, status: template.status ?? "APPROVED" }
    ])
  )
  const outcomes = new Map(options.outcomes?.byAddress ?? [])
  const lateAddresses = new Set(options.lateAnswers?.addresses)
  const timing: Required<{ [K in keyof Timing]: Range }> = {
    sent: options.timing?.sent ?? defaultTiming.sent,
    delivered: options.timing?.delivered ?? defaultTiming.delivered,
    read: options.timing?.read ?? defaultTiming.read,
    replied: options.timing?.replied ?? defaultTiming.replied,
    failed: options.timing?.failed ?? defaultTiming.failed
  }
  const requests: Array<RecordedRequest> = []
  const messages = new Map<string, MutableMessage>()
  const lifecycles = yield* FiberSet.make<void, never>()
  let counter = 0

  const clientContext = yield* Layer.build(NodeHttpClient.layerUndici)
  const delivery = options.webhook === undefined ? undefined : yield* WebhookDelivery.make({
    ...options.webhook,
    sign: (body) => ({
      "x-hub-signature-256": `sha256=${createHmac("sha256", options.webhook!.appSecret).update(body).digest("hex")}`
    })
  }).pipe(Effect.provideService(HttpClient.HttpClient, Context.get(clientContext, HttpClient.HttpClient)))

  const displayOf = (phoneNumberId: string) =>
    phoneNumbers.find((number) => number.id === phoneNumberId)?.displayPhoneNumber ??
      `1555${phoneNumberId.replace(/\D/g, "").slice(-7).padStart(7, "0")}`

  const envelope = (phoneNumberId: string, value: object) => ({
    object: "whatsapp_business_account",
    entry: [{
      id: wabaId,
      changes: [{
        field: "messages",
        value: {
          messaging_product: "whatsapp",
          metadata: { display_phone_number: displayOf(phoneNumberId), phone_number_id: phoneNumberId },
          ...value
        }
      }]
    }]
  })

  const post = (payload: unknown) => delivery === undefined ? Effect.void : delivery.enqueue(payload)

  const batching = options.webhook?.batch
  const batches = new Map<string, Array<object>>()

  // Sends this batch of the number's statuses, unless it already went (full before its window ran out).
  const flush = (phoneNumberId: string, batch: Array<object>) =>
    Effect.suspend(() => {
      if (batches.get(phoneNumberId) !== batch) return Effect.void
      batches.delete(phoneNumberId)
      return post(envelope(phoneNumberId, { statuses: batch }))
    })

  const postStatus = (phoneNumberId: string, status: object) =>
    Effect.suspend(() => {
      if (batching === undefined) return post(envelope(phoneNumberId, { statuses: [status] }))
      const open = batches.get(phoneNumberId)
      if (open !== undefined) {
        open.push(status)
        return open.length >= batching.size ? flush(phoneNumberId, open) : Effect.void
      }
      const batch = [status]
      batches.set(phoneNumberId, batch)
      return Effect.asVoid(
        FiberSet.run(lifecycles, Effect.andThen(Effect.sleep(batching.window), flush(phoneNumberId, batch)))
      )
    })

  const seconds = (millis: number) => String(Math.floor(millis / 1000))

  const waIdOf = (address: Address.Address) => address.replace(/^\+/, "")

  const emitStatus = (message: MutableMessage, status: StatusSent["status"], code?: number) =>
    Effect.gen(function*() {
      const at = yield* Clock.currentTimeMillis
      message.statuses.push(code === undefined ? { status, at } : { status, at, code })
      const error = code === undefined ? undefined : MetaWire.errorOf(code)
      yield* postStatus(message.phoneNumberId, {
        id: message.wamid,
        status,
        timestamp: seconds(at),
        ...(Address.kind(message.address) === "phone"
          ? { recipient_id: waIdOf(message.address) }
          : { recipient_user_id: message.address }),
        ...(message.callbackData === undefined ? {} : { biz_opaque_callback_data: message.callbackData }),
        ...(status === "failed" ? {} : {
          pricing: { billable: true, pricing_model: "PMP", category: "marketing" }
        }),
        ...(error === undefined ? {} : {
          errors: [{
            code: error.code,
            title: error.message,
            message: error.message,
            error_data: { details: error.details }
          }]
        })
      })
    })

  const sendInbound = (inbound: Inbound) =>
    Effect.gen(function*() {
      const phoneNumberId = inbound.phoneNumberId ?? phoneNumbers[0]!.id
      const at = yield* Clock.currentTimeMillis
      limits.get(phoneNumberId)?.record(at)
      yield* post(envelope(phoneNumberId, {
        contacts: [{ profile: { name: "Emulated user" }, wa_id: waIdOf(inbound.from) }],
        messages: [{
          ...(Address.kind(inbound.from) === "phone" ? { from: waIdOf(inbound.from) } : { from_user_id: inbound.from }),
          id: `wamid.IN${String(++counter).padStart(10, "0")}`,
          timestamp: seconds(at),
          type: "text",
          text: { body: inbound.text },
          ...(inbound.replyTo === undefined ? {} : { context: { from: displayOf(phoneNumberId), id: inbound.replyTo } })
        }]
      }))
    })

  const pause = (range: Range) =>
    Effect.flatMap(Random.next, (x) => {
      const min = Duration.toMillis(range.min)
      return Effect.sleep(min + x * (Duration.toMillis(range.max) - min))
    })

  const lifecycle = (message: MutableMessage): Effect.Effect<void> => {
    const outcome = message.outcome
    switch (outcome._tag) {
      case "Held":
        return Effect.andThen(pause(timing.failed), emitStatus(message, "failed", 132015))
      case "Failed":
        return Effect.andThen(pause(timing.failed), emitStatus(message, "failed", outcome.code))
      default: {
        const steps: Array<Effect.Effect<void>> = [Effect.andThen(pause(timing.sent), emitStatus(message, "sent"))]
        if (outcome._tag !== "Sent") {
          steps.push(Effect.andThen(pause(timing.delivered), emitStatus(message, "delivered")))
        }
        if (outcome._tag === "Read" || outcome._tag === "Replied") {
          steps.push(Effect.andThen(pause(timing.read), emitStatus(message, "read")))
        }
        if (outcome._tag === "Replied") {
          steps.push(Effect.andThen(
            pause(timing.replied),
            sendInbound({
              from: message.address,
              text: outcome.text,
              phoneNumberId: message.phoneNumberId,
              replyTo: message.wamid
            })
          ))
        }
        return Effect.asVoid(Effect.all(steps, { discard: true }))
      }
    }
  }

  const outcomeOf = (address: Address.Address): Outcome => {
    const byAddress = outcomes.get(address)
    if (byAddress !== undefined) return byAddress
    const x = unitHash(address)
    let upTo = 0
    for (const { outcome, share } of options.outcomes?.mix ?? []) {
      upTo += share
      if (x < upTo) return outcome
    }
    return options.outcomes?.default ?? delivered
  }

  const graphFailure = (draft: Draft, error: MetaWire.GraphError, status = 400) => {
    draft.status = status
    draft.errorCode = error.code
    draft.body = MetaWire.errorBody(error, `Aemu${String(++counter).padStart(8, "0")}`)
  }

  /** The recipient's address as the request names it, or why it is refused. */
  const addressOf = (request: MetaWire.SendRequest): Result.Result<Address.Address, MetaWire.GraphError> => {
    // Meta: when both are given, `to` wins.
    if (request.to !== undefined) {
      const parsed = DIGITS.test(request.to) ? Address.parse(`+${request.to.replace(/^\+/, "")}`) : undefined
      return parsed !== undefined && Result.isSuccess(parsed)
        ? Result.succeed(parsed.success)
        : Result.fail(MetaWire.errors.invalidValue(`to: ${request.to} is not a WhatsApp phone number`))
    }
    if (request.recipient !== undefined) {
      const parsed = BSUID.test(request.recipient) ? Address.parse(request.recipient) : undefined
      return parsed !== undefined && Result.isSuccess(parsed)
        ? Result.succeed(parsed.success)
        : Result.fail(MetaWire.errors.invalidValue(`recipient: ${request.recipient} is not a BSUID`))
    }
    return Result.fail(MetaWire.errors.invalidParameter("to or recipient is required"))
  }

  /** One send, from an authorized request to a known number. */
  const send = (draft: Draft, phoneNumberId: string, endpoint: string, text: string) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      if (!limits.get(phoneNumberId)!.admit(now)) return graphFailure(draft, MetaWire.errors.throughput)
      const decoded = MetaWire.decodeSendRequest(text)
      if (Result.isFailure(decoded)) {
        return graphFailure(draft, MetaWire.errors.invalidParameter(decoded.failure.message))
      }
      const request = decoded.success
      const address = addressOf(request)
      if (Result.isFailure(address)) return graphFailure(draft, address.failure)
      const { language, name } = request.template
      const template = templates.get(`${name}:${language.code}`)
      if (template === undefined) return graphFailure(draft, MetaWire.errors.noTemplate(name, language.code))
      if (template.status === "PAUSED") return graphFailure(draft, MetaWire.errors.paused)
      if (template.status === "DISABLED") return graphFailure(draft, MetaWire.errors.disabled)
      const fits = MetaWire.checkComponents(template.spec, request.template.components ?? [])
      if (Result.isFailure(fits)) return graphFailure(draft, fits.failure)
      if (!pairs.take(`${phoneNumberId}:${address.success}`, now)) {
        return graphFailure(draft, MetaWire.errors.pairRate)
      }
      const outcome = outcomeOf(address.success)
      if (outcome._tag === "Failed" && outcome.at === "send") {
        return graphFailure(draft, MetaWire.errorOf(outcome.code))
      }
      const wamid = `wamid.EMU${String(++counter).padStart(10, "0")}`
      const message: MutableMessage = {
        wamid,
        phoneNumberId,
        address: address.success,
        callbackData: request.biz_opaque_callback_data,
        template: { name, language: language.code },
        endpoint,
        acceptedAt: now,
        outcome,
        final: finalOf(outcome),
        code: outcome._tag === "Failed" ? outcome.code : outcome._tag === "Held" ? 132015 : undefined,
        statuses: []
      }
      messages.set(wamid, message)
      yield* FiberSet.run(lifecycles, lifecycle(message))
      if (lateAddresses.delete(address.success)) draft.late = options.lateAnswers?.after
      const phone = Address.kind(address.success) === "phone"
      draft.status = 200
      draft.wamid = wamid
      draft.body = {
        messaging_product: "whatsapp",
        contacts: [
          phone
            ? { input: request.to, wa_id: waIdOf(address.success) }
            : { input: request.recipient, user_id: address.success }
        ],
        messages: [{ id: wamid, message_status: outcome._tag === "Held" ? "held_for_quality_assessment" : "accepted" }]
      }
    })

  const handle = Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    if (options.latency !== undefined) yield* Effect.sleep(options.latency)
    const at = yield* Clock.currentTimeMillis
    const path = request.url.split("?")[0] ?? ""
    const text = yield* Effect.orElseSucceed(request.text, () => "")
    const route = PATH.exec(path)?.groups
    const api: Api | undefined = route === undefined ? undefined : route.kapso === undefined ? "graph" : "kapso"
    const draft: Draft = {
      status: 404,
      errorCode: undefined,
      wamid: undefined,
      body: { error: "not found" },
      late: undefined
    }
    const endpoint = route?.endpoint
    if (
      route !== undefined && request.method === "POST" && (endpoint === "messages" || endpoint === "marketing_messages")
    ) {
      const phoneNumberId = decodeURIComponent(route.id!)
      if (api === "kapso" && request.headers["x-api-key"] !== kapsoApiKey) {
        draft.status = 401
        draft.body = { error: "Invalid API key" }
      } else if (api === "graph" && request.headers["authorization"] !== `Bearer ${accessToken}`) {
        graphFailure(draft, MetaWire.errors.invalidToken, 401)
      } else if (!limits.has(phoneNumberId)) {
        graphFailure(draft, MetaWire.errors.unknownObject(phoneNumberId))
      } else {
        yield* send(draft, phoneNumberId, endpoint, text)
      }
    }
    requests.push({
      at,
      method: request.method,
      path,
      api,
      phoneNumberId: route?.id,
      endpoint,
      body: Result.getOrElse(MetaWire.decodeJson(text), () => text),
      status: draft.status,
      errorCode: draft.errorCode,
      wamid: draft.wamid
    })
    if (draft.late !== undefined) yield* Effect.sleep(draft.late)
    return HttpServerResponse.jsonUnsafe(draft.body, { status: draft.status })
  })

  const serverContext = yield* Layer.build(
    HttpRouter.serve(HttpRouter.add("*", "*", handle), { disableLogger: true, disableListenLog: true }).pipe(
      Layer.provideMerge(
        NodeHttpServer.layer(() => createServer(), { port: options.port ?? 0, host: options.host ?? "127.0.0.1" })
      )
    )
  )
  const url = HttpServer.formatAddress(Context.get(serverContext, HttpServer.HttpServer).address)

  return {
    url,
    graphUrl: `${url}/${graphVersion}`,
    kapsoUrl: `${url}/meta/whatsapp/${graphVersion}`,
    accessToken,
    kapsoApiKey,
    requests: Effect.sync(() => requests.slice()),
    messages: Effect.sync(() =>
      Array.from(messages.values(), (message) => ({ ...message, statuses: message.statuses.slice() }))
    ),
    setTemplateStatus: (name, language, status) =>
      Effect.sync(() => {
        const template = templates.get(`${name}:${language}`)
        if (template !== undefined) template.status = status
      }),
    setOutcome: (address, outcome) => Effect.sync(() => void outcomes.set(address, outcome)),
    sendInbound,
    webhooks: {
      deliveries: delivery?.deliveries ?? Effect.succeed([]),
      attempts: delivery?.attempts ?? Effect.succeed([])
    },
    idle: Effect.andThen(FiberSet.awaitEmpty(lifecycles), delivery?.idle ?? Effect.void)
  } satisfies MetaEmulator
})

/** For a `layer` consumer: the emulator as a service. */
export class Emulator extends Context.Service<Emulator, MetaEmulator>()("@crier/testkit/MetaEmulator") {}

export const layer = (options?: Options) => Layer.effect(Emulator, make(options))
