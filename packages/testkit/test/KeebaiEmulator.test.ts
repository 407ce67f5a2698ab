import * as KeebaiEmulator from "@crier/testkit/KeebaiEmulator"
import { NodeHttpClient, NodeHttpServer } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Random } from "effect"
import { HttpClient, HttpClientRequest, HttpServer, HttpServerRequest, HttpServerResponse } from "effect/http"
import { createHmac } from "node:crypto"
import { createServer } from "node:http"
import * as Budget from "../src/internal/keebaiBudget.ts"

const token = KeebaiEmulator.defaultToken

interface Reply {
  readonly status: number
  readonly body: any
  readonly headers: Readonly<Record<string, string>>
}

/** One request to the emulator over real HTTP. */
const call = (
  url: string,
  method: "GET" | "POST",
  path: string,
  options: { readonly token?: string | null; readonly body?: unknown; readonly raw?: string } = {}
) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    let request = method === "GET" ? HttpClientRequest.get(`${url}${path}`) : HttpClientRequest.post(`${url}${path}`)
    if (options.token !== null) request = HttpClientRequest.bearerToken(request, options.token ?? token)
    if (options.raw !== undefined) request = HttpClientRequest.bodyText(request, options.raw, "application/json")
    else if (options.body !== undefined) request = HttpClientRequest.bodyJsonUnsafe(request, options.body)
    const response = yield* client.execute(request)
    const text = yield* response.text
    return { status: response.status, body: text === "" ? undefined : JSON.parse(text), headers: response.headers }
  }) as Effect.Effect<Reply, unknown, HttpClient.HttpClient>

const phone = (i: number) => `+5511960${String(i).padStart(6, "0")}`

const bulk = (count: number, extra: Record<string, unknown> = {}, from = 0) => ({
  template_name: "promo",
  language: "pt_BR",
  channel_id: "ch_1",
  campaign_name: "test · part 1",
  recipients: Array.from({ length: count }, (_, i) => ({
    to: phone(from + i),
    variables: { first_name: `Ada ${from + i}` } as Record<string, string>,
    meta_data: { crier_recipient_id: `r${from + i}` }
  })),
  ...extra
})

/** A local receiver that records every webhook as it arrived. */
const receiver = Effect.gen(function*() {
  const hits: Array<{ body: string; signature: string | undefined }> = []
  const server = yield* NodeHttpServer.make(() => createServer(), { port: 0, host: "127.0.0.1" })
  yield* server.serve(Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    hits.push({ body: yield* request.text, signature: request.headers["x-keebai-signature"] })
    return HttpServerResponse.empty({ status: 200 })
  }))
  return { url: `${HttpServer.formatAddress(server.address)}/hooks/keebai`, hits }
})

const fast = { startAfter: 10, messagesPerSecond: 100_000, deliveredAfter: 10, readAfter: 10, repliedAfter: 10 }

const live = <A, E>(effect: Effect.Effect<A, E, any>) =>
  effect.pipe(Effect.scoped, Effect.provide(NodeHttpClient.layerUndici)) as Effect.Effect<A, E, never>

describe("KeebaiEmulator auth", () => {
  it.live("401 without a token or with an unknown one, 403 without the messages:bulk scope", () =>
    live(Effect.gen(function*() {
      const emulator = yield* KeebaiEmulator.make({
        tokens: [{ token }, { token: "kbai_pk_readonly", scopes: ["messages:read"] }]
      })
      const missing = yield* call(emulator.url, "POST", "/v1/messages/bulk", { token: null, body: bulk(1) })
      assert.strictEqual(missing.status, 401)
      assert.strictEqual(missing.body.error.code, "unauthorized")
      const unknown = yield* call(emulator.url, "GET", "/v1/messages/bulk/bk_000001", { token: "kbai_pk_nope" })
      assert.strictEqual(unknown.status, 401)
      const scoped = yield* call(emulator.url, "POST", "/v1/messages/bulk", {
        token: "kbai_pk_readonly",
        body: bulk(1)
      })
      assert.strictEqual(scoped.status, 403)
      assert.include(scoped.body.error.message, "messages:bulk")
      assert.strictEqual(yield* emulator.sendCount(phone(0)), 0)
      yield* emulator.setTokens([])
      assert.strictEqual((yield* call(emulator.url, "POST", "/v1/messages/bulk", { body: bulk(1) })).status, 401)
    })))
})

