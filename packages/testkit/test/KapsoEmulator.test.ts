import * as KapsoEmulator from "@crier/testkit/KapsoEmulator"
import { NodeHttpClient, NodeHttpServer } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Stream } from "effect"
import { HttpClient, HttpClientRequest, HttpServer, HttpServerRequest, HttpServerResponse } from "effect/http"
import { TestClock } from "effect/testing"
import { createHmac } from "node:crypto"
import { createServer } from "node:http"

interface Reply {
  readonly status: number
  readonly body: any
  readonly headers: Readonly<Record<string, string>>
}

/** One request to the emulator over real HTTP. */
const call = (
  emulator: KapsoEmulator.KapsoEmulator["Service"],
  method: "GET" | "POST",
  path: string,
  options: { readonly key?: string | null; readonly body?: unknown; readonly raw?: string } = {}
) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const url = `${emulator.url}${path}`
    let request = method === "GET" ? HttpClientRequest.get(url) : HttpClientRequest.post(url)
    if (options.key !== null) {
      request = HttpClientRequest.setHeader(request, "X-API-Key", options.key ?? emulator.apiKey)
    }
    if (options.raw !== undefined) request = HttpClientRequest.bodyText(request, options.raw, "application/json")
    else if (options.body !== undefined) request = HttpClientRequest.bodyJsonUnsafe(request, options.body)
    const response = yield* client.execute(request)
    const text = yield* response.text
    return { status: response.status, body: text === "" ? undefined : JSON.parse(text), headers: response.headers }
  }) as Effect.Effect<Reply, unknown, HttpClient.HttpClient>

const run = <A, E>(effect: Effect.Effect<A, E, any>) =>
  effect.pipe(Effect.scoped, Effect.provide(NodeHttpClient.layerUndici)) as Effect.Effect<A, E, never>

const phone = (i: number) => `+5511960${String(i).padStart(6, "0")}`

const options = (extra: KapsoEmulator.Options = {}): KapsoEmulator.Options => ({
  configs: [{ id: "cfg" }, { id: "sandbox", production: false }, { id: "other" }],
  templates: [
    { id: "t-pos", name: "promo", language: "en", body: { _tag: "positional", count: 2 } },
    {
      id: "t-named",
      name: "promo_named",
      language: "pt_BR",
      body: { _tag: "named", keys: ["first_name"] },
      header: "image"
    },
    { id: "t-draft", name: "draft_one", language: "en", status: "draft", body: { _tag: "positional", count: 0 } },
    { id: "t-cfg", name: "only_cfg", language: "en", body: { _tag: "positional", count: 1 }, configIds: ["cfg"] }
  ],
  timing: { batchSize: 2, interval: "1 second", delivered: "1 second", read: "1 second", responded: "1 second" },
  ...extra
})

const create = (emulator: KapsoEmulator.KapsoEmulator["Service"], templateId = "t-pos", configId = "cfg") =>
  call(emulator, "POST", "/whatsapp_broadcasts", {
    body: { whatsapp_broadcast: { name: "July", whatsapp_config_id: configId, whatsapp_template_id: templateId } }
  })

const recipients = (count: number, from = 0) =>
  Array.from({ length: count }, (_, i) => ({ phone_number: phone(from + i), template_parameters: ["a", "b"] }))

/** A draft with `count` recipients, and its id. */
const draft = (emulator: KapsoEmulator.KapsoEmulator["Service"], count: number) =>
  Effect.gen(function*() {
    const id: string = (yield* create(emulator)).body.data.id
    const added = yield* call(emulator, "POST", `/whatsapp_broadcasts/${id}/recipients`, {
      body: { recipients: recipients(count) }
    })
    assert.strictEqual(added.status, 201)
    return id
  })

describe("KapsoEmulator auth and routing", () => {
  it.effect("401 without the API key or with another; 404 elsewhere; 400 for a body that is not JSON", () =>
    run(Effect.gen(function*() {
      const emulator = yield* KapsoEmulator.make(options())
      const missing = yield* call(emulator, "GET", "/whatsapp_broadcasts", { key: null })
      assert.deepStrictEqual([missing.status, missing.body], [401, { error: "API key is required" }])
      const wrong = yield* call(emulator, "GET", "/whatsapp_broadcasts", { key: "nope" })
      assert.strictEqual(wrong.status, 401)
      assert.strictEqual((yield* call(emulator, "GET", "/nowhere")).status, 404)
      assert.strictEqual((yield* call(emulator, "GET", "/whatsapp_broadcasts/nope")).body.error, "Broadcast not found")
      const bad = yield* call(emulator, "POST", "/whatsapp_broadcasts", { raw: "{not json" })
      assert.strictEqual(bad.status, 400)
      const seen = yield* emulator.requests
      assert.deepStrictEqual(seen.map((r) => r.status), [401, 401, 404, 404, 400])
      assert.strictEqual(seen[1]!.headers["x-api-key"], "nope")
    })))
})

