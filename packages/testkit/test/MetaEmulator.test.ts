import * as Address from "@crier/core/Address"
import * as TemplateSpec from "@crier/core/TemplateSpec"
import * as MetaEmulator from "@crier/testkit/MetaEmulator"
import { NodeHttpClient, NodeHttpServer } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Random, Result } from "effect"
import { HttpClient, HttpClientRequest, HttpServer, HttpServerRequest, HttpServerResponse } from "effect/http"
import { TestClock } from "effect/testing"
import { createHmac } from "node:crypto"
import { createServer } from "node:http"

const secret = "emulator-app-secret"

const offer = Result.getOrThrow(TemplateSpec.make({
  name: "spring_offer",
  language: "en_US",
  body: { _tag: "positional", count: 2 },
  header: "document",
  buttons: [{ index: 0, kind: "url" }, { index: 1, kind: "copy_code" }]
}))

const named = Result.getOrThrow(TemplateSpec.make({
  name: "welcome",
  language: "pt_BR",
  body: { _tag: "named", keys: ["first_name"] },
  header: "none",
  buttons: []
}))

const plain = Result.getOrThrow(TemplateSpec.make({
  name: "plain",
  language: "en",
  body: { _tag: "positional", count: 1 },
  header: "none",
  buttons: []
}))

const phone = (i: number) => `+5511960${String(i).padStart(6, "0")}`

const offerComponents = [
  { type: "header", parameters: [{ type: "document", document: { link: "https://x.test/a.pdf", filename: "a.pdf" } }] },
  { type: "body", parameters: [{ type: "text", text: "Ada" }, { type: "text", text: "10%" }] },
  { type: "button", sub_type: "url", index: "0", parameters: [{ type: "text", text: "abc" }] },
  { type: "button", sub_type: "copy_code", index: "1", parameters: [{ type: "coupon_code", coupon_code: "SAVE" }] }
]

const message = (
  to: string,
  components: ReadonlyArray<unknown> = [{ type: "body", parameters: [{ type: "text", text: "Ada" }] }],
  template = { name: "plain", language: { code: "en" } }
) => ({
  messaging_product: "whatsapp",
  recipient_type: "individual",
  to,
  type: "template",
  template: { ...template, components },
  biz_opaque_callback_data: `r-${to}`
})

interface Reply {
  readonly status: number
  readonly body: any
}

const send = (
  emulator: MetaEmulator.MetaEmulator,
  body: unknown,
  options: {
    readonly api?: MetaEmulator.Api
    readonly phoneNumberId?: string
    readonly endpoint?: string
    readonly credential?: string | null
    readonly raw?: string
  } = {}
) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const api = options.api ?? "graph"
    const base = api === "graph" ? emulator.graphUrl : emulator.kapsoUrl
    const id = options.phoneNumberId ?? MetaEmulator.defaultPhoneNumberId
    let request = HttpClientRequest.post(`${base}/${id}/${options.endpoint ?? "marketing_messages"}`)
    if (options.credential !== null) {
      request = api === "graph"
        ? HttpClientRequest.bearerToken(request, options.credential ?? emulator.accessToken)
        : HttpClientRequest.setHeader(request, "x-api-key", options.credential ?? emulator.kapsoApiKey)
    }
    request = options.raw !== undefined
      ? HttpClientRequest.bodyText(request, options.raw, "application/json")
      : HttpClientRequest.bodyJsonUnsafe(request, body)
    const response = yield* client.execute(request)
    return { status: response.status, body: yield* response.json } as Reply
  })

const codeOf = (reply: Reply): number | undefined => reply.body?.error?.code

/** A local endpoint that records every webhook as it arrived. */
const receiver = Effect.gen(function*() {
  const hits: Array<{ readonly body: string; readonly signature: string | undefined }> = []
  const app = Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const body = yield* Effect.orDie(request.text)
    hits.push({ body, signature: request.headers["x-hub-signature-256"] })
    return HttpServerResponse.text("ok")
  })
  const context = yield* Layer.build(
    HttpServer.serve(app).pipe(
      Layer.provideMerge(NodeHttpServer.layer(() => createServer(), { port: 0, host: "127.0.0.1" }))
    )
  )
  return { url: HttpServer.formatAddress(Context.get(context, HttpServer.HttpServer).address), hits }
})

const withHttp = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.provide(NodeHttpClient.layerUndici), Effect.scoped)

const fast: MetaEmulator.Timing = {
  sent: { min: 1, max: 5 },
  delivered: { min: 1, max: 5 },
  read: { min: 1, max: 5 },
  replied: { min: 1, max: 5 },
  failed: { min: 1, max: 5 }
}

