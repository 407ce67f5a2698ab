import * as ProgressStore from "@crier/core/ProgressStore"
import * as SqlStore from "@crier/store-sql/SqlStore"
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import * as Data from "./fixtures/data.ts"
import * as Postgres from "./fixtures/postgres.ts"

const claimSeqs = (
  store: ProgressStore.ProgressStore["Service"],
  id: Parameters<typeof store.claim>[0],
  limit: number
) =>
  Effect.map(
    store.claim(id, { limit, owner: "w", leaseMillis: 60_000, now: Data.at(1) }),
    (rows) => rows.map((row) => row.seq)
  )

const seqs = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

if (Postgres.available) {
  layer(
    Postgres.withDatabase((url) => Layer.provideMerge(SqlStore.layer, PgClient.layer({ url }))),
    { excludeTestServices: true }
  )("PostgresStore claims", (it) => {
    it.effect("rows a rolled-back claim left behind are claimed once the rows after them run short", () =>
      Effect.gen(function*() {
        const store = yield* ProgressStore.ProgressStore
        const sql = yield* SqlClient.SqlClient
        const id = yield* Data.makeBroadcast
        yield* store.insertRecipients(id, Data.recipients(id, 20))
        // A claim inside a transaction that then fails: its rows stay pending, never claimed, though the store
        // already read on past them.
        yield* Effect.flip(sql.withTransaction(Effect.andThen(claimSeqs(store, id, 10), Effect.fail("abort"))))
        assert.deepStrictEqual(
          { ...(yield* store.counts(id)) },
          { ...ProgressStore.emptyCounts, pending: 20, total: 20 }
        )
        // The rows after them fill this claim ...
        assert.deepStrictEqual(yield* claimSeqs(store, id, 5), seqs(11, 15))
        // ... but not this one: it reads from the start too and takes the lowest seqs.
        assert.deepStrictEqual(yield* claimSeqs(store, id, 10), seqs(1, 10))
        assert.deepStrictEqual(yield* claimSeqs(store, id, 10), seqs(16, 20))
        assert.deepStrictEqual(yield* claimSeqs(store, id, 10), [])
        assert.deepStrictEqual(
          { ...(yield* store.counts(id)) },
          { ...ProgressStore.emptyCounts, submitting: 20, total: 20 }
        )
      }))

    it.effect("a claim that finds nothing leaves the counts alone", () =>
      Effect.gen(function*() {
        const store = yield* ProgressStore.ProgressStore
        const sql = yield* SqlClient.SqlClient
        const id = yield* Data.makeBroadcast
        yield* store.insertRecipients(id, Data.recipients(id, 3))
        assert.deepStrictEqual(yield* claimSeqs(store, id, 10), [1, 2, 3])
        const [before] = yield* sql<{ readonly xmin: string }>`SELECT xmin::text FROM crier_counts
          WHERE broadcast_id = ${id}`
        assert.deepStrictEqual(yield* claimSeqs(store, id, 10), [])
        const [after] = yield* sql<{ readonly xmin: string }>`SELECT xmin::text FROM crier_counts
          WHERE broadcast_id = ${id}`
        assert.strictEqual(after!.xmin, before!.xmin, "the counts row was not written")
      }))
  })
} else {
  // PostgresStore.test.ts reports the missing server (and fails in CI).
  describe.skip("PostgresStore claims", () => {
    it("needs a PostgreSQL server", () => {})
  })
}
