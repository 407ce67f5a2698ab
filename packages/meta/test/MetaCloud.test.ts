import * as Address from "@crier/core/Address"
import * as Broadcast from "@crier/core/Broadcast"
import type { BroadcastTransport, Outgoing } from "@crier/core/BroadcastTransport"
import * as Recipient from "@crier/core/Recipient"
import * as RetryPolicy from "@crier/core/RetryPolicy"
import * as TemplateParams from "@crier/core/TemplateParams"
import * as TemplateSpec from "@crier/core/TemplateSpec"
import type * as TransportError from "@crier/core/TransportError"
import { NodeHttpClient } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, DateTime, Duration, Effect, Exit, Fiber, Layer, Option, Redacted, Result } from "effect"
import { HttpClient, HttpClientError, HttpClientResponse } from "effect/http"
import { TestClock } from "effect/testing"
import { createServer, type Server } from "node:http"
import { type AddressInfo } from "node:net"
import * as MetaCloud from "../src/MetaCloud.ts"

// ---------------------------------------------------------------------------------------------------------------
// A recording fake HttpClient

interface Sent {
  readonly at: number
  readonly method: string
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: any
}

type Answer =
  | { readonly status: number; readonly body: unknown; readonly headers?: Record<string, string> }
  | { readonly raw: string; readonly status: number; readonly headers?: Record<string, string> }
  | "network"
  | "never"

const accepted = (id = "wamid.1", status = "accepted"): Answer => ({
  status: 200,
  body: {
    messaging_product: "whatsapp",
    contacts: [{ input: "+5511960000001", wa_id: "5511960000001" }],
    messages: [{ id, message_status: status }]
  }
})

const metaError = (
  code: number,
  extra: Record<string, unknown> = {},
  status = 400,
  headers: Record<string, string> = {}
): Answer => ({
  status,
  headers,
  body: {
    error: {
      message: `(#${code}) something`,
      type: "OAuthException",
      code,
      error_data: { messaging_product: "whatsapp", details: `details of ${code}` },
      fbtrace_id: "Atrace",
      ...extra
    }
  }
})

const fakeClient = (answer: (sent: Sent, index: number) => Answer) => {
  const sent: Array<Sent> = []
  const client = HttpClient.make((request, url) =>
    Effect.gen(function*() {
      const body = request.body._tag === "Uint8Array"
        ? JSON.parse(new TextDecoder().decode(request.body.body))
        : undefined
      const record: Sent = {
        at: yield* DateTime.now.pipe(Effect.map(DateTime.toEpochMillis)),
        method: request.method,
        url: url.toString(),
        headers: request.headers,
        body
      }
      sent.push(record)
      const reply = answer(record, sent.length - 1)
      if (reply === "never") return yield* Effect.never
      if (reply === "network") {
        return yield* new HttpClientError.HttpClientError({
          reason: new HttpClientError.TransportError({ request, description: "connection refused" })
        })
      }
      const text = "raw" in reply ? reply.raw : JSON.stringify(reply.body)
      return HttpClientResponse.fromWeb(
        request,
        new Response(text, { status: reply.status, headers: reply.headers ?? {} })
      )
    })
  )
  return { client, sent }
}

const token = Redacted.make("EAAG-secret-token")
const apiKey = Redacted.make("kapso-secret-key")

const transportWith = (
  answer: (sent: Sent, index: number) => Answer,
  options: Partial<MetaCloud.Options> = {}
) =>
  Effect.gen(function*() {
    const { client, sent } = fakeClient(answer)
    const transport = yield* MetaCloud.make({ credential: MetaCloud.accessToken(token), ...options }).pipe(
      Effect.provideService(HttpClient.HttpClient, client)
    )
    return { transport, sent }
  })

// ---------------------------------------------------------------------------------------------------------------
// Broadcasts and items

const spec = (fields: Partial<typeof TemplateSpec.TemplateSpec.Encoded> = {}) =>
  Result.getOrThrow(TemplateSpec.make({
    name: "spring_offer",
    language: "en_US",
    body: { _tag: "positional", count: 1 },
    header: "none",
    buttons: [],
    ...fields
  }))

