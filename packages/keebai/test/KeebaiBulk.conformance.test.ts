// The shared transport conformance suite, run against the testkit's Keebai emulator over real HTTP, with statuses
// arriving as signed webhooks at a local receiver — once per documented reading of the API.
import type { StatusEvent } from "@crier/core/StatusEvent"
import { TransportSuite } from "@crier/core/testing"
import * as KeebaiBulk from "@crier/keebai/KeebaiBulk"
import * as KeebaiWebhook from "@crier/keebai/KeebaiWebhook"
import { KeebaiEmulator } from "@crier/testkit"
import { NodeHttpClient, NodeHttpServer } from "@effect/platform-node"
import { Context, Effect, Layer, Queue, Redacted, Stream } from "effect"
import { HttpServer } from "effect/http"
import { createServer } from "node:http"

const secret = "whsec_conformance"

/** The webhook receiver: verified, deduped status events, kept until the suite reads them. */
class Inbox extends Context.Service<Inbox, {
  readonly url: string
  readonly events: Queue.Queue<StatusEvent>
}>()("test/keebai/Inbox") {}

const inbox = Layer.effect(
  Inbox,
  Effect.gen(function*() {
    const events = yield* Queue.unbounded<StatusEvent>()
    const intake = yield* KeebaiWebhook.makeIntake({ secret: Redacted.make(secret) })
    const server = yield* NodeHttpServer.make(() => createServer(), { port: 0, host: "127.0.0.1" })
    yield* server.serve(
      KeebaiWebhook.handler(intake, (event) => event._tag === "Status" ? Queue.offer(events, event.event) : Effect.void)
    )
    return { url: `${HttpServer.formatAddress(server.address)}/webhooks/keebai`, events }
  })
)

const stack = (reading: {
  readonly senderField: "channel_id" | "phone_number_id"
  readonly initialStatus: "PENDING" | "scheduled"
}) => {
  const emulator = Layer.effect(
    KeebaiEmulator.KeebaiEmulator,
    Effect.gen(function*() {
      const { url } = yield* Inbox
      return yield* KeebaiEmulator.make({
        senderField: reading.senderField,
        initialStatus: reading.initialStatus,
        // The suite makes a few calls per test; the budget itself is tested elsewhere.
        budgets: [],
        timing: { startAfter: 20, deliveredAfter: 20 },
        webhook: { url, secret, delay: { min: 0, max: 20 }, duplicateShare: 0.2 }
      })
    })
  )
  const transport = Layer.unwrap(Effect.gen(function*() {
    const { url } = yield* KeebaiEmulator.KeebaiEmulator
    return KeebaiBulk.layer({
      token: Redacted.make(KeebaiEmulator.defaultToken),
      baseUrl: url,
      senderField: reading.senderField
    })
  }))
  return transport.pipe(
    Layer.provideMerge(emulator),
    Layer.provideMerge(inbox),
    Layer.provide(NodeHttpClient.layerUndici)
  )
}

const webhookEvents = Stream.unwrap(Effect.gen(function*() {
  const { events } = yield* Inbox
  return Stream.fromQueue(events)
}))

TransportSuite.suite("keebai over HTTP (channel_id, PENDING)", {
  layer: stack({ senderField: "channel_id", initialStatus: "PENDING" }),
  statusEvents: TransportSuite.collected(webhookEvents),
  live: true
})

TransportSuite.suite("keebai over HTTP (phone_number_id, scheduled)", {
  layer: stack({ senderField: "phone_number_id", initialStatus: "scheduled" }),
  statusEvents: TransportSuite.collected(webhookEvents),
  live: true
})
