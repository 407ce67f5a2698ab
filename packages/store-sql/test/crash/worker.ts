/**
 * The crash test's child: runs one broadcast to its end with `Broadcaster.layer` over a real store, unless the parent
 * kills it first (`kill -9` of its process group).
 *
 *   worker.ts --store sqlite:FILE|postgres://… --broadcast ID --journal FILE --policy at-most-once|at-least-once
 *             --transport per-message|batch --run N
 *
 * The transport stands for the provider: every message it accepts is appended to the journal and fsync'd before it
 * answers, so the real sends survive the kill. A small random latency before the hand-off and before the answer
 * lets kills land mid-flight. The store is wrapped only to print progress lines around its claim and receipt
 * writes (see `protocol.ts`).
 *
 * On start it recovers with `takeOver` (the parent guarantees no other worker lives), starts the broadcast if it is
 * still a draft, and waits for it to end: exit 0 when it completed.
 */
import * as Broadcast from "@crier/core/Broadcast"
import { Broadcaster } from "@crier/core/Broadcaster"
import { BroadcastTransport, type ItemOutcome } from "@crier/core/BroadcastTransport"
import * as ProgressStore from "@crier/core/ProgressStore"
import * as TransportError from "@crier/core/TransportError"
import { Effect, Layer, Option, Random, Redacted } from "effect"
import { fsyncSync, openSync, writeSync } from "node:fs"
import { flushCompileCache } from "node:module"
import { parseArgs } from "node:util"
import * as Protocol from "./protocol.ts"

const say = (event: Protocol.Event, ...values: ReadonlyArray<string | number>) =>
  // Synchronous on a pipe (Linux): the line is out before the next step runs.
  Effect.sync(() => process.stdout.write(Protocol.eventLine(event, ...values)))

const { values: args } = parseArgs({
  options: {
    store: { type: "string" },
    broadcast: { type: "string" },
    journal: { type: "string" },
    policy: { type: "string" },
    transport: { type: "string" },
    run: { type: "string" }
  },
  strict: true
})

const required = (name: keyof typeof args): string => {
  const value = args[name]
  if (value === undefined) throw new Error(`worker: --${name} is required`)
  return value
}

const broadcastId = Broadcast.BroadcastId.make(required("broadcast"))
const inDoubt = required("policy")
const kind = Protocol.transports.find((known) => known === required("transport"))
if (kind === undefined) throw new Error(`worker: unknown --transport ${args.transport}`)
const run = Number(required("run"))
const storeSpec = required("store")

// Only the driver this run needs: loading is most of a run's time.
const storeLayer = storeSpec.startsWith("sqlite:")
  ? (await import("../../src/SqliteStore.ts")).layer({ filename: storeSpec.slice("sqlite:".length) })
  : (await import("../../src/PostgresStore.ts")).layer({ url: Redacted.make(storeSpec), maxConnections: 4 })

const tracedStore = Layer.effect(
  ProgressStore.ProgressStore,
  Effect.gen(function*() {
    const store = yield* ProgressStore.ProgressStore
    return ProgressStore.ProgressStore.of({
      ...store,
      claim: (id, request) =>
        say("claim-begin", request.limit).pipe(
          Effect.andThen(store.claim(id, request)),
          Effect.tap((rows) => say("claimed", rows.length))
        ),
      recordReceipts: (id, outcomes, now) =>
        say("record-begin", outcomes.length).pipe(
          Effect.andThen(store.recordReceipts(id, outcomes, now)),
          Effect.andThen(say("recorded", outcomes.length))
        )
    })
  })
).pipe(Layer.provide(storeLayer))

const latency = Effect.flatMap(Random.nextIntBetween(0, 3), (millis) => Effect.sleep(millis))

const journalTransport = Layer.sync(BroadcastTransport, () => {
  const fd = openSync(required("journal"), "a")
  const refusal = new TransportError.TransportError({
    provider: "journal",
    operation: "submit",
    reason: new TransportError.RecipientRejected({
      message: "not a WhatsApp user",
      code: Protocol.refusedCode
    })
  })
  return BroadcastTransport.of({
    name: "journal",
    capabilities: Protocol.capabilities(kind),
    unsupported: () => Option.none(),
    open: () => Effect.succeedNone,
    submit: (_broadcast, batch) =>
      Effect.gen(function*() {
        yield* say("submit", batch.length)
        yield* latency
        let lines = ""
        const outcomes = batch.map((item): ItemOutcome => {
          if (Protocol.refused(item.seq)) return { _tag: "Rejected", error: refusal }
          const id = Protocol.messageId(run, item.seq)
          lines += Protocol.journalLine(item.recipientId, id)
          return { _tag: "Accepted", providerMessageId: Option.some(id), held: false }
        })
        if (lines !== "") {
          // The provider's side effect: on disk before the answer leaves.
          writeSync(fd, lines)
          fsyncSync(fd)
        }
        yield* say("journaled", outcomes.filter((outcome) => outcome._tag === "Accepted").length)
        yield* latency
        return { outcomes }
      }),
    start: () => Effect.void,
    poll: () => Effect.succeed({ events: [], cursor: Option.none(), done: true }),
    cancel: () => Effect.void
  })
})

const program = Effect.gen(function*() {
  const engine = yield* Broadcaster
  const broadcast = yield* engine.get(broadcastId)
  const stored = broadcast.policy.inDoubt ?? Broadcast.defaults.inDoubt
  if (stored !== inDoubt) {
    return yield* Effect.die(`broadcast ${broadcastId} is ${stored}, the parent said ${inDoubt}`)
  }
  const [recovered] = yield* engine.recover({ takeOver: true })
  yield* say("recovered", recovered?.inDoubt ?? 0, recovered?.requeued ?? 0)
  if (broadcast.status === "draft") yield* engine.start(broadcastId)
  yield* say("ready")
  const end = yield* engine.wait(broadcastId)
  yield* say("done", end.status)
  return end.status
}).pipe(
  Effect.provide(Broadcaster.layer.pipe(Layer.provide(Layer.merge(tracedStore, journalTransport))))
)

// Written now: a killed run never reaches the exit, where Node would write it (NODE_COMPILE_CACHE, see child.ts).
flushCompileCache()
process.stdout.write(Protocol.eventLine("loaded"))
Effect.runPromise(program).then(
  (status) => process.exit(status === "completed" ? 0 : 2),
  (error) => {
    process.stderr.write(`worker: ${error}\n`)
    process.exit(1)
  }
)