const broadcastOf = (template: TemplateSpec.TemplateSpec, sender = "1234567890") =>
  Effect.gen(function*() {
    return new Broadcast.Broadcast({
      id: yield* Broadcast.makeId,
      name: "unit",
      transport: "meta",
      sender,
      template,
      policy: new Broadcast.Policy({}),
      status: "sending",
      createdAt: yield* DateTime.now
    })
  })

const phone = (i: number) => Address.PhoneNumber.make(`+55119600${String(i).padStart(5, "0")}`)

const item = (
  broadcast: Broadcast.Broadcast,
  seq: number,
  params: ConstructorParameters<typeof TemplateParams.TemplateParams>[0] = { body: [`Ada ${seq}`], buttons: [] },
  address: Address.Address = phone(seq)
): Outgoing => ({
  recipientId: Recipient.recipientId(broadcast.id, seq),
  seq,
  address,
  params: new TemplateParams.TemplateParams(params)
})

const submit = (transport: BroadcastTransport["Service"], broadcast: Broadcast.Broadcast, outgoing: Outgoing) =>
  transport.submit(broadcast, [outgoing])

// ---------------------------------------------------------------------------------------------------------------

describe("MetaCloud requests", () => {
  it.effect("posts one template message per recipient to Meta's Graph API with a bearer token", () =>
    Effect.gen(function*() {
      const { sent, transport } = yield* transportWith(() => accepted("wamid.A"))
      const broadcast = yield* broadcastOf(spec({ bodyText: "Hi {{1}}" }))
      const receipt = yield* submit(transport, broadcast, item(broadcast, 7))
      assert.deepStrictEqual(receipt.outcomes, [{
        _tag: "Accepted",
        providerMessageId: Option.some("wamid.A"),
        held: false
      }])
      assert.strictEqual(sent.length, 1)
      const [request] = sent
      assert.strictEqual(request!.method, "POST")
      assert.strictEqual(request!.url, `${MetaCloud.graphBaseUrl}/1234567890/marketing_messages`)
      assert.strictEqual(request!.headers["authorization"], "Bearer EAAG-secret-token")
      assert.isUndefined(request!.headers["x-api-key"])
      assert.deepStrictEqual(request!.body, {
        messaging_product: "whatsapp",
        recipient_type: "individual",
        to: "+5511960000007",
        type: "template",
        template: {
          name: "spring_offer",
          language: { code: "en_US" },
          components: [{ type: "body", parameters: [{ type: "text", text: "Ada 7" }] }]
        },
        biz_opaque_callback_data: Recipient.recipientId(broadcast.id, 7)
      })
    }))

  it.effect("through Kapso's proxy: the same request, another base, X-API-Key instead of a bearer token", () =>
    Effect.gen(function*() {
      const { sent, transport } = yield* transportWith(() => accepted(), {
        credential: MetaCloud.kapsoApiKey(apiKey),
        endpoint: "messages"
      })
      const broadcast = yield* broadcastOf(spec())
      yield* submit(transport, broadcast, item(broadcast, 1))
      assert.strictEqual(sent[0]!.url, `${MetaCloud.kapsoBaseUrl}/1234567890/messages`)
      assert.strictEqual(sent[0]!.headers["x-api-key"], "kapso-secret-key")
      assert.isUndefined(sent[0]!.headers["authorization"])
    }))

  it.effect("a BSUID goes in recipient, not to; the phone number id falls back to the option", () =>
    Effect.gen(function*() {
      const { sent, transport } = yield* transportWith(() => accepted(), {
        phoneNumberId: "999",
        baseUrl: "http://127.0.0.1:1/v24.0/"
      })
      const broadcast = yield* broadcastOf(spec(), "")
      const bsuid = Result.getOrThrow(Address.parse("US.13491208655302741918"))
      yield* submit(transport, broadcast, item(broadcast, 1, undefined, bsuid))
      assert.strictEqual(sent[0]!.url, "http://127.0.0.1:1/v24.0/999/marketing_messages")
      assert.strictEqual(sent[0]!.body.recipient, "US.13491208655302741918")
      assert.notProperty(sent[0]!.body, "to")
    }))

  it.effect("named body parameters, a document header with its filename, and every kind of button", () =>
    Effect.gen(function*() {
      const { sent, transport } = yield* transportWith(() => accepted(), { productPolicy: "STRICT" })
      const broadcast = yield* broadcastOf(spec({
        body: { _tag: "named", keys: ["first_name", "code"] },
        header: "document",
        buttons: [{ index: 0, kind: "url" }, { index: 1, kind: "quick_reply" }, { index: 2, kind: "copy_code" }]
      }))
      yield* submit(
        transport,
        broadcast,
        item(broadcast, 1, {
          body: { code: "SPRING", first_name: "Ada" },
          header: { _tag: "media", kind: "document", link: "https://example.com/a.pdf", filename: "offer.pdf" },
          buttons: ["a/b?c=1", "STOP", "SAVE10"]
        })
      )
      assert.strictEqual(sent[0]!.body.product_policy, "STRICT")
      assert.deepStrictEqual(sent[0]!.body.template.components, [
        {
          type: "header",
          parameters: [{ type: "document", document: { link: "https://example.com/a.pdf", filename: "offer.pdf" } }]
        },
        {
          type: "body",
          parameters: [
            { type: "text", parameter_name: "first_name", text: "Ada" },
            { type: "text", parameter_name: "code", text: "SPRING" }
          ]
        },
        { type: "button", sub_type: "url", index: "0", parameters: [{ type: "text", text: "a/b?c=1" }] },
        { type: "button", sub_type: "quick_reply", index: "1", parameters: [{ type: "payload", payload: "STOP" }] },
        {
          type: "button",
          sub_type: "copy_code",
          index: "2",
          parameters: [{ type: "coupon_code", coupon_code: "SAVE10" }]
        }
      ])
    }))

  it.effect("image, video and text headers", () =>
    Effect.gen(function*() {
      const { sent, transport } = yield* transportWith(() => accepted(), { endpoint: "messages" })
      const headers = [
        [{ _tag: "media", kind: "image", link: "https://example.com/a.png" }, {
          type: "image",
          image: { link: "https://example.com/a.png" }
        }],
        [{ _tag: "media", kind: "video", link: "https://example.com/a.mp4" }, {
          type: "video",
          video: { link: "https://example.com/a.mp4" }
        }],
        [{ _tag: "text", text: "Spring" }, { type: "text", text: "Spring" }]
      ] as const
      for (const [header, expected] of headers) {
        const kind = header._tag === "text" ? "text" : header.kind
        // One number each: a second send from a number waits for its slot, on the test clock.
        const broadcast = yield* broadcastOf(spec({ header: kind }), `sender-${kind}`)
        yield* submit(transport, broadcast, item(broadcast, 1, { body: ["Ada"], header, buttons: [] }))
        assert.deepStrictEqual(sent.at(-1)!.body.template.components[0], { type: "header", parameters: [expected] })
        // product_policy belongs to the Marketing Messages API only.
        assert.notProperty(sent.at(-1)!.body, "product_policy")
      }
    }))

  it.effect("held_for_quality_assessment is accepted and held", () =>
    Effect.gen(function*() {
      const { transport } = yield* transportWith(() => accepted("wamid.H", "held_for_quality_assessment"))
      const broadcast = yield* broadcastOf(spec())
      const { outcomes } = yield* submit(transport, broadcast, item(broadcast, 1))
      assert.deepStrictEqual(outcomes, [{ _tag: "Accepted", providerMessageId: Option.some("wamid.H"), held: true }])
    }))

  it.effect("a 2xx that is not a send response is still accepted (never sent twice), without an id", () =>
    Effect.gen(function*() {
      const { transport } = yield* transportWith(() => ({ status: 200, raw: "<html>ok</html>" }))
      const broadcast = yield* broadcastOf(spec())
      const { outcomes } = yield* submit(transport, broadcast, item(broadcast, 1))
      assert.deepStrictEqual(outcomes, [{ _tag: "Accepted", providerMessageId: Option.none(), held: false }])
    }))
})

