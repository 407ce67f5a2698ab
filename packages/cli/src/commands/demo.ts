/**
 * `crier demo`: the whole of `crier send --transport meta` on this machine, without an account. A Meta emulator
 * (`@crier/testkit`) and the webhook server of `crier webhooks serve` start in this process on 127.0.0.1, sharing a
 * generated app secret; the sample file is imported and reported as `send` reports it, then sent through the real
 * `meta` transport into the real store (`./.crier/crier.db` unless `--store` or `CRIER_STORE` says otherwise), at a
 * pace that takes about a minute. The emulated recipients meet the fates Meta's do — most delivered and read, some
 * replies, a few refusals (131026, 131049, 131050) and messages held then failed (132015) — with their lifecycles
 * pressed into seconds, their statuses coming back as signed webhooks, late and out of order. Once the last webhooks
 * are in, the funnel, the failures by reason, and the commands to look deeper.
 */
import type * as Broadcast from "@crier/core/Broadcast"
import * as ProgressStore from "@crier/core/ProgressStore"
import * as RecipientStatus from "@crier/core/RecipientStatus"
import * as TemplateSpec from "@crier/core/TemplateSpec"
import * as MetaCloud from "@crier/meta/MetaCloud"
import { MetaEmulator } from "@crier/testkit"
import { ConfigProvider, Console, Duration, Effect, Layer, Option, Redacted } from "effect"
import { Command, Flag } from "effect/cli"
import { randomUUID } from "node:crypto"
import { basename, join, relative } from "node:path"
import { explained, UsageError } from "../CliFailure.ts"
import * as RecipientFile from "../RecipientFile.ts"
import * as Runner from "../Runner.ts"
import * as Stores from "../Stores.ts"
import * as Summary from "../Summary.ts"
import * as Transports from "../Transports.ts"
import * as WebhookServer from "../WebhookServer.ts"

// From the current folder, so that the report names it as a person would type it.
const sampleFile = relative(
  ".",
  join(import.meta.dirname, "..", "..", "..", "..", "examples", "data", "recipients.csv")
)

const templateText = "Hi {{first_name}}, your order {{order_id}} ships today."

/** About a minute for the sample's ~9,700 accepted rows, over Meta's standard 80/s: an upgraded number. */
export const defaultRate = 170

/** How long the last statuses may take to come in once every message was handed over. */
export const settleTimeout = Duration.seconds(15)

// Shares by a hash of the number, so a file meets the same fates every time; the rest is delivered and not read.
const fates: ReadonlyArray<{ readonly share: number; readonly outcome: MetaEmulator.Outcome }> = [
  { share: 0.06, outcome: MetaEmulator.replied("Yes please, when does it arrive?") },
  { share: 0.52, outcome: MetaEmulator.read },
  // A phone that stays off: sent, never delivered.
  { share: 0.015, outcome: MetaEmulator.sent },
  { share: 0.02, outcome: MetaEmulator.failed(131026) },
  { share: 0.012, outcome: MetaEmulator.failed(131049) },
  { share: 0.008, outcome: MetaEmulator.failed(131050) },
  { share: 0.01, outcome: MetaEmulator.held }
]

const between = (min: number, max: number): MetaEmulator.Range => ({
  min: Duration.millis(min),
  max: Duration.millis(max)
})

// Minutes to days at Meta, seconds here; the longest path (a reply) stays well inside `settleTimeout`.
const timing: MetaEmulator.Timing = {
  sent: between(100, 500),
  delivered: between(200, 1000),
  read: between(300, 2000),
  replied: between(500, 2000),
  failed: between(300, 1500)
}

/** Until the emulator has played every lifecycle and delivered every webhook, and the counts stop changing. */
const settle = (id: Broadcast.BroadcastId, emulator: MetaEmulator.MetaEmulator) =>
  Effect.gen(function*() {
    const store = yield* ProgressStore.ProgressStore
    yield* emulator.idle
    let last = yield* store.counts(id)
    let unchanged = 0
    while (unchanged < 2) {
      yield* Effect.sleep(Duration.millis(200))
      const now = yield* store.counts(id)
      unchanged = RecipientStatus.tags.every((tag) => now[tag] === last[tag]) ? unchanged + 1 : 0
      last = now
    }
  }).pipe(Effect.timeoutOption(settleTimeout), Effect.map(Option.isSome))

