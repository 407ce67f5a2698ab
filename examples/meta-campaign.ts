/**
 * The program of the two Meta examples (`meta-direct.ts`, `meta-kapso-proxy.ts`), which differ only in the transport
 * Layer they pass: the Cloud API transport sends one request per recipient, paced per phone number (70 a second by
 * default), and each message's statuses and replies come back through Meta's signed webhooks.
 *
 * Nothing leaves this machine: the testkit's Meta emulator serves the Graph API (and Kapso's Meta proxy) on
 * 127.0.0.1 and delivers its webhooks to the endpoint served here, the way Meta does (out of order, a few twice).
 * In production the endpoint is a public HTTPS URL subscribed in the Meta app (or set as the webhook destination of
 * a number connected to Kapso), and its secrets come from the environment:
 *
 *   const { appSecret, verifyToken } = yield* MetaWebhook.config // META_APP_SECRET, META_VERIFY_TOKEN
 */
import * as Broadcaster from "@crier/core/Broadcaster"
import type { BroadcastTransport } from "@crier/core/BroadcastTransport"
import * as MetaWebhook from "@crier/meta/MetaWebhook"
import * as SqliteStore from "@crier/store-sql/SqliteStore"
import * as MetaEmulator from "@crier/testkit/MetaEmulator"
import { NodeHttpClient, NodeHttpServer, NodeServices } from "@effect/platform-node"
import { Console, DateTime, Effect, Layer, Option, Redacted } from "effect"
import type { HttpClient } from "effect/http"
import { HttpServer } from "effect/http"
import { createServer } from "node:http"
import { printImport, printSummary, sampleCsv, summarize, template } from "./common.ts"

/** The sending number: its phone_number_id is the broadcast's sender. */
export const phoneNumberId = MetaEmulator.defaultPhoneNumberId

const appSecret = Redacted.make("example-app-secret")
const verifyToken = Redacted.make("example-verify-token")

/** Sends the sample campaign through `transport`, made for the emulator it is given. */
export const send = (
  transport: (meta: MetaEmulator.MetaEmulator) => Layer.Layer<BroadcastTransport, never, HttpClient.HttpClient>
) =>
  Effect.gen(function*() {
    // Our webhook endpoint, bound first so the emulator knows where to deliver; it serves once the engine exists.
    const receiver = yield* NodeHttpServer.make(() => createServer(), { port: 0, host: "127.0.0.1" })

    // Stands in for Meta: the approved template; 4% undeliverable, 2% refused at send (the user stopped marketing
    // messages), 30% read, 5% answered; statuses within a second.
    const meta = yield* MetaEmulator.make({
      templates: [{ spec: template }],
      outcomes: {
        mix: [
          { share: 0.04, outcome: MetaEmulator.failed(131026) },
          { share: 0.02, outcome: MetaEmulator.failed(131050, "send") },
          { share: 0.3, outcome: MetaEmulator.read },
          { share: 0.05, outcome: MetaEmulator.replied("Yes please, where is it?") }
        ]
      },
      timing: {
        sent: { min: 50, max: 200 },
        delivered: { min: 100, max: 300 },
        read: { min: 100, max: 300 },
        replied: { min: 100, max: 300 },
        failed: { min: 100, max: 300 }
      },
      webhook: {
        url: `${HttpServer.formatAddress(receiver.address)}/webhooks/meta`,
        appSecret: Redacted.value(appSecret),
        delay: { min: 0, max: 100 },
        duplicateShare: 0.05
      }
    })

    // production: SqliteStore.layer(), the file ./.crier/crier.db
    const store = SqliteStore.layer({ filename: ":memory:" })

    yield* Effect.gen(function*() {
      const broadcaster = yield* Broadcaster.Broadcaster

      // Checks X-Hub-Signature-256 over the raw body, answers Meta's subscription check (GET), applies statuses
      // (matched by biz_opaque_callback_data, our recipient id) and records each reply against the broadcast its
      // sender last got, handing it to `onReply` with that context.
      const replies: Array<MetaWebhook.RoutedReply> = []
      const intake = yield* MetaWebhook.make({
        appSecret,
        verifyToken,
        onReply: (reply) => Effect.sync(() => replies.push(reply))
      })
      yield* receiver.serve(intake.httpEffect)

      const broadcast = yield* broadcaster.create({ name: "Order update", template, sender: phoneNumberId })
      yield* printImport(
        yield* broadcaster.addRecipients(broadcast.id, { csv: yield* sampleCsv(200), defaultRegion: "US" })
      )
      yield* broadcaster.start(broadcast.id)
      // Completed once every recipient was handed to Meta…
      const done = yield* broadcaster.wait(broadcast.id)
      yield* Console.log(`broadcast ${done.status}`)
      // …while statuses arrive by webhook, here until the emulator has delivered its last one.
      yield* meta.idle

      // Refused sends: 131050 fails its recipient; a throughput refusal (130429, inbound replies share the number's
      // 80 a second) is retried after a backoff.
      const requests = yield* meta.requests
      const refused = new Map<number, number>()
      for (const { errorCode } of requests) {
        if (errorCode !== undefined) refused.set(errorCode, (refused.get(errorCode) ?? 0) + 1)
      }
      yield* Console.log(
        `Meta API: ${requests.length} requests through ${
          [...new Set(requests.map((r) => r.api))].join(", ")
        }, refused: ${[...refused].map(([code, n]) => `${code} × ${n}`).join(", ") || "none"}`
      )
      const answered = replies.filter((reply) => Option.isSome(reply.context))
      yield* Console.log(`replies: ${replies.length}, ${answered.length} attributed to the broadcast they answer`)
      for (const { context, message } of answered.slice(0, 1)) {
        const { broadcast_name, sent_at, template_name } = Option.getOrThrow(context)
        yield* Console.log(
          `  ${message.from}: "${message.text ?? ""}" answers "${broadcast_name}" (${template_name}, sent ${
            DateTime.formatIso(sent_at)
          })`
        )
      }
      yield* printSummary(yield* summarize(broadcast.id))
    }).pipe(
      Effect.scoped,
      Effect.provide(
        Broadcaster.Broadcaster.layer.pipe(Layer.provideMerge(transport(meta)), Layer.provideMerge(store))
      )
    )
  }).pipe(Effect.scoped, Effect.provide([NodeHttpClient.layerUndici, NodeServices.layer]))