describe("MetaCloud refusals before any request", () => {
  it.effect("a malformed address, values that do not fit the template, no sender, a batch of two", () =>
    Effect.gen(function*() {
      const { sent, transport } = yield* transportWith(() => accepted())
      const broadcast = yield* broadcastOf(spec())
      const bad = yield* submit(transport, broadcast, item(broadcast, 1, undefined, "+999" as Address.Address))
      assert.strictEqual(bad.outcomes[0]?._tag === "Rejected" && bad.outcomes[0].error.reason._tag, "RecipientRejected")
      const unfit = yield* submit(transport, broadcast, item(broadcast, 2, { body: ["a", "b"], buttons: [] }))
      const mismatch = unfit.outcomes[0]?._tag === "Rejected" ? unfit.outcomes[0].error : undefined
      assert.strictEqual(mismatch?.reason._tag, "TemplateParamsMismatch")
      assert.strictEqual(mismatch?.scope, "message")
      const nobody = yield* broadcastOf(spec(), " ")
      const noSender = yield* Effect.flip(submit(transport, nobody, item(nobody, 1)))
      assert.strictEqual(noSender.reason._tag, "InvalidRequest")
      const two = yield* Effect.flip(transport.submit(broadcast, [item(broadcast, 1), item(broadcast, 2)]))
      assert.strictEqual(two.reason._tag, "InvalidRequest")
      assert.strictEqual(sent.length, 0)
    }))

  it.effect("open, start, poll and cancel need no request", () =>
    Effect.gen(function*() {
      const { sent, transport } = yield* transportWith(() => accepted())
      const broadcast = yield* broadcastOf(spec())
      assert.deepStrictEqual(yield* transport.open(broadcast), Option.none())
      yield* transport.start(broadcast)
      assert.deepStrictEqual(yield* transport.poll(broadcast, Option.none()), {
        events: [],
        cursor: Option.none(),
        done: true
      })
      yield* transport.cancel(broadcast)
      assert.strictEqual(sent.length, 0)
      assert.deepStrictEqual(transport.capabilities, MetaCloud.capabilities)
    }))
})

