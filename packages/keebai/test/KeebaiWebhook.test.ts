import * as Broadcast from "@crier/core/Broadcast"
import * as Broadcaster from "@crier/core/Broadcaster"
import * as ProgressStore from "@crier/core/ProgressStore"
import * as Recipient from "@crier/core/Recipient"
import type * as StatusEvent from "@crier/core/StatusEvent"
import * as KeebaiBulk from "@crier/keebai/KeebaiBulk"
import * as KeebaiWebhook from "@crier/keebai/KeebaiWebhook"
import { NodeHttpClient, NodeHttpServer } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { DateTime, Effect, Fiber, Option, Redacted, Result } from "effect"
import { HttpClient, HttpClientRequest, HttpServer } from "effect/http"
import { createHmac } from "node:crypto"
import { createServer } from "node:http"

const secret = Redacted.make("whsec_c2VjcmV0LXNpZ25pbmcta2V5")
const broadcastId = Broadcast.BroadcastId.make("bc_01JZ0000000000000000000000")
const ours = Recipient.recipientId(broadcastId, 42)

const envelope = (type: string, data: Record<string, unknown>, id = "evt_1") =>
  JSON.stringify({
    id,
    type: `whatsapp.message.${type}`,
    occurred_at: "2026-03-01T12:00:05.250Z",
    company_id: "cmp_1",
    channel_id: "ch_7",
    data
  })

const status = (type: string, extra: Record<string, unknown> = {}, id?: string) =>
  envelope(type, {
    message_id: "msg_9",
    recipient_id: "rcp_9",
    meta_data: { [KeebaiBulk.metaDataKey]: ours },
    ...extra
  }, id)

const decodeStatus = (body: string): StatusEvent.StatusEvent => {
  const decoded = KeebaiWebhook.decode(body)
  assert.isTrue(Result.isSuccess(decoded), JSON.stringify(decoded))
  const event = Result.getOrThrow(decoded)
  assert.strictEqual(event._tag, "Status")
  return (event as Extract<KeebaiWebhook.Event, { _tag: "Status" }>).event
}

const malformed = (body: string) => {
  const decoded = KeebaiWebhook.decode(body)
  assert.isTrue(Result.isFailure(decoded), body)
  if (Result.isFailure(decoded)) assert.strictEqual(decoded.failure.reason, "Malformed")
}

describe("KeebaiWebhook signatures", () => {
  it("accepts the HMAC-SHA256 of the raw body, with or without its sha256= prefix", () => {
    const body = status("delivered")
    const hex = createHmac("sha256", Redacted.value(secret)).update(body).digest("hex")
    assert.strictEqual(KeebaiWebhook.sign(secret, body), `sha256=${hex}`)
    assert.isTrue(Result.isSuccess(KeebaiWebhook.verify(secret, body, `sha256=${hex}`)))
    assert.isTrue(Result.isSuccess(KeebaiWebhook.verify(secret, body, hex)))
    assert.isTrue(Result.isSuccess(KeebaiWebhook.verify(secret, body, ` SHA256=${hex.toUpperCase()} `)))
  })

  it("refuses a missing, malformed, short, wrong-key or tampered signature", () => {
    const body = status("delivered")
    const good = KeebaiWebhook.sign(secret, body)
    const refusals = [
      [body, undefined],
      [body, ""],
      [body, "sha256="],
      [body, "sha1=abc"],
      [body, good.slice(0, -2)],
      [body, `${good}00`],
      [body, `sha256=${"z".repeat(64)}`],
      [body, KeebaiWebhook.sign(Redacted.make("whsec_other"), body)],
      [body.replace("delivered", "read"), good],
      [`${body} `, good]
    ] as const
    for (const [raw, signature] of refusals) {
      const verified = KeebaiWebhook.verify(secret, raw, signature)
      assert.isTrue(Result.isFailure(verified), String(signature))
      if (Result.isFailure(verified)) {
        assert.strictEqual(verified.failure.reason, "BadSignature")
        assert.notInclude(verified.failure.message, Redacted.value(secret))
      }
    }
  })
})