describe("MetaEmulator credentials and routes", () => {
  it.live("Meta's base wants the bearer token, Kapso's proxy its API key; unknown numbers and routes are refused", () =>
    withHttp(Effect.gen(function*() {
      const emulator = yield* MetaEmulator.make({ templates: [{ spec: plain }] })
      const ok = message(phone(1))
      assert.strictEqual((yield* send(emulator, ok)).status, 200)
      assert.strictEqual((yield* send(emulator, ok, { api: "kapso", endpoint: "messages" })).status, 200)
      const noToken = yield* send(emulator, ok, { credential: null })
      assert.deepStrictEqual([noToken.status, codeOf(noToken)], [401, 190])
      const wrongToken = yield* send(emulator, ok, { credential: "EAAG-other" })
      assert.deepStrictEqual([wrongToken.status, codeOf(wrongToken)], [401, 190])
      const tokenOnKapso = yield* send(emulator, ok, { api: "kapso", credential: emulator.accessToken })
      assert.deepStrictEqual([tokenOnKapso.status, tokenOnKapso.body], [401, { error: "Invalid API key" }])
      const unknownNumber = yield* send(emulator, ok, { phoneNumberId: "42" })
      assert.deepStrictEqual([unknownNumber.status, codeOf(unknownNumber), unknownNumber.body.error.error_subcode], [
        400,
        100,
        33
      ])
      assert.strictEqual((yield* send(emulator, ok, { endpoint: "contacts" })).status, 404)
      const requests = yield* emulator.requests
      assert.strictEqual(requests.length, 7)
      assert.deepStrictEqual(requests.map((request) => [request.api, request.status, request.errorCode]), [
        ["graph", 200, undefined],
        ["kapso", 200, undefined],
        ["graph", 401, 190],
        ["graph", 401, 190],
        ["kapso", 401, undefined],
        ["graph", 400, 100],
        ["graph", 404, undefined]
      ])
      assert.deepStrictEqual(requests[0]!.body, ok)
      assert.strictEqual(requests[0]!.wamid, (yield* emulator.messages)[0]!.wamid)
    })))
})

