/**
 * A local HTTP emulator of Kapso's v1 API (`/api/v1`), as its OpenAPI specs describe it (PROVIDERS.md, "Kapso"):
 *
 * - `X-API-Key` auth: 401 without the key;
 * - broadcasts: `POST /whatsapp_broadcasts` (422 for an unknown or non-production config, a template not linked to
 *   it, or not approved), `GET /whatsapp_broadcasts[/{id}]` (counters, `response_rate`), `POST …/recipients` (only
 *   while draft, at most 1,000, numbers normalized to E.164 without `+`, duplicates skipped and counted, and
 *   "Recipient N: invalid phone number format" / "Recipient N: template parameters invalid - …" errors, counting N
 *   from `errorIndexBase`), `GET …/recipients` (paginated, `per_page` ≤ 100), `POST …/send` (202; 422 when already
 *   sending, already completed, or empty);
 * - templates: `GET /whatsapp_templates` (filters `q[name_cont]`, `q[language_code_eq]`, `whatsapp_config_id`) and
 *   `POST /whatsapp_templates/{id}/send_template` (404 for an unknown template, 422 for bad parameters or number);
 * - sending is asynchronous: recipients get their turn `batchSize` at a time, one `interval` apart, then fail (with
 *   a Meta code) or are sent, delivered, read and answered by their fate (`Outcomes`); template sends play the
 *   same steps as signed v2 webhooks (`webhooks`, and POSTed to `webhook.url` when given);
 * - a request budget: past `budget.limit` requests in a window, 429 with `Retry-After` (or without, if told).
 *
 * Everything runs on the Effect `Clock` (a test on `TestClock` moves sending along by adjusting it). It serves on
 * 127.0.0.1, an ephemeral port by default, for as long as its scope lives, and shows what it received.
 */
import { NodeHttpClient, NodeHttpServer } from "@effect/platform-node"
import { Clock, Context, Duration, Effect, FiberSet, Layer, PubSub, Random, Result, Schema, Stream } from "effect"
import { HttpRouter, HttpServer, type HttpServerError, HttpServerRequest, HttpServerResponse } from "effect/http"
import { createServer } from "node:http"
import * as Model from "./internal/kapsoModel.ts"
import * as Hook from "./internal/kapsoWebhook.ts"
import * as WebhookDelivery from "./WebhookDelivery.ts"

export type { ConfigInput, Fate, Outcomes, TemplateInput, Timing } from "./internal/kapsoModel.ts"

export interface Budget {
  /** Requests allowed per window (every request counts). */
  readonly limit: number
  readonly window: Duration.Input
  /** Send `Retry-After` with the 429 (seconds until the window ends). Default true. */
  readonly retryAfter?: boolean | undefined
}

export interface Webhook extends Omit<WebhookDelivery.Options, "url" | "sign"> {
  readonly url: string
}

export interface Behaviour {
  readonly outcomes?: Model.Outcomes | undefined
  readonly timing?: Model.Timing | undefined
  readonly budget?: Budget | undefined
  /** How add errors number recipients: "Recipient 0" is the first (0) or "Recipient 1" is (1). Default 1. */
  readonly errorIndexBase?: 0 | 1 | undefined
}

export interface Options extends Behaviour {
  /** Default 0: an ephemeral port. */
  readonly port?: number | undefined
  /** Default `defaultApiKey`. */
  readonly apiKey?: string | undefined
  readonly configs?: ReadonlyArray<Model.ConfigInput> | undefined
  readonly templates?: ReadonlyArray<Model.TemplateInput> | undefined
  /** Signs webhooks. Default `defaultWebhookSecret`. */
  readonly webhookSecret?: string | undefined
  /** Where template-send webhooks are POSTed; without it they are only in `webhooks`. */
  readonly webhook?: Webhook | undefined
}

export const defaultApiKey = "kapso-emulator-api-key"
export const defaultWebhookSecret = "kapso-emulator-webhook-secret"

/** One request as the emulator answered it. */
export interface RequestRecord {
  /** Epoch millis on the Effect `Clock`. */
  readonly at: number
  readonly method: string
  readonly path: string
  readonly query: Readonly<Record<string, string>>
  readonly headers: Readonly<Record<string, string>>
  /** The parsed JSON body, if any. */
  readonly body: unknown
  readonly status: number
}