// ---------------------------------------------------------------------------------------------------------------
// PROVIDERS.md's error table, row by row, as the engine will act on it

type Action = "retry" | "fail recipient" | "pause"

const table: ReadonlyArray<readonly [code: number, tag: TransportError.Reason["_tag"], action: Action]> = [
  [130429, "RateLimited", "retry"],
  [4, "RateLimited", "retry"],
  [80007, "RateLimited", "retry"],
  [131056, "PairRateLimited", "retry"],
  [131000, "ProviderUnavailable", "retry"],
  [131016, "ProviderUnavailable", "retry"],
  [133004, "ProviderUnavailable", "retry"],
  [1, "ProviderUnavailable", "retry"],
  [2, "ProviderUnavailable", "retry"],
  [131057, "ProviderUnavailable", "retry"],
  [131026, "RecipientRejected", "fail recipient"],
  [131050, "RecipientRejected", "fail recipient"],
  [130472, "RecipientRejected", "fail recipient"],
  [130497, "RecipientRejected", "fail recipient"],
  [131047, "RecipientRejected", "fail recipient"],
  [131049, "RecipientDeclined", "fail recipient"],
  // Rows were validated against the spec: a structural refusal means the spec is wrong for every row.
  [132000, "TemplateParamsMismatch", "pause"],
  [132012, "TemplateParamsMismatch", "pause"],
  [131008, "TemplateParamsMismatch", "pause"],
  // A refused value is this row's.
  [132005, "TemplateParamsMismatch", "fail recipient"],
  [131009, "TemplateParamsMismatch", "fail recipient"],
  [100, "TemplateParamsMismatch", "fail recipient"],
  [132001, "TemplateRejected", "pause"],
  [132015, "TemplateRejected", "pause"],
  [132016, "TemplateRejected", "pause"],
  [131048, "PolicyBlocked", "pause"],
  [368, "PolicyBlocked", "pause"],
  [131031, "PolicyBlocked", "pause"],
  [131042, "PolicyBlocked", "pause"],
  [190, "Unauthorized", "pause"],
  [0, "Unauthorized", "pause"],
  [134101, "NotReady", "retry"]
]

