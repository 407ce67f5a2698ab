import { BroadcastTransport } from "@crier/core/BroadcastTransport"
import * as TemplateParams from "@crier/core/TemplateParams"
import * as TemplateSpec from "@crier/core/TemplateSpec"
import * as TransportSuite from "@crier/core/testing/TransportSuite"
import * as KapsoTemplateSend from "@crier/kapso/KapsoTemplateSend"
import * as KapsoWebhook from "@crier/kapso/KapsoWebhook"
import * as KapsoEmulator from "@crier/testkit/KapsoEmulator"
import { NodeHttpClient } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { DateTime, Effect, Layer, Option, Redacted, Result, Stream } from "effect"
import {
  against,
  apiKey,
  baseUrl,
  emulatorOptions,
  fakeClient,
  item,
  makeBroadcast,
  phone,
  type Reply,
  reply,
  type Seen,
  template
} from "./fixtures.ts"

const emulated = (options: KapsoEmulator.Options = {}) =>
  Layer.unwrap(
    KapsoEmulator.KapsoEmulator.useSync((emulator) => KapsoTemplateSend.layer(against(emulator)))
  ).pipe(
    Layer.provideMerge(KapsoEmulator.layer(emulatorOptions(options))),
    Layer.provide(NodeHttpClient.layerUndici)
  )

/** The emulator's webhooks, verified and parsed as an intake would. */
const webhookEvents = Stream.unwrap(KapsoEmulator.KapsoEmulator.useSync((emulator) =>
  emulator.webhooks.pipe(
    Stream.mapEffect((record) =>
      Effect.flatMap(DateTime.now, (now) =>
        Effect.fromResult(KapsoWebhook.read({
          secret: Redacted.make(emulator.webhookSecret),
          headers: record.headers,
          body: record.body,
          now
        })))
    ),
    Stream.flatMap((parsed) => Stream.fromIterable(parsed.events))
  )
))

TransportSuite.suite("kapso send_template over HTTP (emulator, webhooks)", {
  layer: emulated(),
  statusEvents: TransportSuite.collected(webhookEvents),
  providerMessageIds: true,
  live: true
})

const withTransport = <A, E>(
  answer: (seen: Seen, index: number) => Reply,
  use: (transport: BroadcastTransport["Service"], seen: ReadonlyArray<Seen>) => Effect.Effect<A, E>
) => {
  const fake = fakeClient(answer)
  return Effect.flatMap(
    KapsoTemplateSend.make({ apiKey, baseUrl, templateIds: { spring_sale: "t-1", offer: "t-2" } }),
    (transport) => use(transport, fake.seen)
  ).pipe(Effect.provide(fake.layer))
}

const sent = (wamid: string) =>
  reply(200, {
    status: "success",
    message: "Template message sent successfully",
    template_id: "t-1",
    template_name: "spring_sale",
    response: { messaging_product: "whatsapp", contacts: [{ input: "+1", wa_id: "1" }], messages: [{ id: wamid }] }
  })

const offer = new TemplateSpec.TemplateSpec({
  name: "offer",
  language: "en",
  body: { _tag: "named", keys: ["first_name"] },
  header: "document",
  buttons: [new TemplateSpec.Button({ index: 1, kind: "url" })]
})

