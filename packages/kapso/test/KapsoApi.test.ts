import type * as TransportError from "@crier/core/TransportError"
import * as KapsoApi from "@crier/kapso/KapsoApi"
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Fiber, Option, Redacted } from "effect"
import { TestClock } from "effect/testing"
import { apiKey, baseUrl, fakeClient, type Reply, reply, type Seen, sequence, template } from "./fixtures.ts"

const broadcast = (fields: Record<string, unknown> = {}) => ({
  id: "b-1",
  name: "spring sale",
  status: "draft",
  started_at: null,
  completed_at: null,
  total_recipients: 0,
  sent_count: 0,
  failed_count: 0,
  delivered_count: 0,
  read_count: 0,
  responded_count: 0,
  pending_count: 0,
  response_rate: 0,
  ...fields
})

/** Runs `use` against a client whose every request is answered by `answer`. */
const withClient = <A, E>(
  answer: (seen: Seen, index: number) => Reply,
  use: (client: KapsoApi.Client, seen: ReadonlyArray<Seen>) => Effect.Effect<A, E>,
  options: Partial<KapsoApi.Options> = {}
) => {
  const fake = fakeClient(answer)
  return Effect.flatMap(KapsoApi.make({ apiKey, baseUrl, ...options }), (client) => use(client, fake.seen)).pipe(
    Effect.provide(fake.layer)
  )
}

describe("KapsoApi requests", () => {
  it.effect("sends the API key and a JSON body to the base URL, and decodes the created broadcast", () =>
    withClient(() => reply(201, { data: broadcast() }), (client, seen) =>
      Effect.gen(function*() {
        const created = yield* client.createBroadcast({
          name: "spring sale",
          whatsappConfigId: "c-1",
          templateId: "t-1"
        })
        assert.strictEqual(created.id, "b-1")
        assert.strictEqual(created.status, "draft")
        assert.strictEqual(seen.length, 1)
        assert.strictEqual(seen[0]!.method, "POST")
        assert.strictEqual(seen[0]!.url, "/api/v1/whatsapp_broadcasts")
        assert.strictEqual(seen[0]!.headers["x-api-key"], Redacted.value(apiKey))
        assert.deepStrictEqual(seen[0]!.body, {
          whatsapp_broadcast: { name: "spring sale", whatsapp_config_id: "c-1", whatsapp_template_id: "t-1" }
        })
      })))

  it.effect("pages recipients with page and per_page, and decodes nullable timestamps and error codes", () =>
    withClient(
      () =>
        reply(200, {
          data: [{
            id: "r-1",
            phone_number: "14155550123",
            status: "failed",
            sent_at: null,
            failed_at: "2025-07-15T10:05:23Z",
            error_message: "Message undeliverable",
            error_details: { error_code: "131026", error_subcode: "2494055" }
          }, {
            id: "r-2",
            phone_number: "14155550124",
            status: "sent",
            sent_at: "2025-07-15T10:05:23.120Z",
            error_details: { error_code: 131049 }
          }],
          meta: { page: 2, per_page: 100, total_pages: 3, total_count: 250 }
        }),
      (client, seen) =>
        Effect.gen(function*() {
          const page = yield* client.listRecipients("b 1", 2, 100)
          assert.strictEqual(seen[0]!.url, "/api/v1/whatsapp_broadcasts/b%201/recipients?page=2&per_page=100")
          assert.strictEqual(page.data.length, 2)
          assert.strictEqual(page.data[0]!.error_details?.error_code, "131026")
          assert.strictEqual(page.data[1]!.error_details?.error_code, 131049)
          assert.strictEqual(page.meta.total_pages, 3)
        })
    ))
})

