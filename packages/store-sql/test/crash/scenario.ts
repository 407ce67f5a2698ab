/**
 * One crash scenario: a broadcast under one in-doubt policy in a fresh store, run by `worker.ts` children that are
 * killed `kills` times at planned points, then once to the end; then the store is opened and checked against the
 * provider's journal (`check.ts`).
 */
import * as Broadcast from "@crier/core/Broadcast"
import * as ProgressStore from "@crier/core/ProgressStore"
import * as RecipientStatus from "@crier/core/RecipientStatus"
import * as TemplateSpec from "@crier/core/TemplateSpec"
import { assert } from "@effect/vitest"
import { Effect, type Layer, Result, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { writeFileSync } from "node:fs"
import * as Data from "../fixtures/data.ts"
import * as Check from "./check.ts"
import * as Child from "./child.ts"
import * as Journal from "./journal.ts"
import * as Protocol from "./protocol.ts"

export interface Target {
  readonly name: string
  /** The worker's `--store`. */
  readonly spec: string
  readonly store: Layer.Layer<ProgressStore.ProgressStore, ProgressStore.StoreError>
  /** A plain client on the same database, to look under the store. */
  readonly sql: Layer.Layer<SqlClient.SqlClient, unknown>
}

export interface Options {
  readonly policy: Broadcast.InDoubtPolicy
  readonly recipients: number
  readonly kills: number
  readonly journal: string
  /** A folder for Node's compile cache, shared by the children. */
  readonly compileCache: string
  /** Uniform in [0, 1): the kill points and transports (seeded, so a seed replays the plan). */
  readonly random: () => number
}

export interface Report extends Check.Findings {
  readonly store: string
  readonly policy: Broadcast.InDoubtPolicy
  readonly runs: number
  readonly kills: number
  /** Where the kills landed: the child's last progress event before each. */
  readonly killedAfter: Readonly<Record<string, number>>
  /** Partial journal lines cut off after a kill. */
  readonly torn: number
  /** Rows `recover` moved, as the children reported them (a kill right after a recovery loses its report). */
  readonly recoveredInDoubt: number
  readonly requeued: number
  readonly seconds: number
}

const template = Result.getOrThrow(TemplateSpec.fromText("Hi {{1}}", { name: "crash", language: "en" }))

/**
 * Kill points, taken in turn so every scenario hits each of them: a delay after the spawn (mostly while Node loads),
 * then progress events — `loaded` with up to 100 ms more lands in opening the store, migrating, recovering or the
 * first claim; the others land in or right after a claim, a hand-off, the provider's answer or a receipt write.
 */
const points: ReadonlyArray<Protocol.Event | "timer"> = [
  "timer",
  "loaded",
  "claim-begin",
  "claimed",
  "submit",
  "journaled",
  "record-begin",
  "recorded"
]

/** A killed run journals at most this many messages (see `capFor`). */
const maxPerRun = 150

const planFor = (index: number, cap: number, random: () => number): Child.KillPlan => {
  const point = points[index % points.length]!
  if (point === "timer") return { _tag: "Timer", millis: Math.floor(random() * 900) }
  return {
    _tag: "Event",
    event: point,
    afterMessages: point === "loaded" ? 0 : Math.floor(random() * Math.min(100, cap)),
    delayMillis: point === "loaded" ? Math.floor(random() * 100) : random() < 0.5 ? 0 : Math.floor(random() * 4)
  }
}

/**
 * The killed runs may journal three quarters of the recipients between them, shared out over the kills left: no
 * killed run can finish the broadcast, whatever the plans (the last quarter covers the rows each kill leaves
 * claimed but unsent, and what a child does between the kill signal and its death).
 */
const capFor = (recipients: number, journaledSoFar: number, killsLeft: number): number =>
  Math.max(1, Math.min(maxPerRun, Math.floor((recipients * 0.75 - journaledSoFar) / killsLeft)))

const create = (policy: Broadcast.InDoubtPolicy, count: number) =>
  Effect.gen(function*() {
    const store = yield* ProgressStore.ProgressStore
    const id = yield* Broadcast.makeId
    yield* store.createBroadcast(
      new Broadcast.Broadcast({
        id,
        name: "crash",
        transport: "journal",
        sender: "sender",
        template,
        policy: Protocol.policy(policy),
        status: "draft",
        createdAt: Data.at(0)
      })
    )
    const inserted = yield* store.insertRecipients(id, Data.recipients(id, count))
    assert.strictEqual(inserted.inserted, count)
    return id
  })

const StoredRow = Schema.Struct({
  seq: Schema.Number,
  status: Schema.String,
  provider_message_id: Schema.NullOr(Schema.String),
  has_accepted_at: Schema.Number,
  attempts: Schema.Number,
  failure_code: Schema.NullOr(Schema.String)
})
const decodeRows = Schema.decodeUnknownSync(Schema.Array(StoredRow))
const decodeGroups = Schema.decodeUnknownSync(Schema.Array(Schema.Struct({ status: Schema.String, n: Schema.Number })))
const decodeCounts = Schema.decodeUnknownSync(
  Schema.Struct(Object.fromEntries(RecipientStatus.tags.map((tag) => [tag, Schema.Number])))
)
const decodeIntegrity = Schema.decodeUnknownSync(Schema.Array(Schema.Struct({ integrity_check: Schema.String })))

/** Reads the database under the store: integrity (SQLite), the rows, the counts row and the real counts. */
const inspect = (id: Broadcast.BroadcastId) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const integrity = yield* sql.onDialectOrElse({
      sqlite: () =>
        Effect.map(sql`PRAGMA integrity_check`, (rows) => decodeIntegrity(rows).map((r) => r.integrity_check)),
      orElse: () => Effect.succeed(["ok"])
    })
    const rows = decodeRows(
      yield* sql`SELECT seq, status, provider_message_id, attempts, failure_code,
          CASE WHEN accepted_at IS NULL THEN 0 ELSE 1 END AS has_accepted_at
        FROM crier_recipients WHERE broadcast_id = ${id} ORDER BY seq`
    )
    const groups = decodeGroups(
      yield* sql`SELECT status, CAST(COUNT(*) AS INTEGER) AS n FROM crier_recipients
        WHERE broadcast_id = ${id} GROUP BY status`
    )
    const [countsRow] = yield* sql`SELECT ${sql.literal(RecipientStatus.tags.join(", "))}
      FROM crier_counts WHERE broadcast_id = ${id}`
    return { integrity, rows, groups, counts: decodeCounts(countsRow) }
  })