const actionOf = (error: TransportError.TransportError): Action => {
  const decision = RetryPolicy.decideWith(error, { attempt: 1, maxAttempts: 5 }, 0)
  return decision._tag === "Retry" ? "retry" : decision._tag === "Fail" ? "fail recipient" : "pause"
}

/** What one answer comes to: the call's failure, or the item's rejection. */
const outcomeOf = (answer: Answer) =>
  Effect.gen(function*() {
    const { transport } = yield* transportWith(() => answer)
    const broadcast = yield* broadcastOf(spec())
    const result = yield* Effect.result(submit(transport, broadcast, item(broadcast, 1)))
    if (Result.isFailure(result)) return { how: "call" as const, error: result.failure }
    const outcome = result.success.outcomes[0]!
    assert.strictEqual(outcome._tag, "Rejected")
    return { how: "item" as const, error: (outcome as { readonly error: TransportError.TransportError }).error }
  })

describe("MetaCloud answers: every code of the table", () => {
  for (const [code, tag, action] of table) {
    it.effect(`${code} → ${tag}, ${action}`, () =>
      Effect.gen(function*() {
        const { error, how } = yield* outcomeOf(metaError(code))
        assert.strictEqual(error.reason._tag, tag)
        assert.strictEqual(error.reason.code, code)
        assert.strictEqual(error.reason.httpStatus, 400)
        assert.include(error.reason.message, `details of ${code}`)
        assert.strictEqual(actionOf(error), action)
        // Only a final refusal of this recipient is an item outcome; retries and the breaker fail the call.
        assert.strictEqual(how, action === "fail recipient" ? "item" : "call")
      }))
  }

  it.effect("code 100 subcode 33 (no such phone number) pauses instead of failing every recipient", () =>
    Effect.gen(function*() {
      const { error, how } = yield* outcomeOf(metaError(100, { error_subcode: 33 }))
      assert.strictEqual(error.reason.subcode, 33)
      assert.strictEqual(how, "call")
      assert.strictEqual(actionOf(error), "pause")
    }))

  it.effect("an unknown code pauses for a human; a Retry-After is honoured", () =>
    Effect.gen(function*() {
      const unknown = yield* outcomeOf(metaError(999999))
      assert.strictEqual(unknown.error.reason._tag, "InvalidRequest")
      assert.strictEqual(actionOf(unknown.error), "pause")
      const later = yield* outcomeOf(metaError(130429, {}, 400, { "retry-after": "7" }))
      assert.deepStrictEqual(later.error.retryAfter, Option.some(Duration.seconds(7)))
    }))

  it.effect("answers without a Meta error: by HTTP status", () =>
    Effect.gen(function*() {
      const kapso = yield* outcomeOf({ status: 401, body: { error: "Invalid API key" } })
      assert.strictEqual(kapso.error.reason._tag, "Unauthorized")
      assert.strictEqual(kapso.error.scope, "account")
      const html = yield* outcomeOf({ status: 502, raw: "<html>Bad gateway</html>" })
      assert.strictEqual(html.error.reason._tag, "ProviderUnavailable")
      const busy = yield* outcomeOf({ status: 503, raw: "", headers: { "retry-after": "3" } })
      assert.deepStrictEqual(busy.error.retryAfter, Option.some(Duration.seconds(3)))
      for (const answer of [kapso, html, busy]) assert.strictEqual(answer.how, "call")
    }))

  it.effect("a network failure is retried; its message carries no secret", () =>
    Effect.gen(function*() {
      const { error, how } = yield* outcomeOf("network")
      assert.strictEqual(error.reason._tag, "Network")
      assert.strictEqual(how, "call")
      assert.isTrue(error.isRetryable)
      assert.notInclude(error.message, Redacted.value(token))
    }))

  it.effect("no answer within the timeout: Timeout (the message is in doubt)", () =>
    Effect.gen(function*() {
      const { transport } = yield* transportWith(() => "never", { timeout: "5 seconds" })
      const broadcast = yield* broadcastOf(spec())
      const fiber = yield* Effect.forkChild(Effect.flip(submit(transport, broadcast, item(broadcast, 1))))
      yield* TestClock.adjust("5 seconds")
      const error = yield* Fiber.join(fiber)
      assert.strictEqual(error.reason._tag, "Timeout")
      assert.isTrue(error.isRetryable)
    }))
})