describe("KapsoApi failures", () => {
  const expectReason = (
    answer: Reply,
    call: (client: KapsoApi.Client) => Effect.Effect<unknown, TransportError.TransportError>,
    check: (error: TransportError.TransportError) => void
  ) => withClient(() => answer, (client) => Effect.map(Effect.flip(call(client)), check))

  const get = (client: KapsoApi.Client) => client.getBroadcast("b-1")
  const create = (client: KapsoApi.Client) =>
    client.createBroadcast({ name: "n", whatsappConfigId: "c", templateId: "t" })
  const add = (client: KapsoApi.Client) =>
    client.addRecipients("b-1", [{ phone_number: "+1", template_parameters: [] }])
  const send = (client: KapsoApi.Client) => client.sendBroadcast("b-1")
  const sendTemplate = (client: KapsoApi.Client) =>
    client.sendTemplate("t-1", { phone_number: "+14155550123", template_parameters: ["a"] })

  it.effect("401 is Unauthorized, account-wide, with Kapso's message and never the key", () =>
    expectReason(reply(401, { error: "Invalid API key" }), get, (error) => {
      assert.strictEqual(error.reason._tag, "Unauthorized")
      assert.strictEqual(error.scope, "account")
      assert.isFalse(error.isRetryable)
      assert.include(error.message, "Invalid API key")
      assert.notInclude(error.message, Redacted.value(apiKey))
      assert.notInclude(JSON.stringify(error), Redacted.value(apiKey))
    }))

  it.effect("404 on a broadcast is an InvalidRequest that pauses the broadcast", () =>
    expectReason(reply(404, { error: "Broadcast not found" }), get, (error) => {
      assert.strictEqual(error.reason._tag, "InvalidRequest")
      assert.strictEqual(error.reason.httpStatus, 404)
      assert.strictEqual(error.scope, "broadcast")
      assert.include(error.message, "Broadcast not found")
    }))

  it.effect("404 on send_template is TemplateRejected", () =>
    expectReason(reply(404, { error: "Template not found" }), sendTemplate, (error) => {
      assert.strictEqual(error.reason._tag, "TemplateRejected")
    }))

  it.effect("422 'Template not linked to config' is TemplateRejected", () =>
    expectReason(reply(422, { error: "Template not linked to config" }), create, (error) => {
      assert.strictEqual(error.reason._tag, "TemplateRejected")
      assert.strictEqual(error.reason.message, "Template not linked to config")
      assert.strictEqual(error.scope, "broadcast")
    }))

  for (const message of ["No users found for project", "WhatsApp config must be production type"]) {
    it.effect(`422 '${message}' is InvalidRequest`, () =>
      expectReason(reply(422, { error: message }), create, (error) => {
        assert.strictEqual(error.reason._tag, "InvalidRequest")
        assert.strictEqual(error.reason.message, message)
      }))
  }

  for (
    const message of [
      "Cannot add recipients to broadcast in sending status",
      "Cannot add more than 1000 recipients per request",
      "Recipients array is required"
    ]
  ) {
    it.effect(`422 '${message}' on add is InvalidRequest, scope broadcast`, () =>
      expectReason(reply(422, { error: message }), add, (error) => {
        assert.strictEqual(error.reason._tag, "InvalidRequest")
        assert.strictEqual(error.reason.message, message)
        assert.strictEqual(error.reason.httpStatus, 422)
        assert.strictEqual(error.scope, "broadcast")
      }))
  }

  for (
    const message of ["Broadcast is already sending", "Broadcast already completed", "Broadcast has no recipients"]
  ) {
    it.effect(`422 '${message}' on send keeps its message and status (start decides)`, () =>
      expectReason(reply(422, { error: message }), send, (error) => {
        assert.strictEqual(error.reason._tag, "InvalidRequest")
        assert.strictEqual(error.reason.httpStatus, 422)
        assert.strictEqual(error.reason.message, message)
      }))
  }

  it.effect("422 about parameters on send_template fails that recipient only", () =>
    expectReason(
      reply(422, { error: "Template requires 2 parameters, but 1 were provided" }),
      sendTemplate,
      (error) => {
        assert.strictEqual(error.reason._tag, "TemplateParamsMismatch")
        assert.strictEqual(error.scope, "message")
        assert.isFalse(error.isRetryable)
      }
    ))

  it.effect("422 about the number on send_template is RecipientRejected", () =>
    expectReason(reply(422, { error: "Invalid phone number format" }), sendTemplate, (error) => {
      assert.strictEqual(error.reason._tag, "RecipientRejected")
      assert.strictEqual(error.scope, "message")
    }))

  it.effect("429 with Retry-After in seconds is RateLimited for the credential, retried after it", () =>
    expectReason(reply(429, { error: "Rate limit exceeded" }, { "retry-after": "7" }), get, (error) => {
      assert.strictEqual(error.reason._tag, "RateLimited")
      if (error.reason._tag === "RateLimited") assert.strictEqual(error.reason.limit, "credential")
      assert.isTrue(error.isRetryable)
      assert.deepStrictEqual(error.retryAfter, Option.some(Duration.seconds(7)))
    }))

  it.effect("429 with Retry-After as an HTTP date waits until that date", () =>
    expectReason(
      reply(429, { error: "Rate limit exceeded" }, { "retry-after": "Thu, 01 Jan 1970 00:00:30 GMT" }),
      get,
      (error) => {
        assert.strictEqual(error.reason._tag, "RateLimited")
        assert.deepStrictEqual(error.retryAfter, Option.some(Duration.seconds(30)))
      }
    ))

  it.effect("429 without Retry-After is RateLimited with no delay (the engine backs off)", () =>
    expectReason(reply(429, { error: "Rate limit exceeded" }), get, (error) => {
      assert.strictEqual(error.reason._tag, "RateLimited")
      assert.isTrue(Option.isNone(error.retryAfter))
    }))

  for (const status of [500, 502, 503]) {
    it.effect(`${status} is ProviderUnavailable, retryable`, () =>
      expectReason(
        reply(status, { status: "error", message: "Failed to send template message: API Error" }),
        sendTemplate,
        (error) => {
          assert.strictEqual(error.reason._tag, "ProviderUnavailable")
          assert.isTrue(error.isRetryable)
          assert.include(error.message, "Failed to send template message")
        }
      ))
  }

  it.effect("504 is a Timeout", () =>
    expectReason(reply(504, "gateway timeout"), get, (error) => {
      assert.strictEqual(error.reason._tag, "Timeout")
    }))

  it.effect("an HTML error page keeps its status's reason and a bounded excerpt", () =>
    expectReason(reply(502, `<html>${"x".repeat(2000)}</html>`, { "content-type": "text/html" }), get, (error) => {
      assert.strictEqual(error.reason._tag, "ProviderUnavailable")
      assert.isBelow(error.reason.message.length, 400)
    }))

  it.effect("no answer within the timeout is a Timeout", () =>
    withClient(() => ({ _tag: "never" }), (client) =>
      Effect.gen(function*() {
        const fiber = yield* Effect.forkChild(Effect.flip(client.getBroadcast("b-1")))
        yield* TestClock.adjust(Duration.seconds(5))
        assert.isUndefined(fiber.pollUnsafe())
        yield* TestClock.adjust(Duration.seconds(6))
        const error = yield* Fiber.join(fiber)
        assert.strictEqual(error.reason._tag, "Timeout")
        assert.isTrue(error.isRetryable)
      }), { timeout: Duration.seconds(10) }))

  it.effect("a refused connection is a Network error, retryable", () =>
    expectReason({ _tag: "network" }, get, (error) => {
      assert.strictEqual(error.reason._tag, "Network")
      assert.isTrue(error.isRetryable)
    }))

  it.effect("a 2xx body that is not JSON is an InvalidRequest: the outcome is unknown, a human looks", () =>
    expectReason(reply(201, "<html>oops</html>"), add, (error) => {
      assert.strictEqual(error.reason._tag, "InvalidRequest")
      assert.strictEqual(error.reason.httpStatus, 201)
      assert.include(error.message, "not JSON")
    }))

  it.effect("a 2xx body of the wrong shape is an InvalidRequest naming the problem", () =>
    expectReason(reply(201, { data: { added: "many", duplicates: 0, errors: [] } }), add, (error) => {
      assert.strictEqual(error.reason._tag, "InvalidRequest")
      assert.include(error.message, "unexpected shape")
      assert.include(error.message, "added")
    }))

  it.effect("a broadcast without its counters is the wrong shape", () =>
    expectReason(reply(200, { data: { id: "b-1", status: "sending" } }), get, (error) => {
      assert.strictEqual(error.reason._tag, "InvalidRequest")
      assert.include(error.message, "total_recipients")
    }))

  it.effect("missing data is the wrong shape too", () =>
    expectReason(reply(200, { broadcast: broadcast() }), get, (error) => {
      assert.strictEqual(error.reason._tag, "InvalidRequest")
    }))
})

