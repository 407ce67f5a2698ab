import * as Address from "@crier/core/Address"
import { Broadcaster } from "@crier/core/Broadcaster"
import * as MemoryTransport from "@crier/core/MemoryTransport"
import * as ProgressStore from "@crier/core/ProgressStore"
import * as Recipient from "@crier/core/Recipient"
import * as TemplateParams from "@crier/core/TemplateParams"
import * as KapsoWebhook from "@crier/kapso/KapsoWebhook"
import { assert, describe, it } from "@effect/vitest"
import { DateTime, Effect, Layer, Option, Redacted, Result } from "effect"
import { template } from "./fixtures.ts"

const secret = Redacted.make("whsec-test")
const now = DateTime.makeUnsafe("2026-01-01T00:00:00Z")

const v2Status = (status: string, extra: Record<string, unknown> = {}) => ({
  message: {
    id: "wamid.HBgM1",
    timestamp: "1705395000",
    type: "template",
    kapso: {
      direction: "outbound",
      status,
      statuses: status === "sent"
        ? [{ id: "wamid.HBgM1", status: "sent", timestamp: "1705395001", recipient_id: "14155550123" }]
        : [
          { id: "wamid.HBgM1", status: "sent", timestamp: "1705395001", recipient_id: "14155550123" },
          { id: "wamid.HBgM1", status, timestamp: "1705395005", recipient_id: "14155550123", ...extra }
        ]
    }
  },
  conversation: { id: "c-1", phone_number: "+14155550123", phone_number_id: "123" },
  phone_number_id: "123"
})

const parse = (event: string | undefined, payload: unknown) =>
  KapsoWebhook.parse({ event, body: typeof payload === "string" ? payload : JSON.stringify(payload), now })

const parsed = (event: string | undefined, payload: unknown) => {
  const result = parse(event, payload)
  assert.isTrue(Result.isSuccess(result), Result.isFailure(result) ? result.failure.message : "")
  return Result.getOrThrow(result)
}

describe("KapsoWebhook.verify", () => {
  const body = JSON.stringify(v2Status("delivered"))
  const good = KapsoWebhook.sign(secret, body)

  it("accepts the hex HMAC-SHA256 of the raw body, with or without sha256= and in any case", () => {
    assert.isTrue(Result.isSuccess(KapsoWebhook.verify(secret, body, good)))
    assert.isTrue(Result.isSuccess(KapsoWebhook.verify(secret, body, `sha256=${good}`)))
    assert.isTrue(Result.isSuccess(KapsoWebhook.verify(secret, Buffer.from(body), good.toUpperCase())))
  })

  it("rejects a missing signature, a wrong one, one of another length, and a changed body", () => {
    const reason = (signature: string | undefined, raw = body) => {
      const result = KapsoWebhook.verify(secret, raw, signature)
      return Result.isFailure(result) ? result.failure.reason : "ok"
    }
    assert.strictEqual(reason(undefined), "MissingSignature")
    assert.strictEqual(reason(""), "MissingSignature")
    assert.strictEqual(reason("0".repeat(64)), "BadSignature")
    assert.strictEqual(reason(good.slice(1)), "BadSignature")
    assert.strictEqual(reason(`${good}00`), "BadSignature")
    assert.strictEqual(reason(good, body.replace("delivered", "read")), "BadSignature")
    assert.strictEqual(reason(KapsoWebhook.sign(Redacted.make("other"), body)), "BadSignature")
  })

  it("read verifies before parsing, with headers in any case", () => {
    const headers = { "X-Webhook-Signature": good, "X-Webhook-Event": "whatsapp.message.delivered" }
    const ok = KapsoWebhook.read({ secret, headers, body, now })
    assert.strictEqual(Result.getOrThrow(ok).events[0]!.status._tag, "delivered")
    const bad = KapsoWebhook.read({ secret, headers: { ...headers, "X-Webhook-Signature": "00" }, body, now })
    assert.isTrue(Result.isFailure(bad))
  })
})

