// Recipients in and statuses back: dedupe across calls and files, CSV import, status events in any order, replies.
import * as Broadcast from "@crier/core/Broadcast"
import { Broadcaster } from "@crier/core/Broadcaster"
import * as MemoryTransport from "@crier/core/MemoryTransport"
import * as ProgressStore from "@crier/core/ProgressStore"
import * as Recipient from "@crier/core/Recipient"
import * as RecipientStatus from "@crier/core/RecipientStatus"
import * as StatusEvent from "@crier/core/StatusEvent"
import * as TemplateParams from "@crier/core/TemplateParams"
import { NodeFileSystem } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { DateTime, Effect, Layer, Option, Stream } from "effect"
import { TestClock } from "effect/testing"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import {
  assertConsistent,
  counts,
  phone,
  recipient,
  recipients,
  rowOf,
  runFor,
  started,
  template,
  withEngine
} from "./Broadcaster.fixtures.ts"

const csvFile = (text: string): string => {
  const path = join(mkdtempSync(join(tmpdir(), "crier-broadcaster-")), "recipients.csv")
  writeFileSync(path, text)
  return path
}

const at = (millis: number) => DateTime.makeUnsafe(millis)

const event = (
  id: Broadcast.BroadcastId,
  seq: number,
  status: RecipientStatus.RecipientStatus,
  millis: number
) => new StatusEvent.StatusEvent({ ref: { _tag: "ById", broadcastId: id, seq }, status, at: at(millis) })

describe("Broadcaster.addRecipients", () => {
  it.effect("dedupes across calls and sources: array, Stream, each reported with the row it repeats", () =>
    Effect.gen(function*() {
      const broadcaster = yield* Broadcaster
      const { id } = yield* broadcaster.create({ name: "dedupe", template, sender: "s" })
      const first = yield* broadcaster.addRecipients(id, recipients(10))
      assert.deepStrictEqual(first, { added: 10, duplicates: 0, rejected: 0, blank: 0, issues: [] })
      const second = yield* broadcaster.addRecipients(id, recipients(11, 5))
      assert.strictEqual(second.added, 5)
      assert.strictEqual(second.duplicates, 6)
      assert.deepStrictEqual(second.issues[0], {
        _tag: "Duplicate",
        index: 0,
        line: undefined,
        address: phone(5),
        firstSeq: 5
      })
      const third = yield* broadcaster.addRecipients(id, Stream.fromIterable([recipient(15), recipient(16)]))
      assert.strictEqual(third.added, 1)
      assert.strictEqual(third.duplicates, 1)
      // The same address twice in one call: the second is the duplicate.
      const fourth = yield* broadcaster.addRecipients(id, [recipient(40), recipient(40, "Again")])
      assert.strictEqual(fourth.added, 1)
      assert.strictEqual(fourth.issues[0]?._tag === "Duplicate" ? fourth.issues[0].index : -1, 1)
      assert.strictEqual((yield* counts(id)).total, 17)
    }).pipe(withEngine()))

  it.effect("rows whose values do not fit the template are rejected, not stored", () =>
    Effect.gen(function*() {
      const broadcaster = yield* Broadcaster
      const { id } = yield* broadcaster.create({ name: "params", template, sender: "s" })
      const bad = new Recipient.NewRecipient({
        address: phone(2),
        params: new TemplateParams.TemplateParams({ body: ["one", "two"], buttons: [] }),
        metadata: {},
        line: 7
      })
      const report = yield* broadcaster.addRecipients(id, [recipient(1), bad, recipient(3)])
      assert.strictEqual(report.added, 2)
      assert.strictEqual(report.rejected, 1)
      const issue = report.issues[0]!
      assert.isTrue(issue._tag === "Rejected" && issue.index === 1 && issue.line === 7)
      assert.include(issue._tag === "Rejected" ? issue.reason : "", "body")
    }).pipe(withEngine()))

  it.effect("a stream's own failure fails the call with that error", () =>
    Effect.gen(function*() {
      const broadcaster = yield* Broadcaster
      const { id } = yield* broadcaster.create({ name: "failing", template, sender: "s" })
      const error = yield* Effect.flip(
        broadcaster.addRecipients(id, Stream.concat(Stream.fromIterable(recipients(3)), Stream.fail("source broke")))
      )
      assert.strictEqual(error, "source broke")
    }).pipe(withEngine()))

  it.effect("a CSV file: its rejections, blank lines and duplicates (in the file and in the broadcast) reported", () =>
    Effect.gen(function*() {
      const broadcaster = yield* Broadcaster
      const { id } = yield* broadcaster.create({ name: "csv", template, sender: "s" })
      yield* broadcaster.addRecipients(id, [recipient(1)])
      const path = csvFile(
        [
          "phone_number,param1,city",
          `${phone(1)},Already there,Rio`,
          `${phone(2)},Ada,Rio`,
          "",
          "not a number,Bob,Rio",
          `${phone(3)},Cy,SP`,
          `${phone(2)},Ada again,Rio`,
          ""
        ].join("\n")
      )
      const report = yield* broadcaster.addRecipients(id, { csv: path })
      assert.strictEqual(report.added, 2)
      assert.strictEqual(report.duplicates, 2)
      assert.strictEqual(report.rejected, 1)
      assert.strictEqual(report.blank, 1)
      const tags = report.issues.map((issue) => [issue._tag, issue.line])
      assert.deepStrictEqual(tags, [["Rejected", 5], ["Duplicate", 7], ["Duplicate", 2]])
      const row = yield* rowOf(id, 2)
      assert.strictEqual(row.address, phone(2))
      assert.deepStrictEqual(row.metadata, { city: "Rio" })
      const missing = yield* Effect.flip(broadcaster.addRecipients(id, { csv: join(tmpdir(), "no-such-file.csv") }))
      assert.strictEqual(missing._tag, "ImportError")
    }).pipe(withEngine(), Effect.provide(NodeFileSystem.layer)))

  it.effect("a large stream goes in 1,000 rows per insert, read no further ahead than the insert it feeds", () => {
    let pulled = 0
    const inserts: Array<{ readonly size: number; readonly pulled: number }> = []
    const spying = Layer.effect(
      ProgressStore.ProgressStore,
      ProgressStore.ProgressStore.useSync((store) =>
        ProgressStore.ProgressStore.of({
          ...store,
          insertRecipients: (id, rows) => {
            inserts.push({ size: rows.length, pulled })
            return store.insertRecipients(id, rows)
          }
        })
      )
    ).pipe(Layer.provide(ProgressStore.ProgressStore.layerMemory))
    return Effect.gen(function*() {
      const broadcaster = yield* Broadcaster
      const { id } = yield* broadcaster.create({ name: "large", template, sender: "s" })
      const source = Stream.map(Stream.range(1, 25_500), (n) => {
        pulled++
        return recipient(n)
      })
      const report = yield* broadcaster.addRecipients(id, source)
      assert.strictEqual(report.added, 25_500)
      assert.deepStrictEqual(inserts.map((insert) => insert.size), [...Array.from({ length: 25 }, () => 1000), 500])
      // At most one chunk of the source (`Stream.range` emits 4,096 at a time) beyond what was inserted.
      inserts.forEach((insert, k) => assert.isAtMost(insert.pulled, (k + 1) * 1000 + Stream.DefaultChunkSize))
    }).pipe(
      Effect.provide(Broadcaster.layer.pipe(Layer.provide(Layer.merge(spying, MemoryTransport.layer()))))
    )
  })
})