describe("KapsoApi template ids", () => {
  const listed = (data: ReadonlyArray<Record<string, unknown>>, page = 1, totalPages = 1) =>
    reply(200, { data, meta: { page, per_page: 100, total_pages: totalPages, total_count: data.length } })

  it.effect("finds the exact name and language among near-namesakes, across pages, once", () =>
    withClient(
      sequence(
        () => listed([{ id: "t-0", name: "spring_sale_2", language_code: "en", status: "approved" }], 1, 2),
        () => listed([{ id: "t-1", name: "spring_sale", language_code: "en", status: "approved" }], 2, 2)
      ),
      (client, seen) =>
        Effect.gen(function*() {
          assert.strictEqual(yield* client.templateId(template, Option.some("c-1")), "t-1")
          assert.strictEqual(yield* client.templateId(template, Option.some("c-1")), "t-1")
          assert.strictEqual(seen.length, 2, "the second call uses the cache")
          assert.include(seen[0]!.url, "q%5Bname_cont%5D=spring_sale")
          assert.include(seen[0]!.url, "q%5Blanguage_code_eq%5D=en")
          assert.include(seen[0]!.url, "whatsapp_config_id=c-1")
          assert.include(seen[1]!.url, "page=2")
        })
    ))

  it.effect("a template Kapso does not have is TemplateRejected", () =>
    withClient(() => listed([]), (client) =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(client.templateId(template, Option.none()))
        assert.strictEqual(error.reason._tag, "TemplateRejected")
        assert.include(error.message, "spring_sale")
      })))

  it.effect("a template that is not approved is TemplateRejected with its status", () =>
    withClient(
      () => listed([{ id: "t-1", name: "spring_sale", language_code: "en", status: "rejected" }]),
      (client) =>
        Effect.gen(function*() {
          const error = yield* Effect.flip(client.templateId(template, Option.none()))
          assert.strictEqual(error.reason._tag, "TemplateRejected")
          assert.include(error.message, "rejected")
        })
    ))

  it.effect("templateIds skip the lookup", () =>
    withClient(() => listed([]), (client, seen) =>
      Effect.gen(function*() {
        assert.strictEqual(yield* client.templateId(template, Option.none()), "given")
        assert.strictEqual(seen.length, 0)
      }), { templateIds: { "spring_sale:en": "given" } }))
})