export const run = (target: Target, options: Options) =>
  Effect.gen(function*() {
    const started = performance.now()
    const id = yield* create(options.policy, options.recipients).pipe(Effect.provide(target.store))
    writeFileSync(options.journal, "")
    const args = (run: number, transport: Protocol.TransportKind) => [
      "--store",
      target.spec,
      "--broadcast",
      id,
      "--journal",
      options.journal,
      "--policy",
      options.policy,
      "--transport",
      transport,
      "--run",
      String(run)
    ]
    const killedAfter: Record<string, number> = {}
    let torn = 0
    let recoveredInDoubt = 0
    let requeued = 0
    const offset = Math.floor(options.random() * points.length)
    const finalRun = options.kills + 1
    for (let run = 1; run <= finalRun; run++) {
      const last = run === finalRun
      const cap = last
        ? maxPerRun
        : capFor(options.recipients, Journal.read(options.journal, id).length, finalRun - run)
      // The killed runs alternate between the two; the finishing one batches, the quickest way through the rest.
      const transport = last ? "batch" : Protocol.transports[(run + offset) % 2]!
      const outcome = yield* Effect.promise(() =>
        Child.run({
          args: args(run, transport),
          plan: last ? { _tag: "None" } : planFor(run + offset, cap, options.random),
          capMessages: cap,
          timeoutMillis: last ? 120_000 : 30_000,
          compileCache: options.compileCache
        })
      )
      const what = `${target.name} ${options.policy} run ${run} (${transport}) ended with code ${outcome.code}, ` +
        `signal ${outcome.signal}${outcome.timedOut ? " after the timeout" : ""}:\n${outcome.output}`
      if (last) {
        assert.isTrue(outcome.code === 0 && outcome.done === "completed", what)
      } else {
        assert.isTrue(outcome.killed && outcome.signal === "SIGKILL", what)
        killedAfter[outcome.killedAfter] = (killedAfter[outcome.killedAfter] ?? 0) + 1
      }
      assert.isFalse(Child.groupAlive(outcome.pid), `run ${run}: a process of group ${outcome.pid} outlived the kill`)
      if (Journal.repair(options.journal)) torn++
      recoveredInDoubt += outcome.recovered?.inDoubt ?? 0
      requeued += outcome.recovered?.requeued ?? 0
    }

    // The database opens through the store, the broadcast completed, and its counts are the rows' real counts.
    const opened = yield* Effect.gen(function*() {
      const store = yield* ProgressStore.ProgressStore
      return { broadcast: yield* store.getBroadcast(id), counts: yield* store.counts(id) }
    }).pipe(Effect.provide(target.store))
    assert.strictEqual(opened.broadcast.status, "completed")
    const seen = yield* inspect(id).pipe(Effect.provide(target.sql))
    assert.deepStrictEqual(seen.integrity, ["ok"], "integrity_check")
    const real = Object.fromEntries(
      RecipientStatus.tags.map((tag) => [tag, seen.groups.find((group) => group.status === tag)?.n ?? 0])
    )
    assert.deepStrictEqual(seen.counts, real, "the counts row is the rows' GROUP BY")
    assert.deepStrictEqual({ ...opened.counts }, { ...real, total: options.recipients }, "store.counts")

    const findings = Check.analyze({
      policy: options.policy,
      total: options.recipients,
      rows: seen.rows.map((row) => ({
        seq: row.seq,
        status: row.status,
        providerMessageId: row.provider_message_id,
        hasAcceptedAt: row.has_accepted_at === 1,
        attempts: row.attempts,
        failureCode: row.failure_code
      })),
      journal: Journal.read(options.journal, id),
      kills: options.kills
    })
    return {
      ...findings,
      store: target.name,
      policy: options.policy,
      runs: finalRun,
      kills: options.kills,
      killedAfter,
      torn,
      recoveredInDoubt,
      requeued,
      seconds: (performance.now() - started) / 1000
    } satisfies Report
  })