describe("Broadcaster status events", () => {
  it.effect("out of order and duplicated events end in the same state, timestamps from the events", () =>
    Effect.gen(function*() {
      const broadcaster = yield* Broadcaster
      const id = yield* started(3)
      yield* runFor(id, "1 second")
      const result = yield* broadcaster.applyStatusEvents([
        event(id, 1, RecipientStatus.read, 10_000),
        event(id, 1, RecipientStatus.delivered, 8000),
        event(id, 1, RecipientStatus.sent, 5000),
        event(id, 1, RecipientStatus.read, 10_000),
        event(id, 2, RecipientStatus.delivered, 6000),
        event(id, 2, RecipientStatus.failed("expired", "131026"), 7000),
        event(id, 99, RecipientStatus.sent, 5000)
      ])
      assert.deepStrictEqual(result, { applied: 4, unchanged: 2, unknown: 1 })
      const one = yield* rowOf(id, 1)
      assert.strictEqual(one.status._tag, "read")
      assert.deepStrictEqual([one.sentAt, one.deliveredAt, one.readAt], [at(5000), at(8000), at(10_000)])
      // Evidence of delivery wins over a failure, whatever the order.
      assert.strictEqual((yield* rowOf(id, 2)).status._tag, "delivered")
      // By the provider's message id too.
      const three = yield* rowOf(id, 3)
      yield* broadcaster.applyStatusEvents([
        new StatusEvent.StatusEvent({
          ref: { _tag: "ByProviderMessageId", providerMessageId: three.providerMessageId! },
          status: RecipientStatus.delivered,
          at: at(9000)
        })
      ])
      assert.strictEqual((yield* rowOf(id, 3)).status._tag, "delivered")
      assertConsistent(yield* counts(id))
    }).pipe(withEngine()))
})

describe("Broadcaster.recordReply", () => {
  it.effect("attributes a reply to the latest broadcast the address got, with its context", () =>
    Effect.gen(function*() {
      const broadcaster = yield* Broadcaster
      const older = yield* started(2, { name: "winter sale" })
      yield* runFor(older, "1 minute")
      const newer = yield* started(1, { name: "spring sale" })
      yield* runFor(newer, "1 second")
      const reply = yield* broadcaster.recordReply({ from: phone(1), at: at(120_000), text: "stop" })
      const context = Option.getOrThrow(reply)
      assert.strictEqual(context.broadcast_id, newer)
      assert.strictEqual(context.broadcast_name, "spring sale")
      assert.strictEqual(context.template_name, "spring_sale")
      assert.strictEqual(context.template_content, "Hi Name1, our spring sale starts today")
      assert.deepStrictEqual(context.sent_at, at(60_000))
      assert.strictEqual(context.reply_text, "stop")
      const replied = yield* rowOf(newer, 1)
      assert.strictEqual(replied.status._tag, "replied")
      assert.deepStrictEqual(replied.repliedAt, at(120_000))
      assert.strictEqual((yield* rowOf(older, 1)).status._tag, "accepted")
      // The other address only got the older broadcast.
      const other = Option.getOrThrow(yield* broadcaster.recordReply({ from: phone(2) }))
      assert.strictEqual(other.broadcast_id, older)
      assert.isTrue(Option.isNone(yield* broadcaster.recordReply({ from: phone(99) })))
      yield* TestClock.adjust("1 second")
    }).pipe(withEngine()))
})