describe("MetaEmulator templates", () => {
  it.live("a message must fit its registered template: 132001, 132000, 132012, 131008, 132015, 132016", () =>
    withHttp(Effect.gen(function*() {
      const emulator = yield* MetaEmulator.make({
        templates: [{ spec: offer }, { spec: named }, { spec: plain }],
        pairRate: { burst: 1000 }
      })
      const offerTemplate = { name: "spring_offer", language: { code: "en_US" } }
      const welcome = { name: "welcome", language: { code: "pt_BR" } }
      const cases: ReadonlyArray<readonly [string, unknown, number | undefined]> = [
        ["fits", message(phone(1), offerComponents, offerTemplate), undefined],
        ["unknown template", message(phone(1), [], { name: "nope", language: { code: "en" } }), 132001],
        [
          "wrong language",
          message(phone(1), offerComponents, { name: "spring_offer", language: { code: "pt_BR" } }),
          132001
        ],
        [
          "one body value short",
          message(phone(1), [
            offerComponents[0],
            { type: "body", parameters: [{ type: "text", text: "Ada" }] },
            ...offerComponents.slice(2)
          ], offerTemplate),
          132000
        ],
        ["no header", message(phone(1), offerComponents.slice(1), offerTemplate), 131008],
        [
          "an image for a document",
          message(phone(1), [{
            type: "header",
            parameters: [{ type: "image", image: { link: "https://x.test/a.png" } }]
          }, ...offerComponents.slice(1)], offerTemplate),
          132012
        ],
        ["a button missing", message(phone(1), offerComponents.slice(0, 3), offerTemplate), 131008],
        [
          "a button of the wrong kind",
          message(phone(1), [...offerComponents.slice(0, 3), {
            type: "button",
            sub_type: "quick_reply",
            index: "1",
            parameters: [{ type: "payload", payload: "x" }]
          }], offerTemplate),
          132012
        ],
        [
          "a header the template lacks",
          message(phone(1), [{ type: "header", parameters: [{ type: "text", text: "Hi" }] }, {
            type: "body",
            parameters: [{ type: "text", text: "Ada" }]
          }]),
          132000
        ],
        [
          "positional given a name",
          message(phone(1), [{ type: "body", parameters: [{ type: "text", parameter_name: "x", text: "Ada" }] }]),
          132012
        ],
        [
          "named fits",
          message(phone(1), [{
            type: "body",
            parameters: [{ type: "text", parameter_name: "first_name", text: "Ada" }]
          }], welcome),
          undefined
        ],
        [
          "named given positions",
          message(phone(1), [{ type: "body", parameters: [{ type: "text", text: "Ada" }] }], welcome),
          132012
        ],
        [
          "named given another name",
          message(
            phone(1),
            [{ type: "body", parameters: [{ type: "text", parameter_name: "name", text: "Ada" }] }],
            welcome
          ),
          132012
        ],
        ["named given nothing", message(phone(1), [], welcome), 132000],
        ["an empty value", message(phone(1), [{ type: "body", parameters: [{ type: "text", text: " " }] }]), 131008],
        ["no to nor recipient", { ...message(phone(1)), to: undefined }, 100],
        ["a to that is no number", message("hello"), 131009],
        ["not a template message", { ...message(phone(1)), type: "text" }, 100]
      ]
      for (const [name, body, code] of cases) {
        const reply = yield* send(emulator, body)
        assert.strictEqual(codeOf(reply), code, name)
        assert.strictEqual(reply.status, code === undefined ? 200 : 400, name)
      }
      const broken = yield* send(emulator, undefined, { raw: "{" })
      assert.strictEqual(codeOf(broken), 100)
      yield* emulator.setTemplateStatus("plain", "en", "PAUSED")
      assert.strictEqual(codeOf(yield* send(emulator, message(phone(2)))), 132015)
      yield* emulator.setTemplateStatus("plain", "en", "DISABLED")
      assert.strictEqual(codeOf(yield* send(emulator, message(phone(2)))), 132016)
      yield* emulator.setTemplateStatus("plain", "en", "APPROVED")
      assert.strictEqual((yield* send(emulator, message(phone(2)))).status, 200)
    })))

  it.live("answers like Meta: contacts, wamid, accepted or held; a BSUID is answered by user_id", () =>
    withHttp(Effect.gen(function*() {
      const emulator = yield* MetaEmulator.make({
        templates: [{ spec: plain }],
        outcomes: { byAddress: new Map([[phone(2), MetaEmulator.held]]) }
      })
      const one = yield* send(emulator, message(phone(1)))
      assert.deepStrictEqual(one.body.contacts, [{ input: phone(1), wa_id: phone(1).slice(1) }])
      assert.match(one.body.messages[0].id, /^wamid\./)
      assert.strictEqual(one.body.messages[0].message_status, "accepted")
      const heldReply = yield* send(emulator, message(phone(2)))
      assert.strictEqual(heldReply.body.messages[0].message_status, "held_for_quality_assessment")
      const bsuid = yield* send(emulator, { ...message(phone(3)), to: undefined, recipient: "US.13491208655302741918" })
      assert.deepStrictEqual(bsuid.body.contacts, [{
        input: "US.13491208655302741918",
        user_id: "US.13491208655302741918"
      }])
      const sent = yield* emulator.messages
      assert.deepStrictEqual(sent.map((m) => [m.address, m.final, m.code, m.callbackData]), [
        [phone(1), "delivered", undefined, `r-${phone(1)}`],
        [phone(2), "failed", 132015, `r-${phone(2)}`],
        ["US.13491208655302741918", "delivered", undefined, `r-${phone(3)}`]
      ])
    })))
})

describe("MetaEmulator limits (on the test clock)", () => {
  it.effect("throughput per number per second, inbound messages included: 130429", () =>
    withHttp(Effect.gen(function*() {
      const emulator = yield* MetaEmulator.make({
        templates: [{ spec: plain }],
        phoneNumbers: [{ id: "1" }, { id: "2", throughput: 2 }],
        throughput: 5
      })
      const codes = (id: string, count: number, from: number) =>
        Effect.forEach(
          Array.from({ length: count }, (_, i) => from + i),
          (i) => Effect.map(send(emulator, message(phone(i)), { phoneNumberId: id }), codeOf)
        )
      assert.deepStrictEqual(yield* codes("1", 6, 0), [undefined, undefined, undefined, undefined, undefined, 130429])
      assert.deepStrictEqual(yield* codes("2", 3, 10), [undefined, undefined, 130429])
      yield* TestClock.adjust("999 millis")
      assert.deepStrictEqual(yield* codes("1", 1, 20), [130429])
      yield* TestClock.adjust("1 millis")
      // Inbound messages take room too.
      yield* emulator.sendInbound({ from: Address.PhoneNumber.make(phone(99)), text: "hi", phoneNumberId: "1" })
      yield* emulator.sendInbound({ from: Address.PhoneNumber.make(phone(98)), text: "hi", phoneNumberId: "1" })
      assert.deepStrictEqual(yield* codes("1", 4, 30), [undefined, undefined, undefined, 130429])
    })))

  it.effect("pair rate: bursts borrow ahead, then one message per 6 s to the same user: 131056", () =>
    withHttp(Effect.gen(function*() {
      const emulator = yield* MetaEmulator.make({ templates: [{ spec: plain }], pairRate: { burst: 2 } })
      const code = (to: string) => Effect.map(send(emulator, message(to)), codeOf)
      assert.deepStrictEqual([yield* code(phone(1)), yield* code(phone(1)), yield* code(phone(1))], [
        undefined,
        undefined,
        131056
      ])
      assert.strictEqual(yield* code(phone(2)), undefined, "another user is not affected")
      yield* TestClock.adjust("5 seconds")
      assert.strictEqual(yield* code(phone(1)), 131056)
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* code(phone(1)), undefined)
      assert.strictEqual(yield* code(phone(1)), 131056)
    })))
})