describe("KapsoTemplateSend", () => {
  it.effect("sends one template per recipient and records the wamid Kapso's answer carries", () =>
    withTransport(() => sent("wamid.ABC"), (transport, seen) =>
      Effect.gen(function*() {
        const broadcast = yield* makeBroadcast({ transport: "kapso-template" })
        const { outcomes } = yield* transport.submit(broadcast, [item(broadcast, 1)])
        assert.deepStrictEqual(outcomes, [{
          _tag: "Accepted",
          providerMessageId: Option.some("wamid.ABC"),
          held: false
        }])
        assert.strictEqual(seen[0]!.url, "/api/v1/whatsapp_templates/t-1/send_template")
        assert.deepStrictEqual(seen[0]!.body, {
          template: { phone_number: phone(1), template_parameters: ["Ada 1"], whatsapp_config_id: "config-1" }
        })
      })))

  it.effect("carries named parameters, a document header with its filename, and URL button values by index", () =>
    withTransport(() => sent("wamid.X"), (transport, seen) =>
      Effect.gen(function*() {
        const broadcast = yield* makeBroadcast({ template: offer })
        const outgoing = {
          ...item(broadcast, 1),
          params: new TemplateParams.TemplateParams({
            body: { first_name: "Ada" },
            header: { _tag: "media", kind: "document", link: "https://example.com/i.pdf", filename: "invoice.pdf" },
            buttons: ["track/123"]
          })
        }
        yield* transport.submit(broadcast, [outgoing])
        assert.deepStrictEqual(seen[0]!.body, {
          template: {
            phone_number: phone(1),
            template_parameters: { first_name: "Ada" },
            header_type: "document",
            header_params: "https://example.com/i.pdf",
            header_filename: "invoice.pdf",
            button_url_params: { "1": "track/123" },
            whatsapp_config_id: "config-1"
          }
        })
      })))

  it.effect("a refusal about this recipient is its Rejected outcome; others fail the call", () =>
    Effect.gen(function*() {
      yield* withTransport(
        () => reply(422, { error: "Template requires 2 parameters, but 1 were provided" }),
        (transport) =>
          Effect.gen(function*() {
            const broadcast = yield* makeBroadcast()
            const { outcomes } = yield* transport.submit(broadcast, [item(broadcast, 1)])
            assert.strictEqual(outcomes[0]!._tag, "Rejected")
            if (outcomes[0]!._tag === "Rejected") {
              assert.strictEqual(outcomes[0]!.error.reason._tag, "TemplateParamsMismatch")
            }
          })
      )
      for (
        const [status, tag] of [[401, "Unauthorized"], [404, "TemplateRejected"], [500, "ProviderUnavailable"]] as const
      ) {
        yield* withTransport(() => reply(status, { error: "nope" }), (transport) =>
          Effect.gen(function*() {
            const broadcast = yield* makeBroadcast()
            const error = yield* Effect.flip(transport.submit(broadcast, [item(broadcast, 1)]))
            assert.strictEqual(error.reason._tag, tag)
          }))
      }
    }))

  it.effect("a 200 that says it is not a success fails the call", () =>
    withTransport(() => reply(200, { status: "error", message: "Failed" }), (transport) =>
      Effect.gen(function*() {
        const broadcast = yield* makeBroadcast()
        const error = yield* Effect.flip(transport.submit(broadcast, [item(broadcast, 1)]))
        assert.strictEqual(error.reason._tag, "InvalidRequest")
      })))

  it.effect("takes one recipient per call", () =>
    withTransport(() => sent("wamid.X"), (transport, seen) =>
      Effect.gen(function*() {
        const broadcast = yield* makeBroadcast()
        const error = yield* Effect.flip(transport.submit(broadcast, [item(broadcast, 1), item(broadcast, 2)]))
        assert.strictEqual(error.reason._tag, "InvalidRequest")
        assert.strictEqual(seen.length, 0)
      })))

  it("refuses quick-reply and copy-code buttons only", () => {
    assert.isTrue(Option.isNone(KapsoTemplateSend.unsupported(template)))
    assert.isTrue(Option.isNone(KapsoTemplateSend.unsupported(offer)))
    const quick = new TemplateSpec.TemplateSpec({
      ...template,
      buttons: [new TemplateSpec.Button({ index: 0, kind: "quick_reply" })]
    })
    assert.isTrue(Option.isSome(KapsoTemplateSend.unsupported(quick)))
  })

  it.live("over HTTP: an invalid number is refused per item, with Kapso's message", () =>
    Effect.gen(function*() {
      const transport = yield* BroadcastTransport
      const broadcast = yield* makeBroadcast()
      const { outcomes } = yield* transport.submit(broadcast, [{ ...item(broadcast, 1), address: "+1" as never }])
      assert.strictEqual(outcomes[0]!._tag, "Rejected")
      if (outcomes[0]!._tag === "Rejected") assert.include(outcomes[0]!.error.message, "Invalid phone number")
    }).pipe(Effect.provide(emulated())))

  it.live("over HTTP: the webhooks of a send carry its fate, signed", () =>
    Effect.gen(function*() {
      const transport = yield* BroadcastTransport
      const emulator = yield* KapsoEmulator.KapsoEmulator
      const broadcast = yield* makeBroadcast()
      const { outcomes } = yield* transport.submit(broadcast, [item(broadcast, 1)])
      const wamid = outcomes[0]!._tag === "Accepted" ? Option.getOrThrow(outcomes[0]!.providerMessageId) : ""
      yield* emulator.idle
      const records = yield* emulator.webhooks.pipe(Stream.take(1), Stream.runCollect)
      const verified = KapsoWebhook.verify(
        Redacted.make(emulator.webhookSecret),
        records[0]!.body,
        records[0]!.headers["x-webhook-signature"]
      )
      assert.isTrue(Result.isSuccess(verified))
      const parsed = yield* Effect.fromResult(
        KapsoWebhook.parse({ event: records[0]!.event, body: records[0]!.body, now: yield* DateTime.now })
      )
      assert.strictEqual(parsed.events[0]!.status._tag, "failed")
      assert.strictEqual(parsed.events[0]!.providerMessageId, wamid)
      const status = parsed.events[0]!.status
      if (status._tag === "failed") assert.strictEqual(status.code, "131047")
    }).pipe(Effect.provide(emulated({ outcomes: { otherwise: { _tag: "failed", code: "131047" } } }))))
})