export interface RecipientRecord {
  readonly id: string
  readonly broadcastId: string
  /** E.164 digits without `+`. */
  readonly phone: string
  readonly parameters: unknown
  /** What the emulator decided for it (at `send`); none while draft. */
  readonly fate: Model.Fate | undefined
  /** As seen now. */
  readonly view: Model.RecipientView
}

export interface BroadcastRecord {
  readonly id: string
  readonly name: string
  readonly configId: string
  readonly templateId: string
  readonly status: Model.BroadcastStatus
  readonly counts: Model.Counts
  readonly startedAt: number | undefined
  /** When it completes (or completed), once sent. */
  readonly completesAt: number | undefined
}

export interface TemplateSendRecord {
  readonly wamid: string
  readonly templateId: string
  readonly phone: string
  readonly parameters: unknown
  readonly configId: string | undefined
  readonly at: number
  readonly fate: Model.Fate
}

/** One webhook as Kapso would deliver it: the raw body and the headers that sign it. */
export interface WebhookRecord {
  readonly event: Hook.Event
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
}

export class KapsoEmulator extends Context.Service<KapsoEmulator, {
  /** The API base, e.g. `http://127.0.0.1:41234/api/v1`: the transports' `baseUrl`. */
  readonly url: string
  readonly apiKey: string
  readonly webhookSecret: string
  readonly configs: ReadonlyArray<Model.Config>
  readonly templates: ReadonlyArray<Model.Template>
  /** Every request answered, in order. */
  readonly requests: Effect.Effect<ReadonlyArray<RequestRecord>>
  readonly broadcasts: Effect.Effect<ReadonlyArray<BroadcastRecord>>
  /** A broadcast's recipients in the order they were added, with their fates and their state now. */
  readonly recipients: (broadcastId: string) => Effect.Effect<ReadonlyArray<RecipientRecord>>
  readonly templateSends: Effect.Effect<ReadonlyArray<TemplateSendRecord>>
  /** Template-send webhooks from the first one, then live: a late subscriber misses nothing. */
  readonly webhooks: Stream.Stream<WebhookRecord>
  /** Changes outcomes, timing, budget or error numbering from now on (broadcasts already sent keep theirs). */
  readonly setBehaviour: (behaviour: Behaviour) => Effect.Effect<void>
  /** Until every template send has played its steps and every webhook POST was delivered or given up. */
  readonly idle: Effect.Effect<void>
}>()("@crier/testkit/KapsoEmulator") {}

const json = (status: number, body: unknown, headers?: Readonly<Record<string, string>>) =>
  HttpServerResponse.jsonUnsafe(body, headers === undefined ? { status } : { status, headers })

class Refused {
  readonly status: number
  readonly error: string
  readonly headers: Readonly<Record<string, string>> | undefined
  constructor(status: number, error: string, headers?: Readonly<Record<string, string>>) {
    this.status = status
    this.error = error
    this.headers = headers
  }
}

interface Answer {
  readonly status: number
  readonly body: unknown
  /** Runs in the background once the answer is decided (a template send's webhooks). */
  readonly after?: Effect.Effect<void> | undefined
}

interface Call {
  readonly now: number
  readonly params: Readonly<Record<string, string | undefined>>
  readonly query: URLSearchParams
  readonly body: unknown
}

const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const text = (value: unknown): string | undefined =>
  typeof value === "string" && value.trim() !== "" ? value : undefined

const decodeJson = Schema.decodeUnknownResult(Schema.fromJsonString(Schema.Unknown))