describe("KapsoEmulator broadcasts", () => {
  it.effect("422 for an unknown or sandbox config, an unlinked or unapproved template, a missing body", () =>
    run(Effect.gen(function*() {
      const emulator = yield* KapsoEmulator.make(options())
      const error = (reply: Reply) => [reply.status, reply.body.error]
      assert.deepStrictEqual(error(yield* create(emulator, "t-pos", "nope")), [422, "WhatsApp config not found"])
      assert.deepStrictEqual(error(yield* create(emulator, "t-pos", "sandbox")), [
        422,
        "WhatsApp config must be production type"
      ])
      assert.deepStrictEqual(error(yield* create(emulator, "t-cfg", "other")), [422, "Template not linked to config"])
      assert.deepStrictEqual(error(yield* create(emulator, "t-unknown")), [422, "Template not linked to config"])
      assert.deepStrictEqual(error(yield* create(emulator, "t-draft")), [422, "Template must be approved"])
      const empty = yield* call(emulator, "POST", "/whatsapp_broadcasts", { body: {} })
      assert.strictEqual(empty.status, 422)
      const ok = yield* create(emulator, "t-cfg", "cfg")
      assert.strictEqual(ok.status, 201)
      assert.strictEqual(ok.body.data.status, "draft")
      assert.strictEqual(ok.body.data.total_recipients, 0)
      assert.strictEqual(ok.body.data.whatsapp_template.name, "only_cfg")
    })))

  it.effect("normalizes numbers to E.164 without +, skips and counts duplicates, names bad rows from 1", () =>
    run(Effect.gen(function*() {
      const emulator = yield* KapsoEmulator.make(options())
      const id: string = (yield* create(emulator)).body.data.id
      const added = yield* call(emulator, "POST", `/whatsapp_broadcasts/${id}/recipients`, {
        body: {
          recipients: [
            { phone_number: "+55 (11) 96000-0001", template_parameters: ["a", "b"] },
            { phone_number: "+999", template_parameters: ["a", "b"] },
            { phone_number: "5511960000001", template_parameters: ["a", "b"] },
            { phone_number: phone(2), template_parameters: ["a"] },
            { phone_number: phone(3), template_parameters: { first: "a" } },
            { template_parameters: ["a", "b"] },
            { phone_number: phone(4), template_parameters: ["a", "b"] }
          ]
        }
      })
      assert.deepStrictEqual(added.body.data, {
        added: 2,
        duplicates: 1,
        errors: [
          "Recipient 2: invalid phone number format",
          "Recipient 4: template parameters invalid - Template requires 2 parameters but 1 provided",
          "Recipient 5: template parameters invalid - Template requires 2 positional parameters as an array",
          "Recipient 6: invalid phone number format"
        ]
      })
      const again = yield* call(emulator, "POST", `/whatsapp_broadcasts/${id}/recipients`, {
        body: { recipients: recipients(1, 1) }
      })
      assert.deepStrictEqual(again.body.data, { added: 0, duplicates: 1, errors: [] })
      assert.deepStrictEqual((yield* emulator.recipients(id)).map((r) => r.phone), ["5511960000001", "5511960000004"])
    })))

  it.effect("counts from 0 when told; named templates want their keys and the media header's header_url", () =>
    run(Effect.gen(function*() {
      const emulator = yield* KapsoEmulator.make(options({ errorIndexBase: 0 }))
      const id: string = (yield* create(emulator, "t-named")).body.data.id
      const added = yield* call(emulator, "POST", `/whatsapp_broadcasts/${id}/recipients`, {
        body: {
          recipients: [
            { phone_number: phone(1), template_parameters: { first_name: "Ada", header_url: "https://x/a.jpg" } },
            { phone_number: phone(2), template_parameters: { first_name: "Bo" } },
            { phone_number: phone(3), template_parameters: { header_url: "https://x/a.jpg" } },
            { phone_number: phone(4), template_parameters: ["Ada"] }
          ]
        }
      })
      assert.deepStrictEqual(added.body.data, {
        added: 1,
        duplicates: 0,
        errors: [
          "Recipient 1: template parameters invalid - Missing required parameter 'header_url'",
          "Recipient 2: template parameters invalid - Missing required parameter 'first_name'",
          "Recipient 3: template parameters invalid - Template requires named parameters first_name"
        ]
      })
    })))

  it.effect("422 for more than 1,000 or no recipients array; adds only while draft", () =>
    run(Effect.gen(function*() {
      const emulator = yield* KapsoEmulator.make(options())
      const id = yield* draft(emulator, 2)
      const path = `/whatsapp_broadcasts/${id}/recipients`
      const over = yield* call(emulator, "POST", path, { body: { recipients: recipients(1001, 10) } })
      assert.deepStrictEqual([over.status, over.body.error], [422, "Cannot add more than 1000 recipients per request"])
      const none = yield* call(emulator, "POST", path, { body: { people: [] } })
      assert.deepStrictEqual([none.status, none.body.error], [422, "Recipients array is required"])
      assert.strictEqual((yield* call(emulator, "POST", `/whatsapp_broadcasts/${id}/send`)).status, 202)
      const late = yield* call(emulator, "POST", path, { body: { recipients: recipients(1, 5) } })
      assert.deepStrictEqual([late.status, late.body.error], [
        422,
        "Cannot add recipients to broadcast in sending status"
      ])
      yield* TestClock.adjust(Duration.seconds(5))
      const later = yield* call(emulator, "POST", path, { body: { recipients: recipients(1, 5) } })
      assert.strictEqual(later.body.error, "Cannot add recipients to broadcast in completed status")
    })))

  it.effect("send: 422 when empty, already sending, or already completed", () =>
    run(Effect.gen(function*() {
      const emulator = yield* KapsoEmulator.make(options())
      const empty: string = (yield* create(emulator)).body.data.id
      const refused = yield* call(emulator, "POST", `/whatsapp_broadcasts/${empty}/send`)
      assert.deepStrictEqual([refused.status, refused.body.error], [422, "Broadcast has no recipients"])
      const id = yield* draft(emulator, 3)
      const sent = yield* call(emulator, "POST", `/whatsapp_broadcasts/${id}/send`)
      assert.strictEqual(sent.status, 202)
      assert.strictEqual(sent.body.data.status, "sending")
      assert.isString(sent.body.data.started_at)
      assert.strictEqual(
        (yield* call(emulator, "POST", `/whatsapp_broadcasts/${id}/send`)).body.error,
        "Broadcast is already sending"
      )
      yield* TestClock.adjust(Duration.seconds(2))
      assert.strictEqual(
        (yield* call(emulator, "POST", `/whatsapp_broadcasts/${id}/send`)).body.error,
        "Broadcast already completed"
      )
    })))

  it.effect("sends asynchronously, a batch per interval, and steps through delivered, read and responded", () =>
    run(Effect.gen(function*() {
      const emulator = yield* KapsoEmulator.make(options({
        outcomes: {
          mix: [{ share: 0.2, fate: { _tag: "failed", code: "131026" } }],
          otherwise: { _tag: "responded" },
          byNumber: new Map([[phone(0), { _tag: "read" }]])
        }
      }))
      const id = yield* draft(emulator, 5)
      yield* call(emulator, "POST", `/whatsapp_broadcasts/${id}/send`)
      const get = () => Effect.map(call(emulator, "GET", `/whatsapp_broadcasts/${id}`), (r) => r.body.data)
      const at0 = yield* get()
      assert.deepStrictEqual([at0.status, at0.sent_count, at0.pending_count], ["sending", 0, 5])
      yield* TestClock.adjust(Duration.seconds(1))
      const at1 = yield* get()
      assert.strictEqual(at1.sent_count + at1.failed_count, 2)
      yield* TestClock.adjust(Duration.seconds(2))
      const at3 = yield* get()
      assert.strictEqual(at3.status, "completed", "every turn has come: sending is over")
      assert.isString(at3.completed_at)
      assert.strictEqual(at3.pending_count, 0)
      yield* TestClock.adjust(Duration.seconds(10))
      const end = yield* get()
      const fates = (yield* emulator.recipients(id)).map((r) => r.fate!._tag)
      const count = (tag: string) => fates.filter((fate) => fate === tag).length
      assert.strictEqual(fates[0], "read", "byNumber wins")
      assert.strictEqual(end.failed_count, count("failed"))
      assert.strictEqual(end.sent_count, 5 - count("failed"))
      assert.strictEqual(end.delivered_count, end.sent_count)
      assert.strictEqual(end.read_count, end.sent_count)
      assert.strictEqual(end.responded_count, count("responded"))
      assert.strictEqual(end.response_rate, Math.round((end.responded_count / end.sent_count) * 1000) / 10)
      const rows = (yield* call(emulator, "GET", `/whatsapp_broadcasts/${id}/recipients`)).body.data
      const failed = rows.find((row: any) => row.status === "failed")
      assert.deepStrictEqual(failed.error_details, { error_code: "131026" })
      assert.strictEqual(failed.error_message, "message undeliverable to this recipient")
      assert.isNull(failed.sent_at)
      const answered = rows.find((row: any) => row.responded_at !== null)
      const times = ["sent_at", "delivered_at", "read_at", "responded_at"].map((k) => Date.parse(answered[k]))
      assert.deepStrictEqual(times.slice(1).map((t, i) => t - times[i]!), [1000, 1000, 1000])
    })))

  it.effect("`settled` completes only after the last reply", () =>
    run(Effect.gen(function*() {
      const emulator = yield* KapsoEmulator.make(options({
        outcomes: { otherwise: { _tag: "responded" } },
        timing: {
          batchSize: 10,
          interval: "1 second",
          delivered: "1 second",
          read: "1 second",
          responded: "1 second",
          completion: "settled"
        }
      }))
      const id = yield* draft(emulator, 2)
      yield* call(emulator, "POST", `/whatsapp_broadcasts/${id}/send`)
      yield* TestClock.adjust(Duration.seconds(3))
      assert.strictEqual((yield* call(emulator, "GET", `/whatsapp_broadcasts/${id}`)).body.data.status, "sending")
      yield* TestClock.adjust(Duration.seconds(1))
      assert.strictEqual((yield* call(emulator, "GET", `/whatsapp_broadcasts/${id}`)).body.data.status, "completed")
    })))

  it.effect("pages recipients: per_page at most 100, meta with totals, empty past the end; lists broadcasts newest first", () =>
    run(Effect.gen(function*() {
      const emulator = yield* KapsoEmulator.make(options())
      const first = yield* draft(emulator, 1)
      const id: string = (yield* create(emulator)).body.data.id
      for (let i = 0; i < 3; i++) {
        yield* call(emulator, "POST", `/whatsapp_broadcasts/${id}/recipients`, {
          body: { recipients: recipients(100, i * 100) }
        })
      }
      const page = yield* call(emulator, "GET", `/whatsapp_broadcasts/${id}/recipients?page=2&per_page=500`)
      assert.deepStrictEqual(page.body.meta, { page: 2, per_page: 100, total_pages: 3, total_count: 300 })
      assert.strictEqual(page.body.data[0].phone_number, phone(100).slice(1))
      const past = yield* call(emulator, "GET", `/whatsapp_broadcasts/${id}/recipients?page=9&per_page=100`)
      assert.deepStrictEqual(past.body.data, [])
      const defaults = yield* call(emulator, "GET", `/whatsapp_broadcasts/${id}/recipients`)
      assert.strictEqual(defaults.body.data.length, 20)
      const list = yield* call(emulator, "GET", "/whatsapp_broadcasts")
      assert.deepStrictEqual(list.body.data.map((b: any) => b.id), [id, first])
    })))
})

