/**
 * Provider migration: one campaign — template, recipients, policy — and one program that sends it, run through
 * three transport Layers: Kapso broadcasts, Keebai bulk and Meta's Cloud API. Moving a campaign to another provider
 * means providing another Layer; the program does not change, and neither does what it reports.
 *
 * Each run gets its own emulator (on 127.0.0.1), store and engine; the three run side by side. In production each
 * `transport` line becomes the transport's `layerConfig` (credentials from the environment) and the emulators go.
 *
 *   node examples/provider-migration.ts
 */
import * as Broadcast from "@crier/core/Broadcast"
import * as Broadcaster from "@crier/core/Broadcaster"
import type { BroadcastTransport } from "@crier/core/BroadcastTransport"
import * as ProgressStore from "@crier/core/ProgressStore"
import * as KapsoBroadcasts from "@crier/kapso/KapsoBroadcasts"
import * as KeebaiBulk from "@crier/keebai/KeebaiBulk"
import * as KeebaiWebhook from "@crier/keebai/KeebaiWebhook"
import * as MetaCloud from "@crier/meta/MetaCloud"
import * as MetaWebhook from "@crier/meta/MetaWebhook"
import * as KapsoEmulator from "@crier/testkit/KapsoEmulator"
import * as KeebaiEmulator from "@crier/testkit/KeebaiEmulator"
import * as MetaEmulator from "@crier/testkit/MetaEmulator"
import { NodeHttpClient, NodeHttpServer, NodeRuntime, NodeServices } from "@effect/platform-node"
import { Console, Context, Effect, Layer, Redacted, Schema } from "effect"
import { type HttpClient, HttpServer } from "effect/http"
import { createServer } from "node:http"
import { printImport, printSummary, sampleCsv, summarize, type Summary, template } from "./common.ts"

// ---------------------------------------------------------------------------------------------------------------
// The campaign, and the program that sends it: nothing here names a provider.

const campaign = {
  name: "Order update",
  template,
  recipients: { rows: 200, defaultRegion: "US" },
  policy: { maxAttempts: 3, inDoubt: "at-most-once" }
} as const

/** Waits for the last statuses the provider still owes after the broadcast completed (here: the emulator's). */
class Settled extends Context.Service<Settled, Effect.Effect<void>>()("examples/Settled") {}

const send = Effect.fn("send")(function*(csv: string) {
  const broadcaster = yield* Broadcaster.Broadcaster
  const broadcast = yield* broadcaster.create({
    name: campaign.name,
    template: campaign.template,
    // Empty: each transport's configured sender (Kapso config, Keebai channel, Meta phone_number_id).
    sender: "",
    // The same policy everywhere: each transport brings its own limits (Keebai's request budget per token).
    policy: new Broadcast.Policy(campaign.policy)
  })
  const report = yield* broadcaster.addRecipients(broadcast.id, {
    csv,
    defaultRegion: campaign.recipients.defaultRegion
  })
  yield* broadcaster.start(broadcast.id)
  yield* broadcaster.wait(broadcast.id)
  // Completed: every recipient was handed over. Statuses still owed come in meanwhile (by poll or webhook).
  const settled = yield* Settled
  yield* settled
  return { report, summary: yield* summarize(broadcast.id) }
})

// ---------------------------------------------------------------------------------------------------------------
// Three providers: a transport Layer each (and its webhook intake), against its emulator.

type Engine = Layer.Layer<
  Broadcaster.Broadcaster | ProgressStore.ProgressStore | Settled,
  unknown,
  HttpClient.HttpClient
>

interface Provider {
  readonly engine: Engine
}

const engine = (
  transport: Layer.Layer<BroadcastTransport, never, HttpClient.HttpClient>,
  settled: Effect.Effect<void>
) =>
  Broadcaster.Broadcaster.layer.pipe(
    Layer.provideMerge(transport),
    Layer.provideMerge(ProgressStore.ProgressStore.layerMemory),
    Layer.merge(Layer.succeed(Settled, settled))
  )

/** An HTTP endpoint on 127.0.0.1 for a provider's webhooks: bound now, serving once the engine exists. */
const webhookEndpoint = Effect.map(
  NodeHttpServer.make(() => createServer(), { port: 0, host: "127.0.0.1" }),
  (server) => ({ server, url: `${HttpServer.formatAddress(server.address)}/webhooks` })
)

const kapso: Provider = {
  engine: Layer.unwrap(Effect.gen(function*() {
    const emulator = yield* KapsoEmulator.make({
      configs: [{ id: "config-orders" }],
      templates: [{ name: template.name, language: template.language, body: template.body }],
      timing: {
        batchSize: 50,
        interval: "200 millis",
        delivered: "100 millis",
        read: "100 millis",
        completion: "settled"
      },
      outcomes: {
        mix: [{ share: 0.04, fate: { _tag: "failed", code: "131026" } }, { share: 0.3, fate: { _tag: "read" } }]
      }
    })
    const transport = KapsoBroadcasts.layer({
      apiKey: Redacted.make(emulator.apiKey),
      baseUrl: emulator.url,
      whatsappConfigId: "config-orders"
    })
    // Statuses come from polling Kapso: nothing is owed once the broadcast completed.
    return engine(transport, Effect.void)
  }))
}