describe("KapsoApi.config", () => {
  const read = (env: Record<string, string>) =>
    Effect.provide(
      Effect.result(KapsoApi.config),
      ConfigProvider.layer(ConfigProvider.fromUnknown(env))
    )

  it.effect("reads the key as Redacted, defaults the base URL, and takes the config id", () =>
    Effect.gen(function*() {
      const answer = yield* read({ KAPSO_API_KEY: "secret-key", KAPSO_WHATSAPP_CONFIG_ID: "c-9" })
      assert.isTrue(answer._tag === "Success")
      if (answer._tag !== "Success") return
      assert.strictEqual(Redacted.value(answer.success.apiKey), "secret-key")
      assert.notInclude(String(answer.success.apiKey), "secret-key")
      assert.strictEqual(answer.success.baseUrl, KapsoApi.defaultBaseUrl)
      assert.strictEqual(answer.success.whatsappConfigId, "c-9")
    }))

  it.effect("takes KAPSO_BASE_URL, and the config id is optional", () =>
    Effect.gen(function*() {
      const answer = yield* read({ KAPSO_API_KEY: "k", KAPSO_BASE_URL: "http://127.0.0.1:9/api/v1" })
      assert.isTrue(answer._tag === "Success")
      if (answer._tag !== "Success") return
      assert.strictEqual(answer.success.baseUrl, "http://127.0.0.1:9/api/v1")
      assert.isUndefined(answer.success.whatsappConfigId)
    }))

  it.effect("fails without KAPSO_API_KEY", () =>
    Effect.gen(function*() {
      const answer = yield* read({})
      assert.strictEqual(answer._tag, "Failure")
    }))
})