describe("KeebaiWebhook decode", () => {
  it("maps sent, delivered and read to status events naming our row through the echoed meta_data", () => {
    for (const type of ["sent", "delivered", "read"] as const) {
      const event = decodeStatus(status(type))
      assert.deepStrictEqual(event.ref, { _tag: "ById", broadcastId, seq: 42 })
      assert.deepStrictEqual(event.status, { _tag: type })
      assert.strictEqual(event.providerMessageId, "msg_9")
      assert.strictEqual(DateTime.toEpochMillis(event.at), Date.parse("2026-03-01T12:00:05.250Z"))
    }
  })

  it("maps failed with Keebai's code and message (or title, or a default)", () => {
    const coded = decodeStatus(status("failed", { error: { code: 131026, message: "Message undeliverable" } }))
    assert.deepStrictEqual(coded.status, { _tag: "failed", code: "131026", reason: "Message undeliverable" })
    const titled = decodeStatus(status("failed", { error: { code: "E42", title: "Blocked" } }))
    assert.deepStrictEqual(titled.status, { _tag: "failed", code: "E42", reason: "Blocked" })
    const bare = decodeStatus(status("failed", { error: null }))
    assert.strictEqual(bare.status._tag, "failed")
    assert.isUndefined((bare.status as { code?: string }).code)
  })

  it("without our id in meta_data, the event names the row by Keebai's message id", () => {
    for (
      const meta of [undefined, null, {}, { [KeebaiBulk.metaDataKey]: "not-ours" }, { [KeebaiBulk.metaDataKey]: 7 }]
    ) {
      const body = envelope("delivered", { message_id: "msg_9", recipient_id: "rcp_9", meta_data: meta })
      assert.deepStrictEqual(decodeStatus(body).ref, { _tag: "ByProviderMessageId", providerMessageId: "msg_9" })
    }
    malformed(envelope("delivered", { recipient_id: "rcp_9" }))
    malformed(envelope("delivered", { message_id: "" }))
  })

  it("maps received to a reply from its sender, with or without the plus", () => {
    for (const from of ["+5511960000042", "5511960000042"]) {
      const decoded = Result.getOrThrow(
        KeebaiWebhook.decode(envelope("received", { message_id: "in_1", from, text: "Sim, quero!" }, "evt_r"))
      )
      assert.strictEqual(decoded._tag, "Reply")
      if (decoded._tag !== "Reply") continue
      assert.strictEqual(decoded.id, "evt_r")
      assert.strictEqual(decoded.reply.from, "+5511960000042")
      assert.strictEqual(decoded.reply.text, "Sim, quero!")
      assert.strictEqual(DateTime.toEpochMillis(decoded.reply.at!), Date.parse("2026-03-01T12:00:05.250Z"))
    }
    const nested = Result.getOrThrow(
      KeebaiWebhook.decode(envelope("received", { from: "+5511960000042", text: { body: "ok" } }))
    )
    assert.strictEqual(nested._tag === "Reply" ? nested.reply.text : undefined, "ok")
    malformed(envelope("received", { from: "not a number" }))
    malformed(envelope("received", {}))
  })

  it("acknowledges other event types without meaning anything", () => {
    const decoded = Result.getOrThrow(KeebaiWebhook.decode(envelope("reaction", { message_id: "msg_9" })))
    assert.deepStrictEqual(decoded, { _tag: "Ignored", id: "evt_1", type: "whatsapp.message.reaction" })
  })

  it("refuses bodies that are not a Keebai event", () => {
    for (
      const body of [
        "",
        "not json",
        "[]",
        JSON.stringify({ type: "whatsapp.message.sent", occurred_at: "2026-03-01T12:00:00Z", data: {} }),
        JSON.stringify({ id: "", type: "whatsapp.message.sent", occurred_at: "2026-03-01T12:00:00Z", data: {} }),
        JSON.stringify({ id: "evt_1", type: "whatsapp.message.sent", occurred_at: "yesterday", data: {} }),
        JSON.stringify({ id: "evt_1", type: "whatsapp.message.sent", occurred_at: "2026-03-01T12:00:00Z" }),
        status("failed", { error: { code: [1] } })
      ]
    ) malformed(body)
  })
})