describe("KeebaiEmulator validation", () => {
  it.live("400 for an empty list, more than 5,000, a malformed number anywhere, bad JSON or no sender", () =>
    live(Effect.gen(function*() {
      const emulator = yield* KeebaiEmulator.make({ budgets: [] })
      const post = (body: unknown) => call(emulator.url, "POST", "/v1/messages/bulk", { body })
      const empty = yield* post(bulk(0))
      assert.strictEqual(empty.status, 400)
      assert.include(empty.body.error.message, "at least 1")
      const tooMany = yield* post(bulk(5001))
      assert.strictEqual(tooMany.status, 400)
      assert.include(tooMany.body.error.message, "at most 5000")
      const malformed = bulk(3)
      malformed.recipients[1] = { ...malformed.recipients[1]!, to: "+999" }
      const refused = yield* post(malformed)
      assert.strictEqual(refused.status, 400)
      assert.strictEqual(refused.body.error.code, "invalid_phone_number")
      assert.include(refused.body.error.message, "recipients[1].to")
      for (const to of ["5511960000001", "+55 11 96000-0001", "+05511960000001", ""]) {
        const body = bulk(1)
        body.recipients[0] = { ...body.recipients[0]!, to }
        assert.strictEqual((yield* post(body)).status, 400, JSON.stringify(to))
      }
      const json = yield* call(emulator.url, "POST", "/v1/messages/bulk", { raw: "{\"template_name\":" })
      assert.strictEqual(json.status, 400)
      const { channel_id: _, ...noSender } = bulk(1)
      const sender = yield* post(noSender)
      assert.strictEqual(sender.status, 400)
      assert.include(sender.body.error.message, "channel_id")
      assert.strictEqual((yield* post({ ...bulk(1), template_name: "" })).status, 400)
      // Nothing of a refused call was sent, not even its valid recipients.
      assert.strictEqual(yield* emulator.sendCount(phone(0)), 0)
      assert.deepStrictEqual(yield* emulator.broadcasts, [])
    })))

  it.live("the sender field follows the reading it is told: channel_id, phone_number_id, or either", () =>
    live(Effect.gen(function*() {
      const { channel_id: _, ...base } = bulk(1)
      const byPhoneNumberId = { ...base, phone_number_id: "pn_1" }
      const statuses = (senderField: KeebaiEmulator.Options["senderField"]) =>
        Effect.gen(function*() {
          const emulator = yield* KeebaiEmulator.make({ senderField, budgets: [] })
          const post = (body: unknown) =>
            Effect.map(call(emulator.url, "POST", "/v1/messages/bulk", { body }), (reply) => reply.status)
          return [yield* post(bulk(1)), yield* post(byPhoneNumberId)]
        })
      assert.deepStrictEqual(yield* statuses("channel_id"), [202, 400])
      assert.deepStrictEqual(yield* statuses("phone_number_id"), [400, 202])
      assert.deepStrictEqual(yield* statuses("either"), [202, 202])
    })))

  it.live("with known templates: an unknown one is refused, a missing variable fails its recipient alone", () =>
    live(Effect.gen(function*() {
      const emulator = yield* KeebaiEmulator.make({ templates: { promo: ["first_name"] }, timing: fast })
      const unknown = yield* call(emulator.url, "POST", "/v1/messages/bulk", {
        body: { ...bulk(1), template_name: "nope" }
      })
      assert.strictEqual(unknown.status, 400)
      const body = bulk(2)
      body.recipients[1] = { ...body.recipients[1]!, variables: {} }
      assert.strictEqual((yield* call(emulator.url, "POST", "/v1/messages/bulk", { body })).status, 202)
      yield* emulator.idle
      const [first, second] = yield* emulator.messages
      assert.strictEqual(first!.status, "delivered")
      assert.strictEqual(second!.status, "failed")
      assert.strictEqual(second!.error?.code, "132000")
      assert.include(second!.error?.message, "first_name")
    })))
})