// ---------------------------------------------------------------------------------------------------------------

describe("MetaCloud pacing", () => {
  const sendTimes = (
    transport: BroadcastTransport["Service"],
    broadcast: Broadcast.Broadcast,
    count: number,
    from = 1
  ) =>
    Effect.forEach(
      Array.from({ length: count }, (_, i) => from + i),
      (seq) => Effect.result(submit(transport, broadcast, item(broadcast, seq))),
      { concurrency: "unbounded" }
    )

  it.effect("spaces each phone number's sends at its rate; numbers do not share a budget", () =>
    Effect.gen(function*() {
      const { sent, transport } = yield* transportWith(() => accepted(), { messagesPerSecond: 5 })
      const a = yield* broadcastOf(spec(), "111")
      const b = yield* broadcastOf(spec(), "222")
      const fiber = yield* Effect.forkChild(Effect.all([sendTimes(transport, a, 10), sendTimes(transport, b, 10)], {
        concurrency: "unbounded"
      }))
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(fiber)
      const times = (id: string) =>
        sent.filter((request) => request.url.includes(`/${id}/`)).map((request) => request.at)
      assert.deepStrictEqual(times("111"), [0, 200, 400, 600, 800, 1000, 1200, 1400, 1600, 1800])
      assert.deepStrictEqual(times("222"), times("111"))
    }))

  it.effect("a slot missed by a short stall is made up at once; idle time is never made up", () =>
    Effect.gen(function*() {
      const run = (catchUp: Duration.Input) =>
        Effect.gen(function*() {
          const { sent, transport } = yield* transportWith(() => accepted(), { messagesPerSecond: 5, catchUp })
          const broadcast = yield* broadcastOf(spec())
          yield* sendTimes(transport, broadcast, 1, 1)
          // The process was busy past the next slot (200 ms).
          yield* TestClock.adjust("250 millis")
          const stalled = yield* Effect.forkChild(sendTimes(transport, broadcast, 2, 2))
          yield* TestClock.adjust("1 second")
          yield* Fiber.join(stalled)
          // Then nobody sends for a while: the next ones start a fresh schedule.
          yield* TestClock.adjust("5 seconds")
          const fresh = yield* Effect.forkChild(sendTimes(transport, broadcast, 2, 4))
          yield* TestClock.adjust("1 second")
          yield* Fiber.join(fresh)
          const first = sent[0]!.at
          return sent.map((request) => request.at - first)
        })
      const kept = yield* run("100 millis")
      assert.deepStrictEqual(kept.slice(0, 3), [0, 250, 400], "the missed 200 ms slot goes at 250, the next at 400")
      assert.strictEqual(kept[4]! - kept[3]!, 200, "no burst after idle time")
      const strict = yield* run(0)
      assert.deepStrictEqual(strict.slice(0, 3), [0, 250, 450])
    }))

  it.effect("130429 halves the number's rate, which climbs back over the recovery time; 131056 does not", () =>
    Effect.gen(function*() {
      const { sent, transport } = yield* transportWith(
        (_, index) => index === 2 ? metaError(130429) : index === 3 ? metaError(131056) : accepted(),
        { messagesPerSecond: 10, recovery: "10 seconds" }
      )
      const broadcast = yield* broadcastOf(spec())
      const first = yield* Effect.forkChild(sendTimes(transport, broadcast, 4))
      yield* TestClock.adjust("1 second")
      const answers = yield* Fiber.join(first)
      assert.deepStrictEqual(answers.map((answer) => Result.isFailure(answer) && answer.failure.reason._tag), [
        false,
        false,
        "RateLimited",
        "PairRateLimited"
      ])
      // Halved at 200 ms to 5/s: the next slot, booked before, is at 400; then 200 ms apart (5/s), climbing.
      const second = yield* Effect.forkChild(sendTimes(transport, broadcast, 3, 10))
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(second)
      const gaps = sent.slice(4).map((request, i, all) => i === 0 ? request.at : request.at - all[i - 1]!.at)
      assert.strictEqual(gaps[0], 1000, "the next send goes at once: its slot is already free")
      assert.isTrue(gaps[1]! > 100 && gaps[1]! < 200, `slower than 10/s after the halving: ${gaps[1]} ms`)
      // Long after the recovery, full speed again.
      yield* TestClock.adjust("30 seconds")
      const third = yield* Effect.forkChild(sendTimes(transport, broadcast, 3, 20))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(third)
      const late = sent.slice(-3).map((request) => request.at)
      assert.deepStrictEqual([late[1]! - late[0]!, late[2]! - late[1]!], [100, 100])
    }))
})