describe("KeebaiWebhook intake", () => {
  const applied: Array<string> = []
  const record = (event: KeebaiWebhook.Event) => Effect.sync(() => void applied.push(event.id))

  it.effect("dedupes on the event id, refuses bad signatures and malformed bodies before applying", () =>
    Effect.gen(function*() {
      applied.length = 0
      const intake = yield* KeebaiWebhook.makeIntake({ secret })
      const body = status("delivered", {}, "evt_a")
      const first = yield* intake.receive(body, KeebaiWebhook.sign(secret, body), record)
      assert.strictEqual(first._tag, "Status")
      const again = yield* intake.receive(body, KeebaiWebhook.sign(secret, body), record)
      assert.deepStrictEqual(again, { _tag: "Duplicate", id: "evt_a" })
      const forged = yield* Effect.flip(intake.receive(status("read", {}, "evt_b"), "sha256=00", record))
      assert.strictEqual(forged._tag === "KeebaiWebhookError" ? forged.reason : "", "BadSignature")
      const junk = yield* Effect.flip(intake.receive("{}", KeebaiWebhook.sign(secret, "{}"), record))
      assert.strictEqual(junk._tag === "KeebaiWebhookError" ? junk.reason : "", "Malformed")
      assert.deepStrictEqual(applied, ["evt_a"])
    }))

  it.effect("an event whose apply failed is taken again on Keebai's retry", () =>
    Effect.gen(function*() {
      const intake = yield* KeebaiWebhook.makeIntake({ secret })
      const body = status("sent", {}, "evt_retry")
      const signature = KeebaiWebhook.sign(secret, body)
      const failed = yield* Effect.flip(intake.receive(body, signature, () => Effect.fail("store down" as const)))
      assert.strictEqual(failed, "store down")
      const retried = yield* intake.receive(body, signature, () => Effect.void)
      assert.strictEqual(retried._tag, "Status")
    }))

  it.effect("remembers the newest ids up to its capacity", () =>
    Effect.gen(function*() {
      const intake = yield* KeebaiWebhook.makeIntake({ secret, remember: 2 })
      const deliver = (id: string) => {
        const body = status("sent", {}, id)
        return Effect.map(intake.receive(body, KeebaiWebhook.sign(secret, body), () => Effect.void), (r) => r._tag)
      }
      assert.deepStrictEqual(
        [yield* deliver("e1"), yield* deliver("e2"), yield* deliver("e3"), yield* deliver("e3"), yield* deliver("e1")],
        ["Status", "Status", "Status", "Duplicate", "Status"]
      )
    }))
})

