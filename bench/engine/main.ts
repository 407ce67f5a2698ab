// bench/engine: the engine's own cost and its pacing accuracy, over the memory store and the memory transport.
// - Overhead: N recipients per MemoryTransport profile (no latency, no rate limit, no status lifecycle), timed from
//   `start` until the broadcast completes with every recipient accepted; the insert is timed apart. The same run over
//   a transport that accepts everything and keeps nothing shows the engine and store alone.
// - Rate fidelity: on the real clock, the meta profile paced by `policy.messagesPerSecond`; the achieved rate over
//   the transport's answer times, and the most hand-offs in any sliding one-second window.
// Last line is JSON; wall time is the target's figure, CPU time (every thread, GC included) the steadier one on a
// busy machine. Usage: node bench/engine/main.ts [--recipients 100000] [--warmup 5000] [--rate-recipients 3000]
// [--rate 200] [--profiles meta,keebai,kapso]
import * as Address from "@crier/core/Address"
import * as Broadcast from "@crier/core/Broadcast"
import { Broadcaster } from "@crier/core/Broadcaster"
import { BroadcastTransport, type ItemOutcome } from "@crier/core/BroadcastTransport"
import * as MemoryTransport from "@crier/core/MemoryTransport"
import * as ProgressStore from "@crier/core/ProgressStore"
import * as Recipient from "@crier/core/Recipient"
import * as TemplateParams from "@crier/core/TemplateParams"
import { DateTime, Effect, Layer, Option } from "effect"
import { parseArgs } from "node:util"
import { template } from "../data/template.ts"

const { values } = parseArgs({
  options: {
    recipients: { type: "string", default: "100000" },
    warmup: { type: "string", default: "5000" },
    "rate-recipients": { type: "string", default: "3000" },
    rate: { type: "string", default: "200" },
    profiles: { type: "string", default: "meta,keebai,kapso" }
  }
})
const recipients = Number(values.recipients)
const warmup = Number(values.warmup)
const rateRecipients = Number(values["rate-recipients"])
const rate = Number(values.rate)
const profiles = values.profiles.split(",") as ReadonlyArray<MemoryTransport.Profile>

const people = (count: number): ReadonlyArray<Recipient.NewRecipient> =>
  Array.from({ length: count }, (_, i) =>
    new Recipient.NewRecipient({
      address: Address.PhoneNumber.make(`+55119${70_000_000 + i}`),
      params: new TemplateParams.TemplateParams({ body: [`Name${i}`], buttons: [] }),
      metadata: {}
    }))

// No status lifecycle: a message stays `accepted`, so the transport plays nothing after the hand-off.
const memory = (profile: MemoryTransport.Profile) => MemoryTransport.layer({ profile, lifecycle: { path: {} } })

const accepted: ItemOutcome = { _tag: "Accepted", providerMessageId: Option.some("null"), held: false }

// Accepts every item at once and keeps nothing, with a profile's capabilities: what is left is the engine and store.
const nullTransport = (profile: MemoryTransport.Profile) =>
  Layer.succeed(
    BroadcastTransport,
    BroadcastTransport.of({
      name: "null",
      capabilities: MemoryTransport.capabilities(profile),
      unsupported: () => Option.none(),
      open: () => Effect.succeed(Option.some("null-remote")),
      submit: (_, batch) => Effect.succeed({ outcomes: batch.map(() => accepted) }),
      start: () => Effect.void,
      poll: () => Effect.succeed({ events: [], cursor: Option.none(), done: true }),
      cancel: () => Effect.void
    })
  )

const engine = <R>(transport: Layer.Layer<BroadcastTransport | R>) =>
  Broadcaster.layer.pipe(Layer.provideMerge(Layer.merge(ProgressStore.ProgressStore.layerMemory, transport)))

interface Timer {
  readonly wall: number
  readonly cpu: NodeJS.CpuUsage
}
const startTimer = Effect.sync((): Timer => ({ wall: performance.now(), cpu: process.cpuUsage() }))
/** Wall and CPU (every thread of the process, GC included) millis since `timer`. */
const elapsed = (timer: Timer) =>
  Effect.sync(() => {
    const cpu = process.cpuUsage(timer.cpu)
    return { wallMillis: performance.now() - timer.wall, cpuMillis: (cpu.user + cpu.system) / 1000 }
  })