describe("KapsoWebhook.parse", () => {
  for (const status of ["sent", "delivered", "read"] as const) {
    it(`whatsapp.message.${status} is a ${status} event for the wamid, at the status's own time`, () => {
      const { events, replies } = parsed(`whatsapp.message.${status}`, v2Status(status))
      assert.strictEqual(replies.length, 0)
      assert.strictEqual(events.length, 1)
      assert.deepStrictEqual(events[0]!.ref, { _tag: "ByProviderMessageId", providerMessageId: "wamid.HBgM1" })
      assert.strictEqual(events[0]!.status._tag, status)
      assert.strictEqual(events[0]!.providerMessageId, "wamid.HBgM1")
      const at = status === "sent" ? "1705395001" : "1705395005"
      assert.strictEqual(DateTime.toEpochMillis(events[0]!.at), Number(at) * 1000)
    })
  }

  it("whatsapp.message.failed carries Meta's code and title", () => {
    const { events } = parsed(
      "whatsapp.message.failed",
      v2Status("failed", { errors: [{ code: 131026, title: "Message undeliverable", error_data: { details: "x" } }] })
    )
    assert.deepStrictEqual(events[0]!.status, { _tag: "failed", code: "131026", reason: "Message undeliverable: x" })
  })

  it("a failure without details falls back on the code's meaning", () => {
    const { events } = parsed("whatsapp.message.failed", v2Status("failed", { errors: [{ code: "131049" }] }))
    const status = events[0]!.status
    assert.strictEqual(status._tag, "failed")
    if (status._tag === "failed") {
      assert.strictEqual(status.code, "131049")
      assert.include(status.reason, "chose not to deliver")
    }
  })

  it("a status without its time in statuses takes `now`", () => {
    const { events } = parsed("whatsapp.message.read", { message: { id: "wamid.2" } })
    assert.deepStrictEqual(events[0]!.at, now)
  })

  it("whatsapp.message.received is a reply from the sender, and `replied` for the wamid it quotes", () => {
    const { events, replies, unattributed } = parsed("whatsapp.message.received", {
      message: {
        id: "wamid.IN",
        timestamp: "1705395300",
        from: "14155550123",
        type: "text",
        text: { body: "Yes please" },
        context: { id: "wamid.HBgM1" },
        kapso: { direction: "inbound" }
      },
      conversation: { phone_number: "+14155550123" },
      phone_number_id: "123"
    })
    assert.strictEqual(unattributed, 0)
    assert.deepStrictEqual(replies, [{
      from: Address.PhoneNumber.make("+14155550123"),
      at: DateTime.makeUnsafe(1705395300 * 1000),
      text: "Yes please"
    }])
    assert.strictEqual(events[0]!.status._tag, "replied")
    assert.deepStrictEqual(events[0]!.ref, { _tag: "ByProviderMessageId", providerMessageId: "wamid.HBgM1" })
  })

  it("a reply from a BSUID-only sender is attributed by its BSUID; one with no sender is counted, not lost", () => {
    const bsuid = parsed("whatsapp.message.received", {
      message: { id: "wamid.IN", text: { body: "hi" } },
      conversation: { business_scoped_user_id: "US.13491208655302741918" }
    })
    assert.strictEqual(bsuid.replies[0]!.from, "US.13491208655302741918")
    const nobody = parsed("whatsapp.message.received", { message: { id: "wamid.IN" } })
    assert.deepStrictEqual([nobody.replies.length, nobody.unattributed], [0, 1])
  })

  it("reads v1 payloads: whatsapp_message_id, phone_number, content, created_at", () => {
    const status = parsed("whatsapp.message.delivered", {
      message: { id: "uuid-1", whatsapp_message_id: "wamid.V1", message_type: "template", direction: "outbound" },
      conversation: { id: "c" },
      whatsapp_config: { id: "cfg" }
    })
    assert.strictEqual(status.events[0]!.providerMessageId, "wamid.V1")
    const reply = parsed("whatsapp.message.received", {
      message: {
        id: "uuid-2",
        message_type: "text",
        content: "Hello",
        direction: "inbound",
        phone_number: "+14155550123",
        created_at: "2024-01-15T10:30:00Z"
      }
    })
    assert.deepStrictEqual(reply.replies, [{
      from: Address.PhoneNumber.make("+14155550123"),
      at: DateTime.makeUnsafe("2024-01-15T10:30:00Z"),
      text: "Hello"
    }])
  })

  it("reads the { event, data } envelope and batches", () => {
    const envelope = parsed(undefined, { event: "whatsapp.message.read", data: v2Status("read") })
    assert.strictEqual(envelope.events[0]!.status._tag, "read")
    const batch = parsed("whatsapp.message.delivered", {
      batch: true,
      data: [v2Status("delivered"), v2Status("delivered")]
    })
    assert.strictEqual(batch.events.length, 2)
  })

  it("other events yield nothing", () => {
    assert.deepStrictEqual(parsed("whatsapp.conversation.created", v2Status("sent")), {
      events: [],
      replies: [],
      unattributed: 0
    })
    assert.strictEqual(parsed(undefined, v2Status("sent")).events.length, 0)
  })

  it("a body that is not JSON, or not a Kapso payload, is Malformed", () => {
    for (const body of ["not json", JSON.stringify({ message: { id: 42 } }), JSON.stringify([1, 2])]) {
      const result = parse("whatsapp.message.sent", body)
      assert.isTrue(Result.isFailure(result), body)
      if (Result.isFailure(result)) assert.strictEqual(result.failure.reason, "Malformed")
    }
  })
})

