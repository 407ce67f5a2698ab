import * as Address from "@crier/core/Address"
import type * as Broadcast from "@crier/core/Broadcast"
import { Broadcaster } from "@crier/core/Broadcaster"
import * as MemoryTransport from "@crier/core/MemoryTransport"
import * as ProgressStore from "@crier/core/ProgressStore"
import * as Recipient from "@crier/core/Recipient"
import * as TemplateParams from "@crier/core/TemplateParams"
import * as TemplateSpec from "@crier/core/TemplateSpec"
import { NodeHttpClient } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { DateTime, Effect, Fiber, Layer, Option, Redacted, Result } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import { TestClock } from "effect/testing"
import * as MetaWebhook from "../src/MetaWebhook.ts"
import { appSecret, recordingBroadcaster, serve, verifyToken } from "./fixtures.ts"

// ---------------------------------------------------------------------------------------------------------------
// Payloads as Meta sends them

const envelope = (value: object, field = "messages") => ({
  object: "whatsapp_business_account",
  entry: [{
    id: "200000000000001",
    changes: [{
      field,
      value: {
        messaging_product: "whatsapp",
        metadata: { display_phone_number: "15550001111", phone_number_id: "100000000000001" },
        ...value
      }
    }]
  }]
})

interface StatusInput {
  readonly wamid?: string
  readonly status: string
  readonly at?: number
  readonly callback?: string | undefined
  readonly code?: number
}

const statusOf = (input: StatusInput) => ({
  id: input.wamid ?? "wamid.X",
  status: input.status,
  timestamp: String(input.at ?? 1_750_000_000),
  recipient_id: "5511970000001",
  ...(input.callback === undefined ? {} : { biz_opaque_callback_data: input.callback }),
  ...(input.code === undefined ? {} : {
    errors: [{ code: input.code, title: "Message undeliverable", error_data: { details: "Message Undeliverable." } }]
  })
})

const statuses = (...inputs: ReadonlyArray<StatusInput>) => envelope({ statuses: inputs.map(statusOf) })

const textMessage = (from: string, id: string, text: string, replyTo?: string) =>
  envelope({
    contacts: [{ profile: { name: "Ada" }, wa_id: from }],
    messages: [{
      from,
      id,
      timestamp: "1750000100",
      type: "text",
      text: { body: text },
      ...(replyTo === undefined ? {} : { context: { from: "15550001111", id: replyTo } })
    }]
  })

const bytes = (body: string) => new TextEncoder().encode(body)

const post = (intake: MetaWebhook.Intake, body: string, signature: string | null = MetaWebhook.sign(body, appSecret)) =>
  Effect.promise(async () => {
    const response = await intake.handler(
      new Request("http://crier.test/webhooks/meta", {
        method: "POST",
        body,
        headers: signature === null ? {} : { "x-hub-signature-256": signature }
      })
    )
    return { status: response.status, text: await response.text() }
  })

// ---------------------------------------------------------------------------------------------------------------

describe("MetaWebhook.verify", () => {
  const body = JSON.stringify(statuses({ status: "sent" }))

  it("accepts the HMAC-SHA256 of the exact bytes, in either hex case", () => {
    const signature = MetaWebhook.sign(body, appSecret)
    assert.match(signature, /^sha256=[0-9a-f]{64}$/)
    assert.isTrue(Result.isSuccess(MetaWebhook.verify(bytes(body), signature, appSecret)))
    assert.isTrue(
      Result.isSuccess(MetaWebhook.verify(bytes(body), `sha256=${signature.slice(7).toUpperCase()}`, appSecret))
    )
  })

  it("refuses a missing, malformed, foreign or mismatched signature", () => {
    const good = MetaWebhook.sign(body, appSecret)
    const reasons = (header: string | undefined, raw = body) =>
      Result.match(MetaWebhook.verify(bytes(raw), header, appSecret), {
        onFailure: (error) => error.reason,
        onSuccess: () => "accepted"
      })
    assert.strictEqual(reasons(undefined), "MissingSignature")
    assert.strictEqual(reasons(""), "MissingSignature")
    assert.strictEqual(reasons(MetaWebhook.sign(body, Redacted.make("another secret"))), "BadSignature")
    assert.strictEqual(reasons(good, body.replace("sent", "read")), "BadSignature", "a tampered body")
    assert.strictEqual(reasons(good, `${body} `), "BadSignature", "one byte more")
    assert.strictEqual(reasons(good.slice(0, -1)), "BadSignature", "a shorter digest")
    assert.strictEqual(reasons(`${good}00`), "BadSignature", "a longer digest")
    assert.strictEqual(reasons(good.replace("sha256=", "sha1=")), "BadSignature")
    assert.strictEqual(reasons(good.slice(7)), "BadSignature", "no algorithm")
    assert.strictEqual(reasons(`sha256=${"z".repeat(64)}`), "BadSignature", "not hex")
  })
})