export const demo = Command.make(
  "demo",
  {
    csv: Flag.String("csv").pipe(
      Flag.withDescription(
        "A recipient file with the sample's columns: phone_number, first_name, order_id (default: the sample, examples/data/recipients.csv)"
      ),
      Flag.optional
    ),
    rate: Flag.Finite("rate").pipe(
      Flag.withDescription(
        `Messages per second (default ${defaultRate}: about a minute for the sample; the emulated number takes 1,000)`
      ),
      Flag.withDefault(defaultRate)
    ),
    store: Stores.flag
  },
  Effect.fn("crier.demo")(function*(input) {
    if (!(input.rate > 0)) {
      return yield* new UsageError({ message: "--rate must be a number of messages per second above 0" })
    }
    const csv = Option.getOrElse(input.csv, () => sampleFile)
    const template = yield* Effect.orDie(
      Effect.fromResult(TemplateSpec.fromText(templateText, { name: "order_update", language: "en_US" }))
    )
    const file: RecipientFile.Options = { defaultRegion: "US", delimiter: "auto" }
    yield* RecipientFile.checkHeader(csv, template, file)
    const location = yield* Stores.locate(input.store)

    const run = Effect.gen(function*() {
      const appSecret = randomUUID()
      // The webhook server's engine, as `crier webhooks serve` runs it (it applies statuses, never sends), built
      // for the life of the demo and given to the server alone: the engines below build their own.
      const intakeEngine = yield* Layer.build(Transports.readOnly)
      const intake = yield* WebhookServer.listen({
        meta: Option.some({
          appSecret: Redacted.make(appSecret),
          verifyToken: Option.some(Redacted.make(randomUUID()))
        }),
        kapso: Option.none(),
        keebai: Option.none()
      }, { port: 0, host: "127.0.0.1" }).pipe(Effect.provide(intakeEngine))
      const emulator = yield* MetaEmulator.make({
        accessToken: randomUUID(),
        templates: [{ spec: template }],
        throughput: MetaCloud.throughputLimits.upgraded,
        outcomes: { mix: fates, default: MetaEmulator.delivered },
        timing,
        // Late, out of order, a few twice, and batched under load: as Meta delivers them.
        webhook: {
          url: `${intake}/webhooks/meta`,
          appSecret,
          delay: between(20, 500),
          duplicateShare: 0.01,
          batch: { size: 25, window: Duration.millis(250) }
        }
      })
      yield* Console.error(
        [
          `Meta emulator on ${emulator.url} (nothing leaves this machine), webhooks into ${intake}/webhooks/meta`,
          `Store: ${Stores.describe(location)}`
        ].join("\n")
      )
      // The transport is configured exactly as a person configures it, from these settings: the emulator's.
      const viaEmulator = ConfigProvider.fromEnv({
        env: {
          META_ACCESS_TOKEN: emulator.accessToken,
          META_BASE_URL: emulator.graphUrl,
          META_PHONE_NUMBER_ID: MetaEmulator.defaultPhoneNumberId
        }
      })
      const plan = yield* Transports.plan("meta", template, { rate: Option.some(input.rate), inDoubt: "at-most-once" })
        .pipe(Effect.provideService(ConfigProvider.ConfigProvider, viaEmulator))
      const { id } = yield* Runner.create({
        name: `${template.name} · ${basename(csv)} (demo)`,
        template,
        sender: plan.sender,
        policy: plan.policy,
        csv,
        file
      }).pipe(Effect.provide(plan.engine))
      yield* Runner.runWith(
        location,
        id,
        Runner.watch(id, {
          display: "auto",
          interruptReason: Runner.interruptedByUser,
          afterInterrupt:
            `Its emulator stops with this process, so it cannot be resumed: run crier demo again. The record stays: crier status ${id}`
        })
      ).pipe(Effect.provideService(ConfigProvider.ConfigProvider, viaEmulator))

      const store = yield* ProgressStore.ProgressStore
      // Paused (by the breaker, or by `crier pause`) or cancelled: not what the demo is about; reported as send does.
      if ((yield* store.getBroadcast(id)).status !== "completed") {
        return yield* Runner.report(id, { json: false, importProblems: 0 })
      }
      yield* Console.error(
        `Every message handed over; waiting for the last webhooks (at most ${Duration.format(settleTimeout)})…`
      )
      const settled = yield* settle(id, emulator)
      const { summary } = yield* Summary.load(id)
      const storeFlag = Option.isSome(input.store) ? ` --store ${Stores.describe(location)}` : ""
      yield* Console.log(
        [
          "",
          Summary.funnel(summary),
          ...(settled ? [] : [
            `(Some statuses had not come in after ${
              Duration.format(settleTimeout)
            }; they will not now: the emulator stops.)`
          ]),
          "",
          "Look deeper:",
          `  pnpm crier status ${id}${storeFlag}`,
          `  pnpm crier recipients ${id} --status failed${storeFlag}`
        ].join("\n")
      )
    })
    yield* run.pipe(Effect.scoped, Effect.provide(Stores.layer(location)), explained)
  })
).pipe(
  Command.withDescription(
    [
      "Send the sample recipient file through a local Meta emulator — no account needed, nothing leaves 127.0.0.1.",
      "",
      "The real meta transport, store and webhook server, against an emulated Cloud API whose recipients are",
      "delivered, read, reply, or fail as Meta's do, in seconds. About a minute at the default rate; a live progress",
      "bar on a terminal; Ctrl-C pauses it. Then the funnel (sent → delivered → read → replied), the failures by",
      "reason, and the commands to look deeper. The record stays in the store (./.crier/crier.db by default).",
      "",
      "Exit status: 0 once it has run to the end — its failed recipients are part of the show, not a problem;",
      "2 usage, 3 paused (reason printed), 130 interrupted."
    ].join("\n  ")
  ),
  Command.withShortDescription("Send the sample file through a local Meta emulator — no account needed"),
  Command.withExamples([
    { command: "crier demo", description: "The sample's 10,000 rows in about a minute" },
    { command: "crier demo --csv my-300-rows.csv --rate 500", description: "A smaller file, faster" }
  ])
)