const columns: ReadonlyArray<readonly [string, (report: Report) => string | number]> = [
  ["store", (r) => r.store],
  ["policy", (r) => r.policy],
  ["runs", (r) => r.runs],
  ["kills", (r) => r.kills],
  ["journal lines", (r) => r.journalLines],
  ["journaled", (r) => r.journaled],
  ["accepted", (r) => r.accepted],
  ["failed", (r) => r.failed],
  ["in_doubt", (r) => r.inDoubt],
  ["(sent", (r) => r.inDoubtSent],
  ["unsent)", (r) => r.inDoubtUnsent],
  ["duplicates", (r) => r.duplicates],
  ["max/recipient", (r) => r.maxPerRecipient],
  ["max unrecorded/kill", (r) => r.maxUnrecordedPerKill],
  ["recovered", (r) => r.recoveredInDoubt + r.requeued],
  ["torn", (r) => r.torn],
  ["s", (r) => r.seconds.toFixed(1)]
]

/** The reports as a text table, with where the kills landed below it. */
export const table = (reports: ReadonlyArray<Report>): string => {
  const cells = [columns.map(([name]) => name), ...reports.map((r) => columns.map(([, get]) => String(get(r))))]
  const widths = columns.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)))
  const lines = cells.map((row) => row.map((cell, i) => cell.padStart(widths[i]!)).join("  "))
  const landed = reports.map((r) =>
    `${r.store} ${r.policy} kills landed after: ${
      Object.entries(r.killedAfter).sort(([a], [b]) => a.localeCompare(b)).map(([k, n]) => `${k} ${n}`).join(", ")
    }`
  )
  return [...lines, ...landed].join("\n")
}