describe("MetaWebhook.parse", () => {
  const id = "bc_01JZ0000000000000000000000" as Broadcast.BroadcastId
  const ours = Recipient.recipientId(id, 7)
  const parsed = (payload: unknown) => Result.getOrThrow(MetaWebhook.parse(JSON.stringify(payload)))

  it("statuses name our recipient by biz_opaque_callback_data, else by the wamid", () => {
    const { events, ignored } = parsed(statuses(
      { wamid: "wamid.A", status: "sent", callback: ours, at: 1_750_000_001 },
      { wamid: "wamid.B", status: "delivered" },
      { wamid: "wamid.C", status: "read", callback: "somebody else's data" }
    ))
    assert.strictEqual(ignored, 0)
    assert.deepStrictEqual(events.map((event) => [event.ref, event.status, event.providerMessageId]), [
      [{ _tag: "ById", broadcastId: id, seq: 7 }, { _tag: "sent" }, "wamid.A"],
      [{ _tag: "ByProviderMessageId", providerMessageId: "wamid.B" }, { _tag: "delivered" }, "wamid.B"],
      [{ _tag: "ByProviderMessageId", providerMessageId: "wamid.C" }, { _tag: "read" }, "wamid.C"]
    ])
    assert.deepStrictEqual(events[0]!.at, DateTime.makeUnsafe(1_750_000_001_000))
  })

  it("a failed status carries Meta's code and its classified reason; unknown statuses are skipped", () => {
    const { events, ignored } = parsed(statuses(
      { status: "failed", code: 131026, callback: ours },
      { status: "failed", callback: ours },
      { status: "deleted", callback: ours },
      { status: "warning", callback: ours }
    ))
    assert.strictEqual(ignored, 2)
    const [coded, bare] = events.map((event) => event.status)
    assert.strictEqual(coded?._tag === "failed" && coded.code, "131026")
    assert.include(coded?._tag === "failed" ? coded.reason : "", "RecipientRejected")
    assert.include(coded?._tag === "failed" ? coded.reason : "", "Message Undeliverable.")
    assert.deepStrictEqual(bare, { _tag: "failed", reason: "failed: Meta gave no error" })
  })

  it("inbound messages: text, button, interactive, a BSUID sender, the message replied to", () => {
    const payload = envelope({
      messages: [
        {
          from: "5511970000001",
          id: "wamid.1",
          timestamp: "1750000100",
          type: "text",
          text: { body: "Yes" },
          context: { id: "wamid.A" }
        },
        {
          from: "5511970000002",
          id: "wamid.2",
          timestamp: 1750000101,
          type: "button",
          button: { text: "Stop", payload: "STOP" }
        },
        {
          from: "5511970000003",
          id: "wamid.3",
          timestamp: "1750000102",
          type: "interactive",
          interactive: { type: "button_reply", button_reply: { id: "b1", title: "Tell me more" } }
        },
        { from_user_id: "US.13491208655302741918", id: "wamid.4", timestamp: "1750000103", type: "image" },
        { from: "not a number", id: "wamid.5", timestamp: "1750000104", type: "text", text: { body: "?" } }
      ]
    })
    const { ignored, messages } = parsed(payload)
    assert.strictEqual(ignored, 1)
    assert.deepStrictEqual(messages.map((message) => [message.from, message.text, message.replyTo]), [
      ["+5511970000001", "Yes", "wamid.A"],
      ["+5511970000002", "Stop", undefined],
      ["+5511970000003", "Tell me more", undefined],
      ["US.13491208655302741918", undefined, undefined]
    ])
    assert.strictEqual(messages[0]!.phoneNumberId, "100000000000001")
  })

  it("fields other than messages are skipped; non-JSON and wrong shapes are refused", () => {
    assert.deepStrictEqual(parsed(envelope({ event: "APPROVED" }, "message_template_status_update")), {
      events: [],
      messages: [],
      ignored: 0
    })
    const reason = (body: string) =>
      Result.match(MetaWebhook.parse(body), { onFailure: (error) => error.reason, onSuccess: () => "parsed" })
    assert.strictEqual(reason("not json"), "NotJson")
    assert.strictEqual(reason(""), "NotJson")
    assert.strictEqual(reason("[]"), "BadPayload")
    assert.strictEqual(reason(JSON.stringify({ object: "whatsapp_business_account" })), "BadPayload")
    assert.strictEqual(reason(JSON.stringify(envelope({ statuses: [{ status: "sent" }] }))), "BadPayload")
    assert.strictEqual(reason(JSON.stringify(envelope({ statuses: "sent" }))), "BadPayload")
  })
})