// ---------------------------------------------------------------------------------------------------------------

describe("MetaCloud.layerConfig", () => {
  const build = (env: Record<string, string>) =>
    Effect.gen(function*() {
      const { client, sent } = fakeClient(() => accepted())
      const layer = MetaCloud.layerConfig.pipe(
        Layer.provide(Layer.succeed(HttpClient.HttpClient, client)),
        Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord(env)))
      )
      const exit = yield* Effect.exit(Layer.build(layer))
      return { exit, sent }
    })

  const sendWith = (env: Record<string, string>) =>
    Effect.gen(function*() {
      const { client, sent } = fakeClient(() => accepted())
      const transport = yield* MetaCloud.config.pipe(
        Effect.flatMap((options) => MetaCloud.make(options)),
        Effect.provideService(HttpClient.HttpClient, client),
        Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord(env)))
      )
      const broadcast = yield* broadcastOf(spec(), "")
      yield* submit(transport, broadcast, item(broadcast, 1))
      return sent[0]!
    })

  it.effect("META_ACCESS_TOKEN: Meta's Graph API with a bearer token; META_* options apply", () =>
    Effect.gen(function*() {
      const request = yield* sendWith({
        META_ACCESS_TOKEN: "EAAG-env",
        META_PHONE_NUMBER_ID: "42",
        META_ENDPOINT: "messages"
      })
      assert.strictEqual(request.url, `${MetaCloud.graphBaseUrl}/42/messages`)
      assert.strictEqual(request.headers["authorization"], "Bearer EAAG-env")
    }))

  it.effect("KAPSO_API_KEY: Kapso's proxy with X-API-Key; META_BASE_URL overrides the base", () =>
    Effect.gen(function*() {
      const kapso = yield* sendWith({ KAPSO_API_KEY: "kapso-env", META_PHONE_NUMBER_ID: "42" })
      assert.strictEqual(kapso.url, `${MetaCloud.kapsoBaseUrl}/42/marketing_messages`)
      assert.strictEqual(kapso.headers["x-api-key"], "kapso-env")
      const local = yield* sendWith({
        KAPSO_API_KEY: "kapso-env",
        META_PHONE_NUMBER_ID: "42",
        META_BASE_URL: "http://127.0.0.1:9/meta/whatsapp/v24.0"
      })
      assert.strictEqual(local.url, "http://127.0.0.1:9/meta/whatsapp/v24.0/42/marketing_messages")
    }))

  it.effect("the credential is Redacted in the options", () =>
    Effect.gen(function*() {
      const options = yield* MetaCloud.config.pipe(
        Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord({ META_ACCESS_TOKEN: "EAAG-env" })))
      )
      assert.isTrue(options.credential._tag === "AccessToken" && Redacted.isRedacted(options.credential.token))
      assert.notInclude(JSON.stringify(options), "EAAG-env")
      assert.notInclude(String(options.credential._tag === "AccessToken" ? options.credential.token : ""), "EAAG-env")
    }))

  it.effect("refuses both credentials, neither, a bad endpoint and a bad rate, without echoing a secret", () =>
    Effect.gen(function*() {
      const bad = [
        { META_ACCESS_TOKEN: "EAAG-env", KAPSO_API_KEY: "kapso-env" },
        {},
        { META_ACCESS_TOKEN: "EAAG-env", META_ENDPOINT: "chat" },
        { META_ACCESS_TOKEN: "EAAG-env", META_MESSAGES_PER_SECOND: "0" },
        { META_ACCESS_TOKEN: "EAAG-env", META_MESSAGES_PER_SECOND: "fast" }
      ]
      for (const env of bad) {
        const { exit } = yield* build(env)
        assert.isTrue(Exit.isFailure(exit), JSON.stringify(env))
        const text = String(Exit.isFailure(exit) ? exit.cause : "")
        assert.notInclude(text, "EAAG-env")
        assert.notInclude(text, "kapso-env")
      }
      const { exit } = yield* build({ META_ACCESS_TOKEN: "EAAG-env", META_MESSAGES_PER_SECOND: "20" })
      assert.isTrue(Exit.isSuccess(exit))
    }))

  it("messagesPerSecondFor leaves room for inbound messages under each of Meta's limits", () => {
    assert.deepStrictEqual(
      [MetaCloud.throughputLimits.shared, MetaCloud.throughputLimits.standard, MetaCloud.throughputLimits.upgraded].map(
        MetaCloud.messagesPerSecondFor
      ),
      [17, 70, 875]
    )
    assert.strictEqual(MetaCloud.defaultMessagesPerSecond, 70)
  })
})