describe("KeebaiEmulator sending", () => {
  it.live("does not dedupe: the same number twice is sent and counted twice", () =>
    live(Effect.gen(function*() {
      const emulator = yield* KeebaiEmulator.make({ timing: fast })
      const body = bulk(3)
      body.recipients[2] = { ...body.recipients[0]! }
      const reply = yield* call(emulator.url, "POST", "/v1/messages/bulk", { body })
      assert.strictEqual(reply.status, 202)
      assert.strictEqual(reply.body.total_recipients, 3)
      yield* call(emulator.url, "POST", "/v1/messages/bulk", { body: bulk(1) })
      assert.strictEqual(yield* emulator.sendCount(phone(0)), 3)
      assert.strictEqual(yield* emulator.sendCount(phone(1)), 1)
      assert.deepStrictEqual([...(yield* emulator.duplicateSends)], [[phone(0), 3]])
    })))

  it.live("a call moves PENDING → IN_PROGRESS → COMPLETED, counting sent, failed and pending", () =>
    live(Effect.gen(function*() {
      const emulator = yield* KeebaiEmulator.make({
        timing: { startAfter: 300, messagesPerSecond: 10, deliveredAfter: 10 },
        outcomes: { failed: 0.5 }
      })
      const accepted = yield* call(emulator.url, "POST", "/v1/messages/bulk", { body: bulk(4) })
      assert.strictEqual(accepted.status, 202)
      assert.strictEqual(accepted.body.status, "PENDING")
      assert.match(accepted.body.broadcast_id, /^bk_/)
      assert.isString(accepted.body.scheduled_at)
      const get = () => call(emulator.url, "GET", `/v1/messages/bulk/${accepted.body.broadcast_id}`)
      const pending = yield* get()
      assert.strictEqual(pending.body.status, "PENDING")
      assert.deepStrictEqual([pending.body.sent, pending.body.failed, pending.body.pending], [0, 0, 4])
      assert.isNull(pending.body.started_at)
      yield* Effect.sleep(Duration.millis(450))
      const running = yield* get()
      assert.strictEqual(running.body.status, "IN_PROGRESS")
      assert.isString(running.body.started_at)
      assert.isAbove(running.body.pending, 0)
      assert.isBelow(running.body.pending, 4)
      yield* emulator.idle
      const done = yield* get()
      assert.strictEqual(done.body.status, "COMPLETED")
      assert.strictEqual(done.body.sent + done.body.failed, 4)
      assert.strictEqual(done.body.pending, 0)
      assert.isString(done.body.completed_at)
      assert.strictEqual((yield* call(emulator.url, "GET", "/v1/messages/bulk/bk_999999")).status, 404)
    })))

  it.live("the other documented reading: a new broadcast is `scheduled`", () =>
    live(Effect.gen(function*() {
      const emulator = yield* KeebaiEmulator.make({ initialStatus: "scheduled", timing: { startAfter: 5000 } })
      const accepted = yield* call(emulator.url, "POST", "/v1/messages/bulk", { body: bulk(1) })
      assert.strictEqual(accepted.body.status, "scheduled")
      const polled = yield* call(emulator.url, "GET", `/v1/messages/bulk/${accepted.body.broadcast_id}`)
      assert.strictEqual(polled.body.status, "scheduled")
    })))

  it.live("the outcome mix is honoured, and the same seed gives the same fates", () =>
    live(Effect.gen(function*() {
      const run = (seed: string) =>
        Effect.gen(function*() {
          const emulator = yield* KeebaiEmulator.make({
            budgets: [],
            timing: fast,
            outcomes: { failed: 0.1, read: 0.4, replied: 0.1 }
          })
          yield* call(emulator.url, "POST", "/v1/messages/bulk", { body: bulk(1000) })
          yield* emulator.idle
          return (yield* emulator.messages).map((message) => message.replied ? "replied" : message.status)
        }).pipe(Effect.scoped, Random.withSeed(seed))
      const fates = yield* run("mix")
      const count = (fate: string) => fates.filter((found) => found === fate).length
      assert.isTrue(count("failed") > 60 && count("failed") < 140, `${count("failed")} failed`)
      assert.isTrue(count("replied") > 60 && count("replied") < 140, `${count("replied")} replied`)
      assert.isTrue(count("read") > 320 && count("read") < 480, `${count("read")} read`)
      assert.isTrue(count("delivered") > 320 && count("delivered") < 480, `${count("delivered")} delivered`)
      assert.deepStrictEqual(yield* run("mix"), fates)
    })))
})