// ---------------------------------------------------------------------------------------------------------------
// The intake in front of the real engine

const template = new TemplateSpec.TemplateSpec({
  name: "spring_sale",
  language: "en",
  body: { _tag: "positional", count: 1 },
  header: "none",
  buttons: [],
  bodyText: "Hi {{1}}, our spring sale starts today"
})

const phone = (n: number) => Address.PhoneNumber.make(`+55119${70_000_000 + n}`)

// Accepted and nothing more: the webhooks in the tests are the only news.
const engine = Broadcaster.layer.pipe(
  Layer.provideMerge(Layer.merge(
    ProgressStore.ProgressStore.layerMemory,
    MemoryTransport.layer({ profile: "meta", lifecycle: { path: {} } })
  ))
)

/** A broadcast whose `count` recipients were all accepted. */
const sentBroadcast = (count: number, name = "spring sale") =>
  Effect.gen(function*() {
    const broadcaster = yield* Broadcaster
    const broadcast = yield* broadcaster.create({ name, template, sender: "100000000000001" })
    yield* broadcaster.addRecipients(
      broadcast.id,
      Array.from({ length: count }, (_, i) =>
        new Recipient.NewRecipient({
          address: phone(i + 1),
          params: new TemplateParams.TemplateParams({ body: [`Name${i + 1}`], buttons: [] }),
          metadata: {}
        }))
    )
    yield* broadcaster.start(broadcast.id)
    const fiber = yield* Effect.forkChild(broadcaster.wait(broadcast.id))
    yield* TestClock.adjust("1 minute")
    yield* Fiber.join(fiber)
    return broadcast.id
  })

const row = (id: Broadcast.BroadcastId, seq: number) =>
  Effect.gen(function*() {
    const store = yield* ProgressStore.ProgressStore
    return (yield* store.recipients(id, { afterSeq: seq - 1, limit: 1 })).items[0]!
  })

const counts = (id: Broadcast.BroadcastId) => ProgressStore.ProgressStore.use((store) => store.counts(id))

// No batch window on the test clock: a write takes what is waiting at once.
const intakeWith = (options: Partial<MetaWebhook.Options> = {}) =>
  MetaWebhook.make({ appSecret, verifyToken, batchWindow: 0, ...options })

