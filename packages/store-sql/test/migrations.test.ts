/**
 * Upgrades: a database written by an earlier crier opens under this one with its data intact. The fixture
 * (`fixtures/version1.json`) holds the rows crier wrote at schema version 1 for one broadcast of six recipients: one
 * accepted, one failed, one back in pending until a retry time, one delivered, two never claimed.
 */
import * as Broadcast from "@crier/core/Broadcast"
import * as ProgressStore from "@crier/core/ProgressStore"
import * as RecipientStatus from "@crier/core/RecipientStatus"
import * as StatusEvent from "@crier/core/StatusEvent"
import * as SqlStore from "@crier/store-sql/SqlStore"
import { PgClient } from "@effect/sql-pg"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Dialect from "../src/internal/dialect.ts"
import * as Migrations from "../src/internal/migrations.ts"
import * as Data from "./fixtures/data.ts"
import * as Postgres from "./fixtures/postgres.ts"

type Rows = readonly [Record<string, unknown>, ...Array<Record<string, unknown>>]
const version1: Record<string, Rows> = JSON.parse(
  readFileSync(join(import.meta.dirname, "fixtures", "version1.json"), "utf8")
)
const id = Broadcast.BroadcastId.make(version1["crier_broadcasts"]![0]!["id"] as string)
const addressOf = (seq: number) => version1["crier_recipients"]!.find((row) => row["seq"] === seq)!["address"] as string

/** Builds schema version 1 on an empty database and writes the fixture's rows into it. */
const seedVersion1 = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const dialect = yield* Dialect.make(sql)
  assert.deepStrictEqual(yield* Migrations.run(sql, dialect, 1), [1])
  for (const [table, rows] of Object.entries(version1)) {
    yield* sql`INSERT INTO ${sql(table)} ${sql.insert(rows)}`
  }
})

const upgrades = Effect.gen(function*() {
  yield* seedVersion1
  const sql = yield* SqlClient.SqlClient
  const store = yield* Effect.provideService(SqlStore.make, SqlClient.SqlClient, sql)
  const versions = yield* sql<{ readonly version: number }>`SELECT version FROM crier_migrations ORDER BY version`
  assert.deepStrictEqual(versions.map((row) => Number(row.version)), Migrations.migrations.map((m) => m.version))

  assert.deepStrictEqual({ ...(yield* store.counts(id)) }, {
    ...ProgressStore.emptyCounts,
    pending: 3,
    accepted: 1,
    delivered: 1,
    failed: 1,
    total: 6
  })
  const page = yield* store.recipients(id, { limit: 10 })
  assert.deepStrictEqual(page.items.map((row) => [row.seq, row.status._tag]), [
    [1, "accepted"],
    [2, "failed"],
    [3, "pending"],
    [4, "delivered"],
    [5, "pending"],
    [6, "pending"]
  ])

  // The addresses came along: an old one is a duplicate, new ones take the next seqs.
  const old = Data.recipients(id, 1)[0]!
  assert.strictEqual(old.address, addressOf(1), "the fixture's addresses are Data.recipients'")
  const inserted = yield* store.insertRecipients(id, [old, ...Data.recipients(id, 2, 100)])
  assert.deepStrictEqual(inserted.duplicates, [{ index: 0, firstSeq: 1 }])
  assert.strictEqual(inserted.inserted, 2)

  // The indexes came along: claims, provider ids and reply attribution find the old rows.
  const claimed = yield* store.claim(id, { limit: 10, owner: "w", leaseMillis: 60_000, now: Data.at(60) })
  assert.deepStrictEqual(claimed.map((row) => row.seq), [3, 5, 6, 7, 8])
  const applied = yield* store.applyStatusEvents([
    new StatusEvent.StatusEvent({
      ref: { _tag: "ByProviderMessageId", providerMessageId: Data.providerId(id, 1) },
      status: RecipientStatus.read,
      at: Data.at(61)
    })
  ])
  assert.deepStrictEqual(applied, { applied: 1, unchanged: 0, unknown: 0 })
  const latest = yield* store.latestForAddress(old.address)
  assert.strictEqual(Option.getOrUndefined(latest)?.seq, 1)
})

describe("migrations", () => {
  const dir = mkdtempSync(join(tmpdir(), "crier-migrations-"))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it.effect("SQLite: a version 1 database upgrades with its rows, addresses and indexes", () =>
    upgrades.pipe(Effect.provide(SqliteClient.layer({ filename: join(dir, "v1.db") }))))

  it.effect.skipIf(!Postgres.available)(
    "PostgreSQL: a version 1 database upgrades with its rows, addresses and indexes",
    () =>
      upgrades.pipe(
        Effect.provide(
          Layer.unwrap(Effect.map(Postgres.freshDatabase, (name) => PgClient.layer({ url: Postgres.urlOf(name) })))
        ),
        Effect.scoped
      )
  )
})