describe("KapsoEmulator request budget", () => {
  it.effect("past the budget: 429 with Retry-After until the window ends, then requests pass again", () =>
    run(Effect.gen(function*() {
      const emulator = yield* KapsoEmulator.make(options({ budget: { limit: 3, window: Duration.seconds(10) } }))
      for (let i = 0; i < 3; i++) assert.strictEqual((yield* call(emulator, "GET", "/whatsapp_broadcasts")).status, 200)
      const limited = yield* call(emulator, "GET", "/whatsapp_broadcasts")
      assert.strictEqual(limited.status, 429)
      assert.strictEqual(limited.body.error, "Rate limit exceeded")
      assert.strictEqual(limited.headers["retry-after"], "10")
      yield* TestClock.adjust(Duration.seconds(10))
      assert.strictEqual((yield* call(emulator, "GET", "/whatsapp_broadcasts")).status, 200)
    })))

  it.effect("429 without Retry-After when told", () =>
    run(Effect.gen(function*() {
      const emulator = yield* KapsoEmulator.make(
        options({ budget: { limit: 1, window: Duration.seconds(10), retryAfter: false } })
      )
      yield* call(emulator, "GET", "/whatsapp_broadcasts")
      const limited = yield* call(emulator, "GET", "/whatsapp_broadcasts")
      assert.strictEqual(limited.status, 429)
      assert.isUndefined(limited.headers["retry-after"])
    })))

  it.effect("setBehaviour changes the budget from now on", () =>
    run(Effect.gen(function*() {
      const emulator = yield* KapsoEmulator.make(options())
      yield* emulator.setBehaviour({ budget: { limit: 0, window: Duration.seconds(1) } })
      assert.strictEqual((yield* call(emulator, "GET", "/whatsapp_broadcasts")).status, 429)
    })))
})