describe("MetaWebhook intake", () => {
  it.effect("signed statuses move rows forward whatever their order; duplicates change nothing", () =>
    Effect.gen(function*() {
      const id = yield* sentBroadcast(3)
      const intake = yield* intakeWith()
      const of = (seq: number) => Recipient.recipientId(id, seq)
      const bodies = [
        statuses({ status: "read", callback: of(1), at: 1_750_000_030 }),
        statuses({ status: "sent", callback: of(1), at: 1_750_000_010 }),
        statuses({ status: "delivered", callback: of(1), at: 1_750_000_020 }, { status: "delivered", callback: of(2) }),
        statuses({ status: "read", callback: of(1), at: 1_750_000_030 }),
        statuses({ status: "failed", callback: of(2), code: 131026 }),
        statuses({ status: "failed", callback: of(3), code: 131049 })
      ]
      for (const body of bodies) assert.strictEqual((yield* post(intake, JSON.stringify(body))).status, 200)
      const [one, two, three] = [yield* row(id, 1), yield* row(id, 2), yield* row(id, 3)]
      assert.deepStrictEqual(one.status, { _tag: "read" })
      assert.deepStrictEqual(one.readAt, DateTime.makeUnsafe(1_750_000_030_000))
      assert.deepStrictEqual(one.sentAt, DateTime.makeUnsafe(1_750_000_010_000))
      assert.deepStrictEqual(two.status, { _tag: "delivered" }, "a failure after delivery does not undo it")
      assert.strictEqual(three.status._tag === "failed" && three.status.code, "131049")
    }).pipe(Effect.provide(engine)))

  it.effect("unsigned, badly signed and non-JSON bodies get a 4xx and change nothing", () =>
    Effect.gen(function*() {
      const id = yield* sentBroadcast(1)
      const intake = yield* intakeWith()
      const before = yield* counts(id)
      const body = JSON.stringify(statuses({ status: "delivered", callback: Recipient.recipientId(id, 1) }))
      assert.strictEqual((yield* post(intake, body, null)).status, 401)
      assert.strictEqual((yield* post(intake, body, "sha256=00")).status, 401)
      assert.strictEqual((yield* post(intake, body, MetaWebhook.sign(body, Redacted.make("wrong")))).status, 401)
      assert.strictEqual((yield* post(intake, body, MetaWebhook.sign(`${body}x`, appSecret))).status, 401)
      assert.strictEqual((yield* post(intake, "{not json")).status, 400)
      assert.strictEqual((yield* post(intake, JSON.stringify({ hello: "world" }))).status, 400)
      assert.deepStrictEqual(yield* counts(id), before)
      assert.deepStrictEqual((yield* row(id, 1)).status, { _tag: "accepted" })
    }).pipe(Effect.provide(engine)))

  it.effect("a replayed body is authentic and verified, but changes nothing and is not routed again", () =>
    Effect.gen(function*() {
      const id = yield* sentBroadcast(2)
      const routed: Array<MetaWebhook.RoutedReply> = []
      const intake = yield* intakeWith({ onReply: (reply) => Effect.sync(() => void routed.push(reply)) })
      const status = JSON.stringify(statuses({ status: "delivered", callback: Recipient.recipientId(id, 1) }))
      const reply = JSON.stringify(textMessage("5511970000002", "wamid.IN1", "Yes please"))
      const first = yield* post(intake, status)
      assert.deepStrictEqual(JSON.parse(first.text).statuses, { applied: 1, unchanged: 0, unknown: 0 })
      assert.strictEqual(JSON.parse((yield* post(intake, reply)).text).replies, 1)
      const after = { one: yield* row(id, 1), two: yield* row(id, 2) }
      // The very same bytes and signature, later.
      yield* TestClock.adjust("3 days")
      const again = yield* post(intake, status)
      assert.strictEqual(again.status, 200)
      assert.deepStrictEqual(JSON.parse(again.text).statuses, { applied: 0, unchanged: 1, unknown: 0 })
      const replayed = JSON.parse((yield* post(intake, reply)).text)
      assert.deepStrictEqual([replayed.replies, replayed.repeated], [0, 1])
      assert.deepStrictEqual({ one: yield* row(id, 1), two: yield* row(id, 2) }, after)
      assert.strictEqual(routed.length, 1)
    }).pipe(Effect.provide(engine)))

  it.effect("a reply marks its sender's row replied and comes back with the broadcast it answers", () =>
    Effect.gen(function*() {
      const id = yield* sentBroadcast(2, "spring launch")
      const routed: Array<MetaWebhook.RoutedReply> = []
      const intake = yield* intakeWith({ onReply: (reply) => Effect.sync(() => void routed.push(reply)) })
      const received = yield* intake.receive(
        bytes(JSON.stringify(textMessage("5511970000002", "wamid.IN2", "Tell me more", "wamid.7"))),
        MetaWebhook.sign(
          JSON.stringify(textMessage("5511970000002", "wamid.IN2", "Tell me more", "wamid.7")),
          appSecret
        )
      )
      assert.strictEqual(received.replies.length, 1)
      const [reply] = received.replies
      assert.strictEqual(reply!.message.replyTo, "wamid.7")
      const context = Option.getOrThrow(reply!.context)
      assert.strictEqual(context.broadcast_id, id)
      assert.strictEqual(context.broadcast_name, "spring launch")
      assert.strictEqual(context.template_name, "spring_sale")
      assert.strictEqual(context.template_content, "Hi Name2, our spring sale starts today")
      assert.strictEqual(context.reply_text, "Tell me more")
      assert.deepStrictEqual((yield* row(id, 2)).status, { _tag: "replied" })
      assert.deepStrictEqual(routed, received.replies)
      // Someone crier never wrote to: recorded nowhere, still routed, without a context.
      const stranger = JSON.stringify(textMessage("14155550123", "wamid.IN3", "Who is this?"))
      const unknown = yield* intake.receive(bytes(stranger), MetaWebhook.sign(stranger, appSecret))
      assert.deepStrictEqual(unknown.replies[0]!.context, Option.none())
      assert.strictEqual(routed.length, 2)
    }).pipe(Effect.provide(engine)))

  it.effect("answers the subscription check only with our verify token; other methods are refused", () =>
    Effect.gen(function*() {
      const intake = yield* intakeWith()
      const get = (query: string) =>
        Effect.promise(async () => {
          const response = await intake.handler(new Request(`http://crier.test/webhooks/meta?${query}`))
          return [response.status, await response.text()] as const
        })
      assert.deepStrictEqual(
        yield* get("hub.mode=subscribe&hub.verify_token=test-verify-token&hub.challenge=1158201444"),
        [200, "1158201444"]
      )
      assert.strictEqual((yield* get("hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1"))[0], 403)
      assert.strictEqual((yield* get("hub.mode=subscribe&hub.verify_token=test-verify-tokens&hub.challenge=1"))[0], 403)
      assert.strictEqual((yield* get("hub.verify_token=test-verify-token&hub.challenge=1"))[0], 403)
      assert.strictEqual((yield* get("hub.mode=subscribe&hub.verify_token=test-verify-token"))[0], 403)
      const put = yield* Effect.promise(() =>
        intake.handler(new Request("http://crier.test/", { method: "PUT", body: "{}" }))
      )
      assert.strictEqual(put.status, 405)
    }).pipe(Effect.provide(engine)))

  it.effect("a store failure answers 500; Meta's redelivery records what was not, and nothing twice", () =>
    Effect.gen(function*() {
      const { broadcaster, recorded } = yield* recordingBroadcaster
      let calls = 0
      const flaky = Broadcaster.of({
        ...broadcaster,
        // The second reply's write fails, once.
        recordReply: (reply) =>
          ++calls === 2
            ? Effect.fail(new ProgressStore.StoreError({ reason: "Unavailable", message: "disk full" }))
            : broadcaster.recordReply(reply)
      })
      const intake = yield* intakeWith().pipe(Effect.provideService(Broadcaster, flaky))
      const payload = envelope({
        messages: ["1", "2", "3"].map((n) => ({
          from: `551197000000${n}`,
          id: `wamid.IN${n}`,
          timestamp: "1750000100",
          type: "text",
          text: { body: `reply ${n}` }
        }))
      })
      const body = JSON.stringify(payload)
      assert.strictEqual((yield* post(intake, body)).status, 500)
      assert.deepStrictEqual((yield* recorded.replies).map((reply) => reply.text), ["reply 1"])
      const again = yield* post(intake, body)
      assert.strictEqual(again.status, 200)
      assert.deepStrictEqual([JSON.parse(again.text).replies, JSON.parse(again.text).repeated], [2, 1])
      assert.deepStrictEqual((yield* recorded.replies).map((reply) => reply.text), ["reply 1", "reply 2", "reply 3"])
    }))
})