export const make = Effect.fn("KapsoEmulator.make")(function*(options: Options = {}) {
  const apiKey = options.apiKey ?? defaultApiKey
  const secret = options.webhookSecret ?? defaultWebhookSecret
  // One random prefix per emulator, so ids never collide across emulators in one process.
  const instance = (yield* Random.nextIntBetween(0, 0xffff_ffff)).toString(16).padStart(8, "0")
  let ids = 0
  const uuid = () =>
    `${instance}-${(++ids).toString(16).padStart(4, "0").slice(-4)}-4000-8000-${ids.toString(16).padStart(12, "0")}`

  let behaviour: Behaviour = options
  let window = { index: -1, used: 0 }
  const requests: Array<RequestRecord> = []
  const broadcasts = new Map<string, Model.Broadcast>()
  const sends: Array<TemplateSendRecord> = []
  const webhookLog: Array<WebhookRecord> = []
  const pubsub = yield* PubSub.unbounded<{ readonly index: number; readonly record: WebhookRecord }>()
  yield* Effect.addFinalizer(() => PubSub.shutdown(pubsub))
  const lifecycles = yield* FiberSet.make<void, never>()

  const configs: ReadonlyArray<Model.Config> = (options.configs ?? []).map((config, index) => ({
    id: config.id,
    production: config.production ?? true,
    phoneNumberId: config.phoneNumberId ?? String(100_000_000_000_001 + index)
  }))
  const templates: ReadonlyArray<Model.Template> = (options.templates ?? []).map((template) => ({
    id: template.id ?? uuid(),
    name: template.name,
    language: template.language,
    status: template.status ?? "approved",
    category: template.category ?? "MARKETING",
    body: template.body,
    header: template.header ?? "none",
    configIds: template.configIds ?? configs.map((config) => config.id)
  }))
  const configById = new Map(configs.map((config) => [config.id, config]))
  const templateById = new Map(templates.map((template) => [template.id, template]))

  // The event name is not in a v2 body: the headers are found by the body, which is unique per delivery.
  const headersByBody = new Map<string, Readonly<Record<string, string>>>()
  const delivery = options.webhook === undefined ? undefined : yield* WebhookDelivery.make({
    ...options.webhook,
    sign: (body) => headersByBody.get(body) ?? {}
  }).pipe(Effect.provide(NodeHttpClient.layerUndici))

  // -------------------------------------------------------------------------------------------------------------
  // Admission: the request budget, then the API key

  const admit = (request: HttpServerRequest.HttpServerRequest, now: number): Refused | undefined => {
    const budget = behaviour.budget
    if (budget !== undefined) {
      const size = Math.max(1, Duration.toMillis(budget.window))
      const index = Math.floor(now / size)
      if (index !== window.index) window = { index, used: 0 }
      if (window.used >= budget.limit) {
        const wait = Math.max(1, Math.ceil(((index + 1) * size - now) / 1000))
        return new Refused(
          429,
          "Rate limit exceeded",
          budget.retryAfter === false ? undefined : { "retry-after": String(wait) }
        )
      }
      window.used++
    }
    const key = request.headers["x-api-key"]
    if (key === undefined || key === "") return new Refused(401, "API key is required")
    if (key !== apiKey) return new Refused(401, "Invalid API key")
    return undefined
  }

  const readBody = (request: HttpServerRequest.HttpServerRequest) =>
    Effect.map(
      request.method === "GET" ? Effect.succeed("") : Effect.orElseSucceed(request.text, () => ""),
      (raw): { readonly ok: boolean; readonly value: unknown } => {
        if (raw.trim() === "") return { ok: true, value: undefined }
        const parsed = decodeJson(raw)
        return Result.isSuccess(parsed) ? { ok: true, value: parsed.success } : { ok: false, value: undefined }
      }
    )

  /** One endpoint: admission, body, the handler's answer, and the record of it all. */
  const endpoint = (handler: (call: Call) => Answer | Refused) =>
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const params = yield* HttpRouter.params
      const now = yield* Clock.currentTimeMillis
      const url = new URL(request.url, "http://emulator")
      const body = yield* readBody(request)
      const refused = admit(request, now)
      const answer = refused ?? (body.ok
        ? handler({ now, params, query: url.searchParams, body: body.value })
        : new Refused(400, "Invalid JSON in request body"))
      requests.push({
        at: now,
        method: request.method,
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        headers: { ...request.headers },
        body: body.ok ? body.value : undefined,
        status: answer.status
      })
      if (answer instanceof Refused) return json(answer.status, { error: answer.error }, answer.headers)
      if (answer.after !== undefined) yield* FiberSet.run(lifecycles, answer.after)
      return json(answer.status, answer.body)
    })

  // -------------------------------------------------------------------------------------------------------------
  // Broadcasts

  const broadcastOf = (call: Call): Model.Broadcast | Refused =>
    broadcasts.get(call.params["id"] ?? "") ?? new Refused(404, "Broadcast not found")

  const listBroadcasts = endpoint((call) => {
    const configId = call.query.get("q[whatsapp_config_id_eq]")
    const templateId = call.query.get("q[whatsapp_template_id_eq]")
    const all = [...broadcasts.values()]
      .filter((b) =>
        (configId === null || b.config.id === configId) && (templateId === null || b.template.id === templateId)
      )
      .reverse()
    const { meta, slice } = Model.paginate(all, call.query)
    return { status: 200, body: { data: slice.map((b) => Model.broadcastJson(b, call.now)), meta } }
  })

  const createBroadcast = endpoint((call) => {
    const input = isRecord(call.body) ? call.body["whatsapp_broadcast"] : undefined
    if (!isRecord(input)) return new Refused(422, "param is missing or the value is empty: whatsapp_broadcast")
    const name = text(input["name"])
    if (name === undefined) return new Refused(422, "Name can't be blank")
    const config = configById.get(text(input["whatsapp_config_id"]) ?? "")
    if (config === undefined) return new Refused(422, "WhatsApp config not found")
    if (!config.production) return new Refused(422, "WhatsApp config must be production type")
    const template = templateById.get(text(input["whatsapp_template_id"]) ?? "")
    if (template === undefined || !template.configIds.includes(config.id)) {
      return new Refused(422, "Template not linked to config")
    }
    if (template.status !== "approved") return new Refused(422, "Template must be approved")
    const broadcast: Model.Broadcast = {
      id: uuid(),
      name,
      config,
      template,
      createdAt: call.now,
      startedAt: undefined,
      timing: undefined,
      completesAt: undefined,
      recipients: [],
      byPhone: new Map()
    }
    broadcasts.set(broadcast.id, broadcast)
    return { status: 201, body: { data: Model.broadcastJson(broadcast, call.now) } }
  })

  const getBroadcast = endpoint((call) => {
    const broadcast = broadcastOf(call)
    if (broadcast instanceof Refused) return broadcast
    return { status: 200, body: { data: Model.broadcastJson(broadcast, call.now) } }
  })

  const addRecipients = endpoint((call) => {
    const broadcast = broadcastOf(call)
    if (broadcast instanceof Refused) return broadcast
    const list = isRecord(call.body) ? call.body["recipients"] : undefined
    if (!Array.isArray(list)) return new Refused(422, "Recipients array is required")
    if (list.length > 1000) return new Refused(422, "Cannot add more than 1000 recipients per request")
    const status = Model.statusAt(broadcast, call.now)
    if (status !== "draft") return new Refused(422, `Cannot add recipients to broadcast in ${status} status`)
    const base = behaviour.errorIndexBase ?? 1
    const errors: Array<string> = []
    let added = 0
    let duplicates = 0
    for (const [i, entry] of list.entries()) {
      const name = `Recipient ${i + base}`
      const item: Readonly<Record<string, unknown>> = isRecord(entry) ? entry : {}
      const phone = Model.normalizePhone(item["phone_number"])
      if (phone === undefined) {
        errors.push(`${name}: invalid phone number format`)
        continue
      }
      if (broadcast.byPhone.has(phone)) {
        duplicates++
        continue
      }
      const parameters = item["template_parameters"]
      const problem = Model.parameterProblem(broadcast.template, parameters, { _tag: "add" })
      if (problem !== undefined) {
        errors.push(`${name}: template parameters invalid - ${problem}`)
        continue
      }
      const recipient: Model.Recipient = {
        id: uuid(),
        index: broadcast.recipients.length,
        phone,
        parameters,
        createdAt: call.now,
        fate: undefined
      }
      broadcast.recipients.push(recipient)
      broadcast.byPhone.set(phone, recipient)
      added++
    }
    return { status: 201, body: { data: { added, duplicates, errors } } }
  })

  const listRecipients = endpoint((call) => {
    const broadcast = broadcastOf(call)
    if (broadcast instanceof Refused) return broadcast
    const { meta, slice } = Model.paginate(broadcast.recipients, call.query)
    return { status: 200, body: { data: slice.map((r) => Model.recipientJson(broadcast, r, call.now)), meta } }
  })

  const sendBroadcast = endpoint((call) => {
    const broadcast = broadcastOf(call)
    if (broadcast instanceof Refused) return broadcast
    const status = Model.statusAt(broadcast, call.now)
    if (status === "sending") return new Refused(422, "Broadcast is already sending")
    if (status === "completed") return new Refused(422, "Broadcast already completed")
    if (broadcast.recipients.length === 0) return new Refused(422, "Broadcast has no recipients")
    broadcast.startedAt = call.now
    broadcast.timing = Model.resolveTiming(behaviour.timing)
    for (const recipient of broadcast.recipients) {
      recipient.fate = Model.fateOf(behaviour.outcomes, recipient.phone, recipient.index)
    }
    broadcast.completesAt = Model.completionOf(broadcast)
    return {
      status: 202,
      body: { data: { id: broadcast.id, status: "sending", started_at: Model.iso(call.now) } }
    }
  })

  // -------------------------------------------------------------------------------------------------------------
  // Templates

  const listTemplates = endpoint((call) => {
    const name = call.query.get("q[name_cont]")
    const language = call.query.get("q[language_code_eq]")
    const configId = call.query.get("whatsapp_config_id") ?? call.query.get("q[whatsapp_config_id_eq]")
    const found = templates.filter((t) =>
      (name === null || t.name.includes(name)) && (language === null || t.language === language) &&
      (configId === null || t.configIds.includes(configId))
    )
    const { meta, slice } = Model.paginate(found, call.query)
    return { status: 200, body: { data: slice.map(Model.templateJson), meta } }
  })

  const publish = (record: WebhookRecord, payload: unknown) =>
    Effect.gen(function*() {
      webhookLog.push(record)
      yield* PubSub.publish(pubsub, { index: webhookLog.length - 1, record })
      if (delivery === undefined) return
      headersByBody.set(record.body, record.headers)
      yield* delivery.enqueue(payload)
    })

  // The steps of one template send, as webhooks at their times.
  const play = (send: Hook.Send, steps: Model.Steps) =>
    Effect.forEach(Hook.eventsOf(send, steps), ({ at, event, payload }, i) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        if (at > now) yield* Effect.sleep(at - now)
        const body = JSON.stringify(payload)
        yield* publish({ event, headers: Hook.headersOf(secret, event, body, `${send.wamid}:${i}`), body }, payload)
      }), { discard: true })

  const sendTemplate = endpoint((call) => {
    const template = templateById.get(call.params["id"] ?? "")
    if (template === undefined) return new Refused(404, "Template not found")
    const input = isRecord(call.body) ? call.body["template"] : undefined
    if (!isRecord(input)) return new Refused(422, "param is missing or the value is empty: template")
    if (template.status !== "approved") return new Refused(422, "Template is not approved")
    const configId = text(input["whatsapp_config_id"])
    const config = configId === undefined
      ? configById.get(template.configIds[0] ?? "")
      : template.configIds.includes(configId)
      ? configById.get(configId)
      : undefined
    if (config === undefined) return new Refused(422, "Template not linked to config")
    const phone = Model.normalizePhone(input["phone_number"])
    if (phone === undefined) return new Refused(422, "Invalid phone number format")
    const problem = Model.parameterProblem(template, input["template_parameters"] ?? [], {
      _tag: "send_template",
      headerParams: input["header_params"]
    })
    if (problem !== undefined) return new Refused(422, problem)
    const wamid = `wamid.${instance}${(++ids).toString(36).toUpperCase().padStart(10, "0")}`
    const fate = Model.fateOf(behaviour.outcomes, phone, sends.length)
    const record: TemplateSendRecord = {
      wamid,
      templateId: template.id,
      phone,
      parameters: input["template_parameters"],
      configId,
      at: call.now,
      fate
    }
    sends.push(record)
    const timing = Model.resolveTiming(behaviour.timing)
    const send: Hook.Send = { wamid, phone, phoneNumberId: config.phoneNumberId, conversationId: uuid(), fate }
    return {
      status: 200,
      // A send goes out at once; its later steps follow the same delays as a broadcast's.
      after: play(send, Model.stepsOf(fate, call.now, timing)),
      body: {
        status: "success",
        message: "Template message sent successfully",
        template_id: template.id,
        template_name: template.name,
        response: {
          messaging_product: "whatsapp",
          contacts: [{ input: `+${phone}`, wa_id: phone }],
          messages: [{ id: wamid }]
        }
      }
    }
  })

  const notFound = endpoint(() => new Refused(404, "Not found"))

  const base = "/api/v1"
  const app = yield* HttpRouter.toHttpEffect(Layer.mergeAll(
    HttpRouter.add("GET", `${base}/whatsapp_broadcasts`, listBroadcasts),
    HttpRouter.add("POST", `${base}/whatsapp_broadcasts`, createBroadcast),
    HttpRouter.add("GET", `${base}/whatsapp_broadcasts/:id`, getBroadcast),
    HttpRouter.add("GET", `${base}/whatsapp_broadcasts/:id/recipients`, listRecipients),
    HttpRouter.add("POST", `${base}/whatsapp_broadcasts/:id/recipients`, addRecipients),
    HttpRouter.add("POST", `${base}/whatsapp_broadcasts/:id/send`, sendBroadcast),
    HttpRouter.add("GET", `${base}/whatsapp_templates`, listTemplates),
    HttpRouter.add("POST", `${base}/whatsapp_templates/:id/send_template`, sendTemplate),
    HttpRouter.add("*", "*", notFound)
  ))
  const server = yield* NodeHttpServer.make(() => createServer(), { port: options.port ?? 0, host: "127.0.0.1" })
  yield* server.serve(app)

  const recordOf = (broadcast: Model.Broadcast, now: number): BroadcastRecord => ({
    id: broadcast.id,
    name: broadcast.name,
    configId: broadcast.config.id,
    templateId: broadcast.template.id,
    status: Model.statusAt(broadcast, now),
    counts: Model.countsAt(broadcast, now),
    startedAt: broadcast.startedAt,
    completesAt: broadcast.completesAt
  })

  const webhooks = Stream.unwrap(Effect.gen(function*() {
    // Subscribe before reading the log: a record published in between is in both, and dropped once by index.
    const subscription = yield* PubSub.subscribe(pubsub)
    const seen = webhookLog.length
    return Stream.fromIterable(webhookLog.slice(0, seen)).pipe(
      Stream.concat(
        Stream.fromSubscription(subscription).pipe(
          Stream.filter((entry) => entry.index >= seen),
          Stream.map((entry) => entry.record)
        )
      )
    )
  }))

  return KapsoEmulator.of({
    url: `${HttpServer.formatAddress(server.address)}${base}`,
    apiKey,
    webhookSecret: secret,
    configs,
    templates,
    requests: Effect.sync(() => requests.slice()),
    broadcasts: Effect.map(Clock.currentTimeMillis, (now) => [...broadcasts.values()].map((b) => recordOf(b, now))),
    recipients: (broadcastId) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const broadcast = broadcasts.get(broadcastId)
        return broadcast === undefined ? [] : broadcast.recipients.map((recipient) => ({
          id: recipient.id,
          broadcastId,
          phone: recipient.phone,
          parameters: recipient.parameters,
          fate: recipient.fate,
          view: Model.recipientView(broadcast, recipient, now)
        }))
      }),
    templateSends: Effect.sync(() => sends.slice()),
    webhooks,
    setBehaviour: (next) =>
      Effect.sync(() => {
        behaviour = { ...behaviour, ...next }
      }),
    idle: Effect.andThen(FiberSet.awaitEmpty(lifecycles), delivery === undefined ? Effect.void : delivery.idle)
  })
})

/** The emulator for the life of the layer. */
export const layer = (options?: Options): Layer.Layer<KapsoEmulator, HttpServerError.ServeError> =>
  Layer.effect(KapsoEmulator, make(options))