describe("KeebaiEmulator request budget", () => {
  it.live("429 with Retry-After beyond the budget, GETs included, per token; room comes back with time", () =>
    live(Effect.gen(function*() {
      const emulator = yield* KeebaiEmulator.make({
        tokens: [{ token }, { token: "kbai_pk_other" }],
        budgets: [{ limit: 3, windowMillis: 1500 }],
        timing: fast
      })
      const accepted = yield* call(emulator.url, "POST", "/v1/messages/bulk", { body: bulk(1) })
      yield* call(emulator.url, "GET", `/v1/messages/bulk/${accepted.body.broadcast_id}`)
      yield* call(emulator.url, "GET", `/v1/messages/bulk/${accepted.body.broadcast_id}`)
      const limited = yield* call(emulator.url, "POST", "/v1/messages/bulk", { body: bulk(1, {}, 1) })
      assert.strictEqual(limited.status, 429)
      assert.strictEqual(limited.body.error.code, "rate_limited")
      const retryAfter = Number(limited.headers["retry-after"])
      assert.isTrue(retryAfter >= 1 && retryAfter <= 2, `retry-after ${retryAfter}`)
      assert.strictEqual(yield* emulator.sendCount(phone(1)), 0, "a refused call sends nothing")
      const other = yield* call(emulator.url, "POST", "/v1/messages/bulk", {
        token: "kbai_pk_other",
        body: bulk(1, {}, 2)
      })
      assert.strictEqual(other.status, 202, "another token has its own budget")
      yield* Effect.sleep(Duration.millis(1600))
      const later = yield* call(emulator.url, "POST", "/v1/messages/bulk", { body: bulk(1, {}, 1) })
      assert.strictEqual(later.status, 202)
      const statuses = (yield* emulator.requests).map((request) => `${request.method} ${request.status}`)
      assert.deepStrictEqual(statuses, ["POST 202", "GET 200", "GET 200", "POST 429", "POST 202", "POST 202"])
    })))

  it("admit counts sliding windows and answers when room comes back", () => {
    const log: Array<number> = []
    const budgets = [{ limit: 2, windowMillis: 1000 }, { limit: 3, windowMillis: 10_000 }]
    assert.deepStrictEqual(Budget.admit(log, budgets, 0), { ok: true })
    assert.deepStrictEqual(Budget.admit(log, budgets, 400), { ok: true })
    assert.deepStrictEqual(Budget.admit(log, budgets, 900), { ok: false, retryAfterMillis: 100 })
    assert.deepStrictEqual(Budget.admit(log, budgets, 1000), { ok: true })
    // The 10 s window is full now: room comes back when the first request leaves it.
    assert.deepStrictEqual(Budget.admit(log, budgets, 2500), { ok: false, retryAfterMillis: 7500 })
    assert.deepStrictEqual(Budget.admit(log, budgets, 10_000), { ok: true })
    assert.deepStrictEqual(log, [400, 1000, 10_000], "refused requests are not counted; stale ones are pruned")
    assert.deepStrictEqual(Budget.admit([], [], 0), { ok: true })
  })

  it("the default budgets are Keebai's 60 per minute and 1,000 per hour", () => {
    const log: Array<number> = []
    for (let i = 0; i < 60; i++) assert.isTrue(Budget.admit(log, Budget.keebaiBudgets, i * 10).ok)
    assert.deepStrictEqual(Budget.admit(log, Budget.keebaiBudgets, 600), { ok: false, retryAfterMillis: 59_400 })
    const hour: Array<number> = []
    for (let i = 0; i < 1000; i++) assert.isTrue(Budget.admit(hour, Budget.keebaiBudgets, i * 1000).ok)
    const refused = Budget.admit(hour, Budget.keebaiBudgets, 1_000_000)
    assert.deepStrictEqual(refused, { ok: false, retryAfterMillis: 2_600_000 })
  })
})