describe("MetaWebhook shared writes", () => {
  it.effect("deliveries arriving within the batch window share one write, and each is answered after it", () =>
    Effect.gen(function*() {
      const { broadcaster, recorded } = yield* recordingBroadcaster
      let writes = 0
      const counting = Broadcaster.of({
        ...broadcaster,
        applyStatusEvents: (events) =>
          Effect.andThen(Effect.sync(() => writes++), broadcaster.applyStatusEvents(events))
      })
      const intake = yield* MetaWebhook.make({ appSecret, verifyToken, batchWindow: "50 millis" }).pipe(
        Effect.provideService(Broadcaster, counting)
      )
      const bodies = Array.from(
        { length: 20 },
        (_, i) => JSON.stringify(statuses({ status: "sent", wamid: `wamid.${i}` }))
      )
      const fiber = yield* Effect.forkChild(
        Effect.forEach(bodies, (body) => intake.receive(bytes(body), MetaWebhook.sign(body, appSecret)), {
          concurrency: "unbounded"
        })
      )
      yield* TestClock.adjust("49 millis")
      assert.isUndefined(fiber.pollUnsafe(), "nobody is answered before the write")
      assert.strictEqual(writes, 0)
      yield* TestClock.adjust("1 millis")
      const answers = yield* Fiber.join(fiber)
      assert.strictEqual(writes, 1)
      assert.strictEqual((yield* recorded.all).length, 20)
      for (const answer of answers) assert.deepStrictEqual(answer.statuses, { applied: 20, unchanged: 0, unknown: 0 })
      // A later delivery gets a write of its own.
      const late = bodies[0]!
      const next = yield* Effect.forkChild(intake.receive(bytes(late), MetaWebhook.sign(late, appSecret)))
      yield* TestClock.adjust("50 millis")
      yield* Fiber.join(next)
      assert.strictEqual(writes, 2)
    }))
})