describe("KapsoWebhook.intake", () => {
  const engine = Broadcaster.layer.pipe(
    Layer.provideMerge(Layer.merge(ProgressStore.ProgressStore.layerMemory, MemoryTransport.layer()))
  )

  it.effect("applies status events to the store and replies to their broadcasts; refuses a bad signature", () =>
    Effect.gen(function*() {
      const broadcaster = yield* Broadcaster
      const store = yield* ProgressStore.ProgressStore
      const created = yield* broadcaster.create({ name: "spring", template, sender: "s" })
      const address = Address.PhoneNumber.make("+14155550123")
      yield* broadcaster.addRecipients(created.id, [
        new Recipient.NewRecipient({
          address,
          params: new TemplateParams.TemplateParams({ body: ["Ada"], buttons: [] }),
          metadata: {}
        })
      ])
      yield* store.transitionBroadcast(created.id, { from: ["draft"], to: "sending" })
      yield* store.claim(created.id, { limit: 1, owner: "t", leaseMillis: 60_000, now: yield* DateTime.now })
      yield* store.recordReceipts(
        created.id,
        [{ _tag: "Accepted", seq: 1, providerMessageId: "wamid.HBgM1" }],
        yield* DateTime.now
      )

      const body = JSON.stringify(v2Status("read"))
      const headers = {
        "x-webhook-event": "whatsapp.message.read",
        "x-webhook-signature": KapsoWebhook.sign(secret, body)
      }
      const read = yield* KapsoWebhook.intake({ secret, headers, body })
      assert.strictEqual(read.applied.applied, 1)
      const replyBody = JSON.stringify({ message: { id: "wamid.IN", from: "14155550123", text: { body: "Yes" } } })
      const replied = yield* KapsoWebhook.intake({
        secret,
        headers: {
          "x-webhook-event": "whatsapp.message.received",
          "x-webhook-signature": KapsoWebhook.sign(secret, replyBody)
        },
        body: replyBody
      })
      assert.isTrue(Option.isSome(replied.replies[0]!))
      const row = (yield* store.recipients(created.id, { limit: 1 })).items[0]!
      assert.strictEqual(row.status._tag, "replied")

      const refused = yield* Effect.flip(
        KapsoWebhook.intake({ secret, headers: { ...headers, "x-webhook-signature": "bad" }, body })
      )
      assert.strictEqual(refused._tag === "KapsoWebhookError" ? refused.reason : refused._tag, "BadSignature")
    }).pipe(Effect.provide(engine)))
})
