/**
 * Kapso broadcasts: Kapso holds the campaign and paces its sending. crier creates the draft, adds the recipients
 * (up to 1,000 per request), sends it once every row is handed over, and polls Kapso for each recipient's status
 * until the broadcast is done.
 *
 * Nothing leaves this machine: the testkit's Kapso emulator serves Kapso's v1 API on 127.0.0.1 and the transport is
 * pointed at it. In production, delete the emulator and configure the transport from the environment
 * (`KAPSO_API_KEY`, `KAPSO_WHATSAPP_CONFIG_ID`, optionally `KAPSO_BASE_URL`):
 *
 *   const transport = KapsoBroadcasts.layerConfig
 *   const store = SqliteStore.layer() // ./.crier/crier.db
 *
 *   node examples/kapso-broadcasts.ts
 */
import * as Broadcaster from "@crier/core/Broadcaster"
import * as KapsoBroadcasts from "@crier/kapso/KapsoBroadcasts"
import * as SqliteStore from "@crier/store-sql/SqliteStore"
import * as KapsoEmulator from "@crier/testkit/KapsoEmulator"
import { NodeHttpClient, NodeRuntime, NodeServices } from "@effect/platform-node"
import { Console, Effect, Layer, Redacted } from "effect"
import { printImport, printSummary, sampleCsv, summarize, template } from "./common.ts"

/** The Kapso WhatsApp config (sender) the broadcasts go out from. */
const configId = "config-orders"

const campaign = Effect.gen(function*() {
  const broadcaster = yield* Broadcaster.Broadcaster
  // The sender is the Kapso WhatsApp config; left empty, the transport's `whatsappConfigId` is used.
  const broadcast = yield* broadcaster.create({ name: "Order update", template, sender: configId })
  yield* printImport(
    yield* broadcaster.addRecipients(broadcast.id, { csv: yield* sampleCsv(200), defaultRegion: "US" })
  )
  yield* broadcaster.start(broadcast.id)
  // Kapso paces the campaign; the engine polls it (every 5 s) until Kapso reports it completed.
  const done = yield* broadcaster.wait(broadcast.id)
  yield* Console.log(`Kapso broadcast ${done.remoteId} ${done.status}`)
  yield* printSummary(yield* summarize(broadcast.id))
})

const program = Effect.gen(function*() {
  // Stands in for https://app.kapso.ai/api/v1: one production config, the approved template, quick sending.
  const kapso = yield* KapsoEmulator.make({
    configs: [{ id: configId }],
    templates: [{ name: template.name, language: template.language, body: template.body }],
    // 50 recipients every 200 ms. The emulator reports completion once every status has settled, so one poll sees
    // the final funnel; real Kapso completes when sending ends (the transport's `followFor` keeps polling after
    // that for late deliveries and reads).
    timing: {
      batchSize: 50,
      interval: "200 millis",
      delivered: "100 millis",
      read: "100 millis",
      responded: "100 millis",
      completion: "settled"
    },
    outcomes: {
      mix: [
        { share: 0.04, fate: { _tag: "failed", code: "131026" } },
        { share: 0.3, fate: { _tag: "read" } },
        { share: 0.05, fate: { _tag: "responded" } }
      ]
    }
  })

  // production: KapsoBroadcasts.layerConfig
  const transport = KapsoBroadcasts.layer({
    apiKey: Redacted.make(kapso.apiKey),
    baseUrl: kapso.url,
    whatsappConfigId: configId
  })
  // production: SqliteStore.layer(), the file ./.crier/crier.db
  const store = SqliteStore.layer({ filename: ":memory:" })

  yield* campaign.pipe(
    Effect.provide(Broadcaster.Broadcaster.layer.pipe(Layer.provideMerge(transport), Layer.provideMerge(store)))
  )

  const requests = yield* kapso.requests
  const count = (method: string, path: RegExp) =>
    requests.filter((request) => request.method === method && path.test(request.path)).length
  const calls = {
    create: count("POST", /broadcasts$/),
    add: count("POST", /recipients$/),
    send: count("POST", /send$/),
    "status polls": count("GET", /broadcasts\/[^/]+$/),
    "recipient pages": count("GET", /recipients$/)
  }
  yield* Console.log(`Kapso API calls: ${Object.entries(calls).map(([call, n]) => `${n} ${call}`).join(", ")}`)
})

program.pipe(Effect.scoped, Effect.provide([NodeHttpClient.layerUndici, NodeServices.layer]), NodeRuntime.runMain)