describe("KapsoEmulator templates", () => {
  it.effect("lists templates by name (contains), language and config", () =>
    run(Effect.gen(function*() {
      const emulator = yield* KapsoEmulator.make(options())
      const names = (query: string) =>
        Effect.map(call(emulator, "GET", `/whatsapp_templates${query}`), (r) => r.body.data.map((t: any) => t.name))
      assert.deepStrictEqual(yield* names("?q%5Bname_cont%5D=promo"), ["promo", "promo_named"])
      assert.deepStrictEqual(yield* names("?q%5Bname_cont%5D=promo&q%5Blanguage_code_eq%5D=pt_BR"), ["promo_named"])
      assert.deepStrictEqual(yield* names("?whatsapp_config_id=other&q%5Bname_cont%5D=only"), [])
    })))

  it.effect("send_template: 404 unknown, 422 for parameters or number, 200 with the wamid, then signed webhooks", () =>
    run(Effect.gen(function*() {
      const emulator = yield* KapsoEmulator.make(options({ outcomes: { otherwise: { _tag: "responded" } } }))
      const send = (id: string, template: Record<string, unknown>) =>
        call(emulator, "POST", `/whatsapp_templates/${id}/send_template`, { body: { template } })
      assert.deepStrictEqual((yield* send("t-x", { phone_number: phone(1) })).body, { error: "Template not found" })
      const params = yield* send("t-pos", { phone_number: phone(1), template_parameters: ["a"] })
      assert.deepStrictEqual([params.status, params.body.error], [
        422,
        "Template requires 2 parameters, but 1 were provided"
      ])
      const number = yield* send("t-pos", { phone_number: "+999", template_parameters: ["a", "b"] })
      assert.deepStrictEqual([number.status, number.body.error], [422, "Invalid phone number format"])
      const sent = yield* send("t-pos", {
        phone_number: phone(1),
        template_parameters: ["a", "b"],
        whatsapp_config_id: "cfg"
      })
      assert.strictEqual(sent.status, 200)
      assert.strictEqual(sent.body.status, "success")
      const wamid: string = sent.body.response.messages[0].id
      assert.match(wamid, /^wamid\./)
      yield* TestClock.adjust(Duration.seconds(5))
      yield* emulator.idle
      const hooks = yield* emulator.webhooks.pipe(Stream.take(4), Stream.runCollect)
      assert.deepStrictEqual(hooks.map((h) => h.event), [
        "whatsapp.message.sent",
        "whatsapp.message.delivered",
        "whatsapp.message.read",
        "whatsapp.message.received"
      ])
      for (const hook of hooks) {
        const expected = createHmac("sha256", emulator.webhookSecret).update(hook.body).digest("hex")
        assert.strictEqual(hook.headers["x-webhook-signature"], expected)
        assert.strictEqual(hook.headers["x-webhook-event"], hook.event)
      }
      const reply = JSON.parse(hooks[3]!.body)
      assert.strictEqual(reply.message.context.id, wamid)
      assert.strictEqual(reply.message.from, phone(1).slice(1))
      assert.deepStrictEqual((yield* emulator.templateSends).map((s) => s.wamid), [wamid])
    })))

  it.effect("POSTs webhooks to webhook.url, signed", () =>
    run(Effect.gen(function*() {
      const hits: Array<{ body: string; signature: string | undefined; event: string | undefined }> = []
      const server = yield* NodeHttpServer.make(() => createServer(), { port: 0, host: "127.0.0.1" })
      yield* server.serve(Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        hits.push({
          body: yield* request.text,
          signature: request.headers["x-webhook-signature"],
          event: request.headers["x-webhook-event"]
        })
        return HttpServerResponse.empty({ status: 200 })
      }))
      const emulator = yield* KapsoEmulator.make(options({
        outcomes: { otherwise: { _tag: "failed", code: "131049" } },
        webhook: { url: `${HttpServer.formatAddress(server.address)}/hooks` }
      }))
      yield* call(emulator, "POST", "/whatsapp_templates/t-pos/send_template", {
        body: { template: { phone_number: phone(1), template_parameters: ["a", "b"] } }
      })
      yield* emulator.idle
      assert.strictEqual(hits.length, 1)
      assert.strictEqual(hits[0]!.event, "whatsapp.message.failed")
      assert.strictEqual(
        hits[0]!.signature,
        createHmac("sha256", emulator.webhookSecret).update(hits[0]!.body).digest("hex")
      )
    })))
})
