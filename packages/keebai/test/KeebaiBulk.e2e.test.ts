// End to end over real HTTP on 127.0.0.1: the engine with a durable store, the Keebai transport, the testkit's
// emulator, and a webhook receiver feeding the engine — a 12,000-recipient broadcast from a file with duplicates,
// the request budget spent through the pacer, a 429 retried without a duplicate, and a token refused mid-run.
import * as Broadcast from "@crier/core/Broadcast"
import * as Broadcaster from "@crier/core/Broadcaster"
import * as ProgressStore from "@crier/core/ProgressStore"
import * as Recipient from "@crier/core/Recipient"
import type * as RecipientStatus from "@crier/core/RecipientStatus"
import * as TemplateParams from "@crier/core/TemplateParams"
import * as TemplateSpec from "@crier/core/TemplateSpec"
import * as KeebaiBulk from "@crier/keebai/KeebaiBulk"
import * as KeebaiWebhook from "@crier/keebai/KeebaiWebhook"
import * as SqliteStore from "@crier/store-sql/SqliteStore"
import { KeebaiEmulator } from "@crier/testkit"
import { NodeHttpClient, NodeHttpServer, NodeServices } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Context, Effect, Layer, Option, Random, Redacted, References, Result } from "effect"
import { HttpServer } from "effect/http"
import { mkdtempSync, writeFileSync } from "node:fs"
import { createServer } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"

const secret = "whsec_e2e_secret"
const token = KeebaiEmulator.defaultToken

const template = Result.getOrThrow(TemplateSpec.fromText("Oi {{1}}, sua oferta chegou!", {
  name: "oferta_julho",
  language: "pt_BR"
}))

const phone = (i: number) => `+5511960${String(i).padStart(6, "0")}`

interface Tally {
  /** Events the intake took (after dedupe on the event id). */
  statuses: number
  replies: number
}

/**
 * The whole stack, for one test: receiver → emulator (webhooks to the receiver) → transport (to the emulator) →
 * engine (with `store`), then the receiver starts feeding the engine. `transport` adds to the transport's options.
 */
const withStack = <A, E>(
  emulatorOptions: Omit<KeebaiEmulator.Options, "webhook"> & {
    readonly webhook?: Partial<KeebaiEmulator.Webhook> | undefined
  },
  storeLayer: Layer.Layer<ProgressStore.ProgressStore, unknown>,
  body: (stack: {
    readonly broadcaster: Broadcaster.Broadcaster["Service"]
    readonly store: ProgressStore.ProgressStore["Service"]
    readonly emulator: KeebaiEmulator.KeebaiEmulator["Service"]
    readonly tally: Tally
  }) => Effect.Effect<A, E, any>,
  transport: Partial<KeebaiBulk.Options> = {}
) =>
  Effect.gen(function*() {
    const receiver = yield* NodeHttpServer.make(() => createServer(), { port: 0, host: "127.0.0.1" })
    const emulator = yield* KeebaiEmulator.make({
      ...emulatorOptions,
      webhook: {
        url: `${HttpServer.formatAddress(receiver.address)}/webhooks/keebai`,
        secret,
        delay: { min: 0, max: 200 },
        duplicateShare: 0.03,
        ...emulatorOptions.webhook
      }
    })
    const services = yield* Layer.build(
      Broadcaster.Broadcaster.layer.pipe(
        Layer.provideMerge(KeebaiBulk.layer({ token: Redacted.make(token), baseUrl: emulator.url, ...transport })),
        Layer.provideMerge(storeLayer)
      )
    )
    const tally: Tally = { statuses: 0, replies: 0 }
    const toEngine = yield* KeebaiWebhook.toEngineBatched().pipe(Effect.provideContext(services))
    const apply = (event: KeebaiWebhook.Event) => {
      if (event._tag === "Status") tally.statuses++
      if (event._tag === "Reply") tally.replies++
      return toEngine(event)
    }
    const intake = yield* KeebaiWebhook.makeIntake({ secret: Redacted.make(secret) })
    yield* receiver.serve(KeebaiWebhook.handler(intake, apply)).pipe(Effect.provideContext(services))
    const broadcaster = Context.get(services, Broadcaster.Broadcaster)
    const store = Context.get(services, ProgressStore.ProgressStore)
    return yield* body({ broadcaster, store, emulator, tally }).pipe(Effect.provideContext(services))
  }).pipe(
    Effect.scoped,
    Effect.provide(NodeHttpClient.layerUndici),
    Effect.provide(NodeServices.layer),
    // Thousands of webhooks a second: spans would only slow the receiver down.
    Effect.provideService(References.TracerEnabled, false),
    Random.withSeed("keebai-e2e")
  ) as Effect.Effect<A, E, never>