describe("MetaEmulator outcomes and webhooks", () => {
  const hmac = (body: string) => `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`

  it.live("each outcome plays its lifecycle as signed webhooks; failures at send are answered at once", () =>
    withHttp(Effect.gen(function*() {
      const hooks = yield* receiver
      const outcomes = new Map<string, MetaEmulator.Outcome>([
        [phone(1), MetaEmulator.delivered],
        [phone(2), MetaEmulator.read],
        [phone(3), MetaEmulator.replied("Tell me more")],
        [phone(4), MetaEmulator.held],
        [phone(5), MetaEmulator.failed(131049)],
        [phone(6), MetaEmulator.failed(131026, "send")],
        [phone(7), MetaEmulator.failed(131050, "send")],
        [phone(8), MetaEmulator.sent]
      ])
      const emulator = yield* MetaEmulator.make({
        templates: [{ spec: plain }],
        outcomes: { byAddress: outcomes },
        timing: fast,
        webhook: { url: hooks.url, appSecret: secret }
      })
      const replies = yield* Effect.forEach(Array.from(outcomes.keys()), (to) => send(emulator, message(to)))
      assert.deepStrictEqual(replies.map(codeOf), [
        undefined,
        undefined,
        undefined,
        undefined,
        undefined,
        131026,
        131050,
        undefined
      ])
      yield* emulator.idle
      for (const hit of hooks.hits) assert.strictEqual(hit.signature, hmac(hit.body))
      const values = hooks.hits.map((hit) => JSON.parse(hit.body).entry[0].changes[0].value)
      const statuses = values.flatMap((value) => value.statuses ?? [])
      const byRecipient = (to: string) =>
        statuses.filter((status: any) => status.biz_opaque_callback_data === `r-${to}`).map((status: any) =>
          status.status === "failed" ? `failed ${status.errors[0].code}` : status.status
        ).sort()
      assert.deepStrictEqual(byRecipient(phone(1)), ["delivered", "sent"])
      assert.deepStrictEqual(byRecipient(phone(2)), ["delivered", "read", "sent"])
      assert.deepStrictEqual(byRecipient(phone(3)), ["delivered", "read", "sent"])
      assert.deepStrictEqual(byRecipient(phone(4)), ["failed 132015"])
      assert.deepStrictEqual(byRecipient(phone(5)), ["failed 131049"])
      assert.deepStrictEqual(byRecipient(phone(6)), [])
      assert.deepStrictEqual(byRecipient(phone(8)), ["sent"])
      const inbound = values.flatMap((value) => value.messages ?? [])
      const wamid3 = replies[2]!.body.messages[0].id
      assert.deepStrictEqual(inbound.map((m: any) => [m.from, m.text.body, m.context.id]), [
        [phone(3).slice(1), "Tell me more", wamid3]
      ])
      assert.deepStrictEqual(statuses.find((s: any) => s.id === wamid3).recipient_id, phone(3).slice(1))
      const recorded = yield* emulator.messages
      assert.deepStrictEqual(
        recorded.map((m): ReadonlyArray<string | undefined> => [m.address, m.final, m.statuses.at(-1)?.status]),
        [
          [phone(1), "delivered", "delivered"],
          [phone(2), "read", "read"],
          [phone(3), "replied", "read"],
          [phone(4), "failed", "failed"],
          [phone(5), "failed", "failed"],
          [phone(8), "sent", "sent"]
        ]
      )
    })))

  it.live("webhooks come some twice and out of order; a deterministic mix decides outcomes by address", () =>
    withHttp(
      Effect.gen(function*() {
        const hooks = yield* receiver
        const mix = [{ share: 0.3, outcome: MetaEmulator.read }, { share: 0.1, outcome: MetaEmulator.failed(131026) }]
        const make = MetaEmulator.make({
          templates: [{ spec: plain }],
          outcomes: { mix },
          timing: { ...fast, delivered: { min: 1, max: 2 } },
          throughput: 1000,
          webhook: { url: hooks.url, appSecret: secret, delay: { min: 0, max: 60 }, duplicateShare: 0.3 }
        })
        const emulator = yield* make
        yield* Effect.forEach(Array.from({ length: 100 }, (_, i) => phone(i)), (to) => send(emulator, message(to)), {
          concurrency: 8
        })
        yield* emulator.idle
        const deliveries = yield* emulator.webhooks.deliveries
        const duplicates = deliveries.filter((delivery) => delivery.duplicate).length
        assert.isTrue(duplicates > 20 && duplicates < 150, `${duplicates} duplicates`)
        assert.strictEqual(hooks.hits.length, deliveries.length)
        // Per message, the order statuses arrived in differs from the order they happened in, for some.
        const arrival = new Map<string, Array<string>>()
        for (const hit of hooks.hits) {
          for (const status of JSON.parse(hit.body).entry[0].changes[0].value.statuses ?? []) {
            arrival.set(status.id, [...(arrival.get(status.id) ?? []), status.status])
          }
        }
        const outOfOrder = Array.from(arrival.values()).filter((seen) =>
          seen.indexOf("delivered") >= 0 && seen.indexOf("delivered") < seen.indexOf("sent")
        )
        assert.isTrue(outOfOrder.length > 0, "some delivered arrive before their sent")
        const finalsOf = (emulator: MetaEmulator.MetaEmulator) =>
          Effect.map(emulator.messages, (all) => all.map((m) => `${m.address} ${m.final}`).sort())
        const finals = (yield* emulator.messages).map((m) => m.final)
        const count = (final: string) => finals.filter((f) => f === final).length
        assert.isTrue(count("read") > 15 && count("read") < 45, `${count("read")} read`)
        assert.isTrue(count("failed") > 2 && count("failed") < 20, `${count("failed")} failed`)
        // The same addresses meet the same outcomes in another emulator.
        const again = yield* make
        yield* Effect.forEach(Array.from({ length: 100 }, (_, i) => phone(i)), (to) => send(again, message(to)))
        assert.deepStrictEqual(yield* finalsOf(again), yield* finalsOf(emulator))
      }).pipe(Random.withSeed(7))
    ))

  it.effect("batched webhooks: a number's statuses within the window go together, up to the batch size", () =>
    withHttp(Effect.gen(function*() {
      const hooks = yield* receiver
      const emulator = yield* MetaEmulator.make({
        templates: [{ spec: plain }],
        outcomes: { default: MetaEmulator.sent },
        timing: { sent: { min: 10, max: 10 } },
        webhook: { url: hooks.url, appSecret: secret, batch: { size: 3, window: 100 } }
      })
      yield* Effect.forEach([1, 2, 3, 4, 5], (i) => send(emulator, message(phone(i))))
      // Five statuses at 10 ms: the first three fill a batch, the other two wait for the window.
      yield* TestClock.adjust("10 millis")
      yield* TestClock.adjust("99 millis")
      const early = yield* emulator.webhooks.deliveries
      assert.deepStrictEqual(
        early.map((delivery) => JSON.parse(delivery.body).entry[0].changes[0].value.statuses.length),
        [3]
      )
      yield* TestClock.adjust("1 millis")
      yield* emulator.idle
      const all = yield* emulator.webhooks.deliveries
      assert.deepStrictEqual(
        all.map((delivery) => JSON.parse(delivery.body).entry[0].changes[0].value.statuses.length),
        [3, 2]
      )
      assert.strictEqual(hooks.hits.length, 2)
      for (const hit of hooks.hits) assert.strictEqual(hit.signature, hmac(hit.body))
    })))

  it.live("without a webhook URL, statuses are recorded and nothing is sent", () =>
    withHttp(Effect.gen(function*() {
      const emulator = yield* MetaEmulator.make({ templates: [{ spec: plain }], timing: fast })
      yield* send(emulator, message(phone(1)))
      yield* emulator.idle
      assert.deepStrictEqual((yield* emulator.messages)[0]!.statuses.map((s) => s.status), ["sent", "delivered"])
      assert.deepStrictEqual(yield* emulator.webhooks.deliveries, [])
    })))
})
