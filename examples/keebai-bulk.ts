/**
 * Keebai bulk: one `POST /v1/messages/bulk` per batch of up to 5,000 recipients, spent from the token's request
 * budget (60 a minute, 1,000 an hour), with each recipient's status coming back through Keebai's signed webhooks.
 *
 * Nothing leaves this machine: the testkit's Keebai emulator serves the bulk API on 127.0.0.1 and delivers its
 * webhooks to the endpoint this program serves, the same way Keebai would (out of order, a few twice). In
 * production, delete the emulator, configure the transport from the environment (`KEEBAI_TOKEN`,
 * `KEEBAI_CHANNEL_ID`, optionally `KEEBAI_BASE_URL`), serve the webhook endpoint on a public HTTPS URL registered
 * with Keebai, and keep its `whsec_` secret out of the code:
 *
 *   const transport = KeebaiBulk.layerConfig
 *   const secret = yield* Config.Redacted("KEEBAI_WEBHOOK_SECRET")
 *
 *   node examples/keebai-bulk.ts
 */
import * as Broadcaster from "@crier/core/Broadcaster"
import * as KeebaiBulk from "@crier/keebai/KeebaiBulk"
import * as KeebaiWebhook from "@crier/keebai/KeebaiWebhook"
import * as SqliteStore from "@crier/store-sql/SqliteStore"
import * as KeebaiEmulator from "@crier/testkit/KeebaiEmulator"
import { NodeHttpClient, NodeHttpServer, NodeRuntime, NodeServices } from "@effect/platform-node"
import { Console, Effect, Layer, Redacted } from "effect"
import { HttpServer } from "effect/http"
import { createServer } from "node:http"
import { printImport, printSummary, sampleCsv, summarize, template } from "./common.ts"

/** The Keebai channel the messages go out from. */
const channelId = "ch_orders"
/** The webhook endpoint's signing secret, as Keebai shows it when the endpoint is registered. */
const secret = Redacted.make("whsec_example_secret")

const program = Effect.gen(function*() {
  // Our webhook endpoint, bound first so the emulator knows where to deliver; it serves once the engine exists.
  const receiver = yield* NodeHttpServer.make(() => createServer(), { port: 0, host: "127.0.0.1" })
  const webhookUrl = `${HttpServer.formatAddress(receiver.address)}/webhooks/keebai`

  // Stands in for https://api.keebai.com: 500 messages a second; 4% fail, 30% are read, 5% answered.
  const keebai = yield* KeebaiEmulator.make({
    timing: {
      messagesPerSecond: 500,
      deliveredAfter: "200 millis",
      readAfter: "200 millis",
      repliedAfter: "200 millis"
    },
    outcomes: { failed: 0.04, read: 0.3, replied: 0.05 },
    webhook: { url: webhookUrl, secret: Redacted.value(secret), delay: { min: 0, max: 100 }, duplicateShare: 0.05 }
  })

  // production: KeebaiBulk.layerConfig
  const transport = KeebaiBulk.layer({
    token: Redacted.make(KeebaiEmulator.defaultToken),
    baseUrl: keebai.url,
    channelId
  })
  // production: SqliteStore.layer(), the file ./.crier/crier.db
  const store = SqliteStore.layer({ filename: ":memory:" })

  yield* Effect.gen(function*() {
    const broadcaster = yield* Broadcaster.Broadcaster

    // Verified (HMAC-SHA256 of the raw body), deduplicated on the event id, applied to the store; replies are
    // attributed to the latest broadcast their sender got. A badly signed delivery gets a 401 and changes nothing.
    const intake = yield* KeebaiWebhook.makeIntake({ secret })
    let applied = 0
    yield* receiver.serve(KeebaiWebhook.handler(intake, (event) => {
      applied++
      return KeebaiWebhook.toEngine(event)
    }))

    // The transport declares the token's request budget (60 a minute, 1,000 an hour): the engine's pacer spends it.
    const broadcast = yield* broadcaster.create({
      name: "Order update",
      template,
      sender: channelId
    })
    yield* printImport(
      yield* broadcaster.addRecipients(broadcast.id, { csv: yield* sampleCsv(200), defaultRegion: "US" })
    )
    yield* broadcaster.start(broadcast.id)
    // Completed once Keebai reports every call's remote broadcast over (the engine polls it every 5 s)…
    const done = yield* broadcaster.wait(broadcast.id)
    yield* Console.log(`broadcast ${done.status}`)
    // …while statuses arrive by webhook, here until the emulator has delivered its last one.
    yield* keebai.idle

    const deliveries = (yield* keebai.webhookAttempts).filter((attempt) => attempt.ok).length
    const calls = (yield* keebai.broadcasts).map((remote) => `${remote.broadcastId} (${remote.total})`)
    yield* Console.log(`Keebai calls: ${calls.join(", ")}`)
    yield* Console.log(
      `webhooks: ${deliveries} delivered, ${applied} applied, ${deliveries - applied} duplicates ignored`
    )
    yield* printSummary(yield* summarize(broadcast.id))
  }).pipe(
    Effect.scoped,
    Effect.provide(Broadcaster.Broadcaster.layer.pipe(Layer.provideMerge(transport), Layer.provideMerge(store)))
  )
})

program.pipe(Effect.scoped, Effect.provide([NodeHttpClient.layerUndici, NodeServices.layer]), NodeRuntime.runMain)