describe("KeebaiWebhook handler", () => {
  it.live("answers 200, 200 for a duplicate, 401, 400, and 500 when applying fails", () =>
    Effect.gen(function*() {
      const intake = yield* KeebaiWebhook.makeIntake({ secret })
      const taken: Array<string> = []
      const server = yield* NodeHttpServer.make(() => createServer(), { port: 0, host: "127.0.0.1" })
      yield* server.serve(KeebaiWebhook.handler(intake, (event) =>
        event.id === "evt_boom"
          ? Effect.fail("store down")
          : Effect.sync(() => void taken.push(event.id))))
      const url = `${HttpServer.formatAddress(server.address)}/webhooks/keebai`
      const client = yield* HttpClient.HttpClient
      const post = (body: string, signature = KeebaiWebhook.sign(secret, body)) =>
        client.execute(
          HttpClientRequest.post(url).pipe(
            HttpClientRequest.setHeader(KeebaiWebhook.signatureHeader, signature),
            HttpClientRequest.bodyText(body, "application/json")
          )
        ).pipe(Effect.flatMap((response) => Effect.map(response.text, (text) => [response.status, text] as const)))
      const ok = status("read", {}, "evt_ok")
      assert.deepStrictEqual(yield* post(ok), [200, JSON.stringify({ received: "Status" })])
      assert.deepStrictEqual(yield* post(ok), [200, JSON.stringify({ received: "Duplicate" })])
      assert.strictEqual((yield* post(ok, "sha256=bad"))[0], 401)
      assert.strictEqual((yield* post("{\"id\":1}"))[0], 400)
      assert.strictEqual((yield* post(status("read", {}, "evt_boom")))[0], 500)
      assert.deepStrictEqual(taken, ["evt_ok"])
    }).pipe(Effect.scoped, Effect.provide(NodeHttpClient.layerUndici)))
})

describe("KeebaiWebhook toEngineBatched", () => {
  /** A Broadcaster that records what reaches it; `failWrites` makes every status write fail. */
  const engine = (failWrites = false) => {
    const writes: Array<ReadonlyArray<string>> = []
    const replies: Array<string> = []
    const service = {
      applyStatusEvents: (events: ReadonlyArray<StatusEvent.StatusEvent>) =>
        Effect.suspend(() => {
          writes.push(events.map((event) => event.ref._tag === "ById" ? String(event.ref.seq) : "?"))
          return failWrites
            ? Effect.fail(new ProgressStore.StoreError({ reason: "Unavailable", message: "disk full" }))
            : Effect.succeed({ applied: events.length, unchanged: 0, unknown: 0 })
        }),
      recordReply: (reply: Broadcaster.Reply) => Effect.sync(() => (replies.push(reply.from), Option.none()))
    } as unknown as Broadcaster.Broadcaster["Service"]
    return { service, writes, replies }
  }

  const statusOf = (seq: number): KeebaiWebhook.Event => ({
    _tag: "Status",
    id: `evt_${seq}`,
    event: decodeStatus(
      status("delivered", { meta_data: { [KeebaiBulk.metaDataKey]: Recipient.recipientId(broadcastId, seq) } })
    )
  })

  it.effect("statuses arriving together go to the store in one write, each caller answered after it", () =>
    Effect.gen(function*() {
      const { replies, service, writes } = engine()
      const apply = yield* KeebaiWebhook.toEngineBatched({ maxBatch: 3 }).pipe(
        Effect.provideService(Broadcaster.Broadcaster, service)
      )
      const fibers = yield* Effect.forEach([1, 2, 3, 4, 5], (seq) => Effect.forkChild(apply(statusOf(seq))))
      yield* Fiber.joinAll(fibers)
      assert.deepStrictEqual(writes, [["1", "2", "3"], ["4", "5"]])
      const reply = Result.getOrThrow(KeebaiWebhook.decode(envelope("received", { from: "+5511960000042" })))
      yield* apply(reply)
      yield* apply({ _tag: "Ignored", id: "evt_x", type: "whatsapp.message.reaction" })
      assert.deepStrictEqual(replies, ["+5511960000042"])
      assert.strictEqual(writes.length, 2)
    }).pipe(Effect.scoped))

  it.effect("a failed write fails every webhook in it, so each is retried", () =>
    Effect.gen(function*() {
      const { service } = engine(true)
      const apply = yield* KeebaiWebhook.toEngineBatched().pipe(Effect.provideService(Broadcaster.Broadcaster, service))
      const fibers = yield* Effect.forEach([1, 2], (seq) => Effect.forkChild(Effect.flip(apply(statusOf(seq)))))
      const errors = yield* Fiber.joinAll(fibers)
      assert.deepStrictEqual(errors.map((error) => error._tag), ["StoreError", "StoreError"])
    }).pipe(Effect.scoped))
})