/** One broadcast from insert to completion; fails unless every recipient was accepted. */
const send = (list: ReadonlyArray<Recipient.NewRecipient>, policy: ConstructorParameters<typeof Broadcast.Policy>[0]) =>
  Effect.gen(function*() {
    const broadcaster = yield* Broadcaster
    const store = yield* ProgressStore.ProgressStore
    const broadcast = yield* broadcaster.create({
      name: "bench",
      template,
      sender: "15550001111",
      policy: new Broadcast.Policy(policy)
    })
    const inserting = yield* startTimer
    const report = yield* broadcaster.addRecipients(broadcast.id, list)
    const insert = yield* elapsed(inserting)
    const sending = yield* startTimer
    yield* broadcaster.start(broadcast.id)
    const done = yield* broadcaster.wait(broadcast.id)
    const sent = yield* elapsed(sending)
    const counts = yield* store.counts(broadcast.id)
    if (report.added !== list.length || done.status !== "completed" || counts.accepted !== list.length) {
      return yield* Effect.die(`${report.added} added, broadcast ${done.status}, counts ${JSON.stringify(counts)}`)
    }
    return { insert, sent }
  })

/** The most of `times` (sorted millis) within any half-open window of `width` millis. */
const busiestWindow = (times: ReadonlyArray<number>, width: number): number => {
  let most = 0
  let start = 0
  for (let end = 0; end < times.length; end++) {
    while (times[end]! - times[start]! >= width) start++
    most = Math.max(most, end - start + 1)
  }
  return most
}

/** The meta profile paced at `perSecond` on the real clock, measured on the transport's answer times. */
const fidelity = (count: number, perSecond: number) =>
  Effect.gen(function*() {
    yield* send(people(count), { messagesPerSecond: perSecond })
    const submitted = yield* MemoryTransport.MemoryTransport.use((transport) => transport.submitted)
    const times = submitted.map((call) => DateTime.toEpochMillis(call.at)).sort((a, b) => a - b)
    const spanMillis = times[times.length - 1]! - times[0]!
    const achieved = ((times.length - 1) * 1000) / spanMillis
    return {
      count: times.length,
      spanMillis,
      achieved,
      ratio: achieved / perSecond,
      busiest: busiestWindow(times, 1000)
    }
  }).pipe(Effect.provide(engine(memory("meta"))))

const us = (millis: number) => (millis * 1000) / recipients
const figures = (label: string, run: Effect.Success<ReturnType<typeof send>>) => {
  const wall = us(run.sent.wallMillis).toFixed(2).padStart(6)
  const cpu = us(run.sent.cpuMillis).toFixed(2).padStart(6)
  return `${label} ${wall} µs (cpu ${cpu}) · insert ${us(run.insert.wallMillis).toFixed(2)} µs`
}

const program = Effect.gen(function*() {
  const list = people(recipients)
  const warmList = people(warmup)
  const lines = [`overhead per recipient, ${recipients} recipients, start → completed (insert apart):`]
  const results: Array<{ readonly profile: MemoryTransport.Profile; readonly us: number; readonly cpuUs: number }> = []
  for (const profile of profiles) {
    // Each run on a fresh engine, after a small one on another fresh engine to warm the code up (none with
    // `--warmup 0`).
    if (warmup > 0) yield* send(warmList, {}).pipe(Effect.provide(engine(memory(profile))))
    const run = yield* send(list, {}).pipe(Effect.provide(engine(memory(profile))))
    const bare = yield* send(list, {}).pipe(Effect.provide(engine(nullTransport(profile))))
    results.push({ profile, us: us(run.sent.wallMillis), cpuUs: us(run.sent.cpuMillis) })
    lines.push(
      figures(`  ${profile.padEnd(6)} memory transport`, run),
      figures(`  ${profile.padEnd(6)} null transport  `, bare)
    )
  }
  // The worst profile is the figure; in practice meta's, whose one call (and one fiber) per recipient costs most.
  const worst = results.reduce((a, b) => (b.us > a.us ? b : a))
  const paced = yield* fidelity(rateRecipients, rate)
  lines.push(
    `worst: ${worst.profile} ${worst.us.toFixed(2)} µs per recipient (target ≤ 20)`,
    `rate: ${paced.count} hand-offs in ${(paced.spanMillis / 1000).toFixed(2)} s at ${rate}/s:` +
      ` achieved ${paced.achieved.toFixed(2)}/s, ratio ${paced.ratio.toFixed(4)} (target 0.98–1.01)`,
    `busiest one-second window: ${paced.busiest} hand-offs (target ≤ ${rate})`
  )
  return { lines, worst, paced }
})

const { lines, paced, worst } = await Effect.runPromise(program)
for (const line of lines) console.log(line)
console.log(JSON.stringify({
  recipients,
  us_per_recipient: Number(worst.us.toFixed(2)),
  cpu_us_per_recipient: Number(worst.cpuUs.toFixed(2)),
  rate_ratio: Number(paced.ratio.toFixed(4)),
  profile: worst.profile,
  max_per_second_window: paced.busiest
}))