const keebai: Provider = {
  engine: Layer.unwrap(Effect.gen(function*() {
    const secret = Redacted.make("whsec_example_secret")
    const endpoint = yield* webhookEndpoint
    const emulator = yield* KeebaiEmulator.make({
      templates: { [template.name]: ["first_name", "order_id"] },
      timing: { messagesPerSecond: 500, deliveredAfter: "100 millis", readAfter: "100 millis" },
      outcomes: { failed: 0.04, read: 0.3 },
      webhook: { url: endpoint.url, secret: Redacted.value(secret), delay: { min: 0, max: 100 } }
    })
    const transport = KeebaiBulk.layer({
      token: Redacted.make(KeebaiEmulator.defaultToken),
      baseUrl: emulator.url,
      channelId: "ch_orders"
    })
    const intake = yield* KeebaiWebhook.makeIntake({ secret })
    const webhooks = Layer.effectDiscard(endpoint.server.serve(KeebaiWebhook.handler(intake, KeebaiWebhook.toEngine)))
    return webhooks.pipe(Layer.provideMerge(engine(transport, emulator.idle)))
  }))
}

const meta: Provider = {
  engine: Layer.unwrap(Effect.gen(function*() {
    const appSecret = Redacted.make("example-app-secret")
    const endpoint = yield* webhookEndpoint
    const emulator = yield* MetaEmulator.make({
      templates: [{ spec: template }],
      outcomes: {
        mix: [{ share: 0.04, outcome: MetaEmulator.failed(131026) }, { share: 0.3, outcome: MetaEmulator.read }]
      },
      timing: { sent: { min: 50, max: 100 }, delivered: { min: 50, max: 100 }, read: { min: 50, max: 100 } },
      webhook: { url: endpoint.url, appSecret: Redacted.value(appSecret), delay: { min: 0, max: 100 } }
    })
    const transport = MetaCloud.layer({
      credential: MetaCloud.accessToken(Redacted.make(emulator.accessToken)),
      baseUrl: emulator.graphUrl,
      phoneNumberId: MetaEmulator.defaultPhoneNumberId
    })
    const webhooks = Layer.effectDiscard(Effect.gen(function*() {
      const intake = yield* MetaWebhook.make({ appSecret, verifyToken: Redacted.make("example-verify-token") })
      yield* endpoint.server.serve(intake.httpEffect)
    }))
    return webhooks.pipe(Layer.provideMerge(engine(transport, emulator.idle)))
  }))
}

// ---------------------------------------------------------------------------------------------------------------

class Disagreement extends Schema.TaggedError<Disagreement>()("Disagreement", { message: Schema.String }) {}

const program = Effect.gen(function*() {
  const csv = yield* sampleCsv(campaign.recipients.rows)
  const runs = yield* Effect.forEach(
    [kapso, keebai, meta],
    (provider) => send(csv).pipe(Effect.provide(provider.engine)),
    { concurrency: "unbounded" }
  )

  yield* printImport(runs[0]!.report)
  for (const { summary } of runs) yield* printSummary(summary)

  const column = (label: string, value: (summary: Summary) => number) =>
    `${label.padEnd(10)}${runs.map(({ summary }) => String(value(summary)).padStart(8)).join("")}`
  yield* Console.log(`\n${"".padEnd(10)}${runs.map(({ summary }) => summary.transport.padStart(8)).join("")}`)
  yield* Console.log(column("total", (s) => s.total))
  yield* Console.log(column("sent", (s) => s.funnel.sent))
  yield* Console.log(column("delivered", (s) => s.funnel.delivered))
  yield* Console.log(column("read", (s) => s.funnel.read))
  yield* Console.log(column("failed", (s) => s.counts["failed"] ?? 0))

  // Every transport must account for every recipient the import added, each in a final status.
  const added = runs[0]!.report.added
  for (const { summary } of runs) {
    const open = (summary.counts["pending"] ?? 0) + (summary.counts["accepted"] ?? 0) +
      (summary.counts["in_doubt"] ?? 0)
    if (summary.total !== added || open !== 0) {
      return yield* new Disagreement({
        message: `${summary.transport}: ${summary.total} recipients (${open} not settled), the import added ${added}`
      })
    }
  }
  yield* Console.log(`\nall ${runs.length} transports accounted for the same ${added} recipients`)
})

program.pipe(Effect.scoped, Effect.provide([NodeHttpClient.layerUndici, NodeServices.layer]), NodeRuntime.runMain)