describe("MetaWebhook as an effect/http handler over real HTTP", () => {
  it.live("serves GET and POST on one URL", () =>
    Effect.gen(function*() {
      const { broadcaster, recorded } = yield* recordingBroadcaster
      const intake = yield* intakeWith().pipe(Effect.provideService(Broadcaster, broadcaster))
      const url = yield* serve(intake.httpEffect)
      const client = yield* HttpClient.HttpClient
      const challenge = yield* client.get(
        `${url}/webhooks/meta?hub.mode=subscribe&hub.verify_token=test-verify-token&hub.challenge=42`
      )
      assert.strictEqual(yield* challenge.text, "42")
      const body = JSON.stringify(statuses({ status: "sent", wamid: "wamid.Z" }))
      const signed = yield* client.execute(
        HttpClientRequest.post(`${url}/webhooks/meta`).pipe(
          HttpClientRequest.setHeader("x-hub-signature-256", MetaWebhook.sign(body, appSecret)),
          HttpClientRequest.bodyText(body, "application/json")
        )
      )
      assert.strictEqual(signed.status, 200)
      const unsigned = yield* client.execute(
        HttpClientRequest.post(`${url}/webhooks/meta`).pipe(HttpClientRequest.bodyText(body, "application/json"))
      )
      assert.strictEqual(unsigned.status, 401)
      assert.deepStrictEqual((yield* recorded.all).map((event) => event.providerMessageId), ["wamid.Z"])
    }).pipe(Effect.provide(NodeHttpClient.layerUndici), Effect.scoped))
})
