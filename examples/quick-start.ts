/**
 * Quick start: one broadcast from a CSV file to its final funnel, with no account and no network.
 *
 * Two in-memory Layers stand in for the durable store and for a provider: `ProgressStore.layerMemory` and
 * `MemoryTransport.layer`, which answers like Meta's Cloud API and plays each accepted message's life (sent,
 * delivered, read, a few replies and failures) in this process. For real sending, swap them for
 * `SqliteStore.layer()` and a provider's Layer (see the other examples): the program itself does not change.
 *
 *   node examples/quick-start.ts
 */
import * as Broadcast from "@crier/core/Broadcast"
import * as Broadcaster from "@crier/core/Broadcaster"
import * as MemoryTransport from "@crier/core/MemoryTransport"
import * as ProgressStore from "@crier/core/ProgressStore"
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Console, Duration, Effect, Layer, Option, Stream } from "effect"
import { printImport, printSummary, sampleCsv, summarize, template } from "./common.ts"

const progressLine = ({ counts, eta, ratePerSecond, status }: Broadcaster.Snapshot) => {
  const handedOver = counts.total - counts.pending - counts.submitting
  const left = Option.match(eta, {
    onNone: () => "",
    onSome: (d) => `, about ${Math.ceil(Duration.toSeconds(d))} s left`
  })
  return `${status}: ${handedOver}/${counts.total} handed over, ${ratePerSecond.toFixed(0)}/s${left}`
}

const program = Effect.gen(function*() {
  const broadcaster = yield* Broadcaster.Broadcaster

  // A draft: the template, the sender (here any name; a phone_number_id for Meta) and how fast to send.
  const broadcast = yield* broadcaster.create({
    name: "Order update",
    template,
    sender: "15550001111",
    policy: new Broadcast.Policy({ messagesPerSecond: 100 })
  })

  // Every row is checked against the template, numbers are normalized (national ones read as US numbers), and
  // duplicates are dropped, before anything is sent.
  const report = yield* broadcaster.addRecipients(broadcast.id, { csv: yield* sampleCsv(200), defaultRegion: "US" })
  yield* printImport(report)

  yield* broadcaster.start(broadcast.id)
  yield* broadcaster.progress(broadcast.id, { every: Duration.millis(500) }).pipe(
    Stream.runForEach((snapshot) => Console.log(progressLine(snapshot)))
  )

  // Completed means every recipient was handed over; statuses keep arriving after that (here within a second).
  yield* Effect.sleep(Duration.seconds(1))
  yield* printSummary(yield* summarize(broadcast.id))
})

// The memory transport's status updates, fed to the engine as a webhook intake would.
const statuses = Layer.effectDiscard(Effect.gen(function*() {
  const memory = yield* MemoryTransport.MemoryTransport
  const broadcaster = yield* Broadcaster.Broadcaster
  yield* memory.webhookEvents.pipe(
    Stream.groupedWithin(100, Duration.millis(50)),
    Stream.runForEach((events) => broadcaster.applyStatusEvents(events)),
    Effect.forkScoped
  )
}))

const provider = MemoryTransport.layer({
  profile: "meta",
  lifecycle: {
    path: { sent: "100 millis", delivered: "100 millis" },
    mix: [
      { share: 0.04, path: { failed: { after: "100 millis", code: "131026", reason: "Message undeliverable" } } },
      { share: 0.3, path: { sent: "100 millis", delivered: "100 millis", read: "100 millis" } },
      { share: 0.05, path: { sent: "100 millis", delivered: "100 millis", read: "100 millis", replied: "100 millis" } }
    ]
  }
})

const layer = statuses.pipe(
  Layer.provideMerge(Broadcaster.Broadcaster.layer),
  Layer.provideMerge(provider),
  Layer.provideMerge(ProgressStore.ProgressStore.layerMemory)
)

program.pipe(Effect.scoped, Effect.provide([layer, NodeServices.layer]), NodeRuntime.runMain)