describe("KeebaiEmulator webhooks", () => {
  it.live("every step of every message is a signed webhook echoing meta_data; replies come as received", () =>
    live(Effect.gen(function*() {
      const hooks = yield* receiver
      const secret = "whsec_test_secret"
      const emulator = yield* KeebaiEmulator.make({
        timing: fast,
        outcomes: { failed: 0.2, read: 0.3, replied: 0.2 },
        webhook: { url: hooks.url, secret, delay: { min: 0, max: 30 }, duplicateShare: 0.1 }
      })
      yield* call(emulator.url, "POST", "/v1/messages/bulk", { body: bulk(50) })
      yield* emulator.idle
      for (const hit of hooks.hits) {
        const expected = `sha256=${createHmac("sha256", secret).update(hit.body).digest("hex")}`
        assert.strictEqual(hit.signature, expected)
      }
      const events = hooks.hits.map((hit) => JSON.parse(hit.body))
      const byId = new Map<string, string>()
      for (const [i, event] of events.entries()) {
        // A duplicate carries the same id and the same body.
        const seen = byId.get(event.id)
        if (seen !== undefined) assert.strictEqual(seen, hooks.hits[i]!.body)
        byId.set(event.id, hooks.hits[i]!.body)
        assert.match(event.type, /^whatsapp\.message\.(sent|delivered|read|failed|received)$/)
        assert.isString(event.occurred_at)
        assert.strictEqual(event.channel_id, "ch_1")
        assert.isString(event.data.message_id)
        assert.isString(event.data.recipient_id)
      }
      assert.isAbove(hooks.hits.length, byId.size, "some webhooks were delivered twice")
      const messages = yield* emulator.messages
      const unique = [...byId.values()].map((body) => JSON.parse(body))
      for (const message of messages) {
        const mine = unique.filter((event) =>
          event.data.message_id === message.messageId || event.data.context?.message_id === message.messageId
        )
        const types = mine.map((event) => event.type.replace("whatsapp.message.", "")).sort()
        const expected = message.status === "failed"
          ? ["failed"]
          : message.replied
          ? ["delivered", "read", "received", "sent"]
          : message.status === "read"
          ? ["delivered", "read", "sent"]
          : ["delivered", "sent"]
        assert.deepStrictEqual(types, expected, message.messageId)
        for (const event of mine) {
          if (event.type === "whatsapp.message.received") {
            assert.strictEqual(event.data.from, message.to)
            assert.isUndefined(event.data.meta_data)
          } else {
            assert.deepStrictEqual(event.data.meta_data, message.metaData)
          }
          if (event.type === "whatsapp.message.failed") assert.strictEqual(event.data.error.code, "131026")
        }
      }
      assert.strictEqual((yield* emulator.webhookAttempts).length, hooks.hits.length)
    })))

  it.live("echoMetaData: false leaves meta_data out of the webhooks", () =>
    live(Effect.gen(function*() {
      const hooks = yield* receiver
      const emulator = yield* KeebaiEmulator.make({
        timing: fast,
        webhook: { url: hooks.url, secret: "whsec_x", echoMetaData: false }
      })
      yield* call(emulator.url, "POST", "/v1/messages/bulk", { body: bulk(5) })
      yield* emulator.idle
      assert.strictEqual(hooks.hits.length, 10)
      assert.isTrue(hooks.hits.every((hit) => JSON.parse(hit.body).data.meta_data === undefined))
    })))
})