describe("MetaCloud over real sockets on 127.0.0.1", () => {
  /** A server that reads each request whole, then drops the connection without answering. */
  const dropping = Effect.acquireRelease(
    Effect.promise(() =>
      new Promise<Server>((resolve) => {
        const server = createServer((request) => request.resume().on("end", () => request.socket.destroy()))
        server.listen(0, "127.0.0.1", () => resolve(server))
      })
    ),
    (server) => Effect.promise(() => new Promise<void>((resolve) => server.close(() => resolve())))
  )
  const urlOf = (server: Server) => `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  const failureAt = (baseUrl: string) =>
    Effect.gen(function*() {
      const transport = yield* MetaCloud.make({ credential: MetaCloud.accessToken(token), baseUrl })
      const broadcast = yield* broadcastOf(spec())
      return yield* Effect.flip(submit(transport, broadcast, item(broadcast, 1)))
    }).pipe(Effect.provide(NodeHttpClient.layerUndici))

  it.live("a connection dropped once the request went out may have been acted on (in doubt)", () =>
    Effect.gen(function*() {
      const error = yield* failureAt(urlOf(yield* dropping))
      assert.strictEqual(error.reason._tag, "Network")
      assert.isTrue(error.mayHaveActed, error.message)
      assert.notInclude(error.message, Redacted.value(token))
    }).pipe(Effect.scoped))

  it.live("a refused connection was not: it is retried", () =>
    Effect.gen(function*() {
      // The port of a server closed again: nothing listens on it.
      const closed = yield* Effect.scoped(Effect.map(dropping, urlOf))
      const error = yield* failureAt(closed)
      assert.strictEqual(error.reason._tag, "Network")
      assert.isFalse(error.mayHaveActed, error.message)
      assert.include(error.message, "ECONNREFUSED")
      assert.isTrue(error.isRetryable)
    }))
})
