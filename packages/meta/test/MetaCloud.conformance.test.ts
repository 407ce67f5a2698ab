/**
 * The transport's conformance suite over real HTTP, for both bases: the emulator posts its signed webhooks to the
 * intake, whose events the suite reads.
 */
import * as Broadcast from "@crier/core/Broadcast"
import * as Broadcaster from "@crier/core/Broadcaster"
import { BroadcastTransport } from "@crier/core/BroadcastTransport"
import { TransportSuite } from "@crier/core/testing"
import * as MetaEmulator from "@crier/testkit/MetaEmulator"
import { NodeHttpClient } from "@effect/platform-node"
import { Context, DateTime, Effect, Layer, Redacted, Stream } from "effect"
import * as MetaCloud from "../src/MetaCloud.ts"
import * as MetaWebhook from "../src/MetaWebhook.ts"
import { appSecret, Recorded, recordingBroadcaster, serve, template, verifyToken } from "./fixtures.ts"

const quickly = { min: 1, max: 20 }

const wired = (base: "graph" | "kapso") =>
  Layer.effectContext(Effect.gen(function*() {
    const { broadcaster, recorded } = yield* recordingBroadcaster
    const intake = yield* MetaWebhook.make({ appSecret, verifyToken }).pipe(
      Effect.provideService(Broadcaster.Broadcaster, broadcaster)
    )
    const emulator = yield* MetaEmulator.make({
      templates: [{ spec: template }],
      timing: { sent: quickly, delivered: quickly },
      throughput: 1000,
      webhook: {
        url: yield* serve(intake.httpEffect),
        appSecret: Redacted.value(appSecret),
        delay: { min: 0, max: 30 },
        duplicateShare: 0.2
      }
    })
    const transport = yield* MetaCloud.make({
      credential: base === "graph"
        ? MetaCloud.accessToken(Redacted.make(emulator.accessToken))
        : MetaCloud.kapsoApiKey(Redacted.make(emulator.kapsoApiKey)),
      baseUrl: base === "graph" ? emulator.graphUrl : emulator.kapsoUrl,
      messagesPerSecond: 500
    })
    return Context.make(BroadcastTransport, transport).pipe(Context.add(Recorded, recorded))
  })).pipe(Layer.provide(NodeHttpClient.layerUndici))

/** A broadcast on the emulator's number with the suite's template. */
const makeBroadcast = Effect.gen(function*() {
  const transport = yield* BroadcastTransport
  return new Broadcast.Broadcast({
    id: yield* Broadcast.makeId,
    name: "meta conformance",
    transport: transport.name,
    sender: MetaEmulator.defaultPhoneNumberId,
    template,
    policy: new Broadcast.Policy({}),
    status: "sending",
    createdAt: yield* DateTime.now
  })
})

const statusEvents = TransportSuite.collected(Stream.unwrap(Effect.map(Recorded, (recorded) => recorded.events)))

for (const base of ["graph", "kapso"] as const) {
  TransportSuite.suite(`meta over HTTP (${base === "graph" ? "Meta's Graph API" : "Kapso's Meta proxy"})`, {
    layer: wired(base),
    makeBroadcast,
    statusEvents,
    providerMessageIds: true,
    live: true,
    within: "10 seconds"
  })
}