const newRecipient = (i: number) =>
  new Recipient.NewRecipient({
    address: phone(i) as Recipient.NewRecipient["address"],
    params: new TemplateParams.TemplateParams({ body: [`Cliente ${i}`], buttons: [] }),
    metadata: {}
  })

/** Every row of a broadcast, through keyset pages. */
const allRows = (broadcaster: Broadcaster.Broadcaster["Service"], id: Broadcast.BroadcastId) =>
  Effect.gen(function*() {
    const rows: Array<Recipient.Recipient> = []
    let after: number | undefined = undefined
    while (true) {
      const page: ProgressStore.RecipientPage = yield* broadcaster.recipients(id, { afterSeq: after, limit: 5000 })
      rows.push(...page.items)
      if (Option.isNone(page.nextAfterSeq)) return rows
      after = page.nextAfterSeq.value
    }
  })

/** What the store should say of a message, by the emulator's record. */
const expectedTag = (message: KeebaiEmulator.MessageRecord): RecipientStatus.Tag =>
  message.replied ? "replied" : message.status

describe("Keebai end to end", () => {
  // About 15 s on an idle machine (7 s of it the paced calls); the timeout leaves room for a machine busy with the
  // other test files.
  it.live(
    "12,000 recipients from a file with duplicates: three paced calls, webhook statuses, no duplicate send",
    () =>
      withStack(
        {
          outcomes: { failed: 0.03, read: 0.2, replied: 0.05 },
          // One process plays Keebai, its webhooks, the receiver and the engine: leaving out `sent` (which every
          // delivered event implies) keeps the run near 15,000 webhooks. `sent` is mapped in the conformance suite.
          webhook: { events: ["delivered", "read", "failed", "received"] }
        },
        SqliteStore.layer({ filename: join(mkdtempSync(join(tmpdir(), "crier-keebai-db-")), "crier.db") }),
        ({ broadcaster, emulator, store, tally }) =>
          Effect.gen(function*() {
            const count = 12_000
            // 12,000 distinct numbers, then 150 exact repeats and 150 repeats written another way.
            const lines = ["phone_number,param1"]
            for (let i = 0; i < count; i++) lines.push(`${phone(i)},Cliente ${i}`)
            for (let i = 0; i < 150; i++) lines.push(`${phone(i * 7)},Cliente de novo`)
            for (let i = 0; i < 150; i++) {
              const digits = phone(i * 11 + 1).slice(1)
              lines.push(
                `"+${digits.slice(0, 2)} ${digits.slice(2, 4)} ${digits.slice(4, 9)}-${digits.slice(9)}",Outra vez`
              )
            }
            const csv = join(mkdtempSync(join(tmpdir(), "crier-keebai-")), "recipients.csv")
            writeFileSync(csv, `${lines.join("\n")}\n`)

            const broadcast = yield* broadcaster.create({
              name: "Oferta de julho",
              template,
              sender: "ch_7"
            })
            const report = yield* broadcaster.addRecipients(broadcast.id, { csv })
            assert.deepStrictEqual(
              { added: report.added, duplicates: report.duplicates, rejected: report.rejected },
              { added: count, duplicates: 300, rejected: 0 }
            )

            const started = yield* Clock.currentTimeMillis
            yield* broadcaster.start(broadcast.id)
            const final = yield* broadcaster.wait(broadcast.id)
            const completed = yield* Clock.currentTimeMillis
            assert.strictEqual(final.status, "completed", final.statusReason)
            yield* emulator.idle
            const settled = yield* Clock.currentTimeMillis

            // Three calls of at most 5,000, spaced by the pacer within the request budget, none refused.
            const requests = yield* emulator.requests
            const posts = requests.filter((request) => request.method === "POST")
            assert.deepStrictEqual(posts.map((post) => [post.status, post.recipients]), [
              [202, 5000],
              [202, 5000],
              [202, 2000]
            ])
            assert.isFalse(requests.some((request) => request.status === 429), "no request over the budget")
            const gaps = posts.slice(1).map((post, i) => post.at - posts[i]!.at)
            // 1,000 per hour is one request every 3.6 s (60 per minute, one a second, is looser); the margin is for
            // the calls' own latency on a busy machine.
            for (const gap of gaps) assert.isAtLeast(gap, 3000, `gaps between calls: ${gaps.join(", ")} ms`)
            const remotes = yield* emulator.broadcasts
            assert.strictEqual(new Set(remotes.map((remote) => remote.campaignName)).size, 3, "distinct campaign names")
            assert.isTrue(remotes.every((remote) => remote.status === "COMPLETED"))

            // Each address was sent exactly once, duplicates in the file included.
            assert.strictEqual((yield* emulator.duplicateSends).size, 0)
            for (const i of [0, 7, 1, 12, 11_999]) assert.strictEqual(yield* emulator.sendCount(phone(i)), 1)
            const messages = yield* emulator.messages
            assert.strictEqual(messages.length, count)
            assert.strictEqual(new Set(messages.map((message) => message.to)).size, count)

            // Every row's final status is what the emulator did with its message.
            const rows = yield* allRows(broadcaster, broadcast.id)
            assert.strictEqual(rows.length, count)
            const bySeq = new Map(rows.map((row) => [row.seq, row]))
            const mismatches: Array<string> = []
            const expected: Record<string, number> = {}
            for (const message of messages) {
              const id = Recipient.parseRecipientId(String(message.metaData?.[KeebaiBulk.metaDataKey]))
              assert.isTrue(Option.isSome(id), "every message carries our recipient id")
              if (Option.isNone(id)) continue
              const row = bySeq.get(id.value.seq)!
              const want = expectedTag(message)
              expected[want] = (expected[want] ?? 0) + 1
              if (row.address !== message.to || row.status._tag !== want) {
                mismatches.push(`#${row.seq} ${row.address}: ${row.status._tag}, emulator ${want}`)
              }
              if (want === "failed" && row.status._tag === "failed") assert.strictEqual(row.status.code, "131026")
              if (want !== "failed") assert.strictEqual(row.providerMessageId, message.messageId)
            }
            assert.deepStrictEqual(mismatches.slice(0, 10), [])
            const counts = yield* store.counts(broadcast.id)
            for (const [tag, n] of Object.entries(expected)) {
              assert.strictEqual(counts[tag as RecipientStatus.Tag], n, tag)
            }

            // Every distinct webhook event was taken once, however often it was delivered.
            const steps = { failed: 1, delivered: 1, read: 2, replied: 2 } as Record<string, number>
            const distinct = Object.entries(expected).reduce((sum, [tag, n]) => sum + n * (steps[tag] ?? 0), 0)
            assert.strictEqual(tally.statuses, distinct)
            assert.strictEqual(tally.replies, expected.replied ?? 0)

            const attempts = yield* emulator.webhookAttempts
            const figures = {
              recipients: count,
              fileDuplicates: report.duplicates,
              calls: posts.length,
              gapsMillis: gaps,
              pollRequests: requests.filter((request) => request.method === "GET").length,
              sendingSeconds: (completed - started) / 1000,
              settledSeconds: (settled - started) / 1000,
              webhookPosts: attempts.length,
              webhookEvents: tally.statuses + tally.replies,
              webhookDuplicatesIgnored: attempts.filter((attempt) => attempt.ok).length - tally.statuses -
                tally.replies,
              final: expected
            }
            process.stdout.write(`keebai e2e ${JSON.stringify(figures)}\n`)
          })
      ),
    { timeout: 90_000 }
  )

  it.live("a 429 is waited out with jitter and retried: every address still sent once", () =>
    withStack(
      // A budget of 1 call per 1.5 s, and a transport that does not know it: the emulator refuses, the engine waits.
      { budgets: [{ limit: 1, windowMillis: 1500 }], timing: { startAfter: 10, deliveredAfter: 10 } },
      ProgressStore.ProgressStore.layerMemory,
      ({ broadcaster, emulator, store, tally }) =>
        Effect.gen(function*() {
          const broadcast = yield* broadcaster.create({
            name: "Rate limited",
            template,
            sender: "ch_7",
            policy: new Broadcast.Policy({ batchSize: 10 })
          })
          yield* broadcaster.addRecipients(broadcast.id, Array.from({ length: 30 }, (_, i) => newRecipient(i)))
          yield* broadcaster.start(broadcast.id)
          const final = yield* broadcaster.wait(broadcast.id)
          assert.strictEqual(final.status, "completed", final.statusReason)
          yield* emulator.idle
          const requests = yield* emulator.requests
          const posts = requests.filter((request) => request.method === "POST")
          assert.isTrue(posts.some((post) => post.status === 429), "the budget was hit")
          assert.deepStrictEqual(
            posts.filter((post) => post.status === 202).map((post) => post.recipients),
            [10, 10, 10]
          )
          assert.strictEqual((yield* emulator.duplicateSends).size, 0)
          assert.strictEqual((yield* emulator.messages).length, 30)
          const counts = yield* store.counts(broadcast.id)
          assert.strictEqual(counts.delivered, 30)
          assert.strictEqual(tally.statuses, 60, "a sent and a delivered webhook per message")
        }),
      { requestBudgets: [] }
    ))

  const refused = (tokens: ReadonlyArray<KeebaiEmulator.Token>) =>
    withStack(
      { tokens },
      ProgressStore.ProgressStore.layerMemory,
      ({ broadcaster, emulator }) =>
        Effect.gen(function*() {
          const broadcast = yield* broadcaster.create({
            name: "Refused",
            template,
            sender: "ch_7"
          })
          yield* broadcaster.addRecipients(broadcast.id, Array.from({ length: 5 }, (_, i) => newRecipient(i)))
          yield* broadcaster.start(broadcast.id)
          const final = yield* broadcaster.wait(broadcast.id)
          assert.deepStrictEqual(yield* emulator.messages, [], "nothing was sent")
          const rows = yield* allRows(broadcaster, broadcast.id)
          assert.isTrue(rows.every((row) => row.status._tag === "pending"), "the rows wait for a resume")
          return final
        })
    )

  it.live("a token without the messages:bulk scope stops the broadcast, saying so", () =>
    Effect.gen(function*() {
      const final = yield* refused([{ token, scopes: ["messages:read"] }])
      assert.strictEqual(final.status, "paused")
      assert.include(final.statusReason, "Forbidden")
      assert.include(final.statusReason, "messages:bulk")
    }))

  it.live("an unknown or revoked token stops the broadcast, pointing at KEEBAI_TOKEN", () =>
    Effect.gen(function*() {
      const final = yield* refused([])
      assert.strictEqual(final.status, "paused")
      assert.include(final.statusReason, "Unauthorized")
      assert.include(final.statusReason, "KEEBAI_TOKEN")
      assert.notInclude(final.statusReason, token)
    }))
})
