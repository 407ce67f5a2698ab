import * as ProgressStore from "@crier/core/ProgressStore"
import { ProgressStoreSuite } from "@crier/core/testing"
import * as PostgresStore from "@crier/store-sql/PostgresStore"
import * as SqlStore from "@crier/store-sql/SqlStore"
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it, layer } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import * as Data from "./fixtures/data.ts"
import * as Postgres from "./fixtures/postgres.ts"
import * as Workload from "./fixtures/workload.ts"

const Store = ProgressStore.ProgressStore

describe("PostgresStore without a server", () => {
  it.effect("an unreachable server fails as Unavailable, and the password stays out of the message", () =>
    Effect.gen(function*() {
      const url = Redacted.make("postgres://crier:s3cret-pw@127.0.0.1:1/crier")
      const error = yield* Effect.flip(
        Layer.build(PostgresStore.layer({ url, connectTimeout: "2 seconds" })).pipe(Effect.scoped)
      )
      assert.strictEqual(error._tag, "StoreError")
      assert.strictEqual(error.reason, "Unavailable")
      assert.notInclude(error.message, "s3cret-pw")
      assert.notInclude(String(error), "s3cret-pw")
    }))

  it.effect("layerConfig without CRIER_STORE fails with a ConfigError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Layer.build(PostgresStore.layerConfig()).pipe(Effect.scoped)).pipe(
        Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({})))
      )
      assert.notStrictEqual(error._tag, "StoreError")
    }))
})

if (Postgres.available) {
  ProgressStoreSuite.suite("PostgresStore", Postgres.withDatabase((url) => PostgresStore.layer({ url })))

  describe("PostgresStore", () => {
    it.effect("layerConfig reads the URL from CRIER_STORE", () =>
      Effect.gen(function*() {
        const id = yield* Data.makeBroadcast
        assert.strictEqual((yield* (yield* Store).getBroadcast(id)).id, id)
      }).pipe(
        Effect.provide(Postgres.withDatabase((url) =>
          PostgresStore.layerConfig().pipe(
            Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ CRIER_STORE: Redacted.value(url) })))
          )
        ))
      ))

    it.effect("two stores starting at once on a new database both start, and the schema is made once", () =>
      Effect.gen(function*() {
        const name = yield* Postgres.freshDatabase
        const url = Postgres.urlOf(name)
        const started = yield* Effect.all(
          [1, 2].map(() => Layer.build(PostgresStore.layer({ url }))),
          { concurrency: 2 }
        )
        assert.strictEqual(started.length, 2)
        const versions = yield* Effect.flatMap(
          SqlClient.SqlClient,
          (sql) => sql<{ version: number }>`SELECT version FROM crier_migrations ORDER BY version`
        ).pipe(
          Effect.provide(PgClient.layer({ url }))
        )
        assert.deepStrictEqual(versions.map((row) => row.version), [1, 2])
      }))

    it.live(
      "two stores with their own pools, claiming one broadcast at once, never get the same row",
      () =>
        Effect.gen(function*() {
          const name = yield* Postgres.freshDatabase
          const url = Postgres.urlOf(name)
          const [one, two] = yield* Effect.all(
            [1, 2].map(() => Layer.build(PostgresStore.layer({ url, maxConnections: 4 }))),
            { concurrency: 2 }
          )
          const id = yield* Effect.provide(Data.makeBroadcast, one!)
          yield* Effect.provide(
            Effect.flatMap(Store, (store) => store.insertRecipients(id, Data.recipients(id, 5_000))),
            one!
          )
          // Two workers per store, each claiming small batches until nothing is left.
          const worker = (owner: string) =>
            Effect.gen(function*() {
              const store = yield* Store
              const seqs: Array<number> = []
              for (;;) {
                const rows = yield* store.claim(id, { limit: 50, owner, leaseMillis: 60_000, now: Data.at(1) })
                if (rows.length === 0) return seqs
                seqs.push(...rows.map((row) => row.seq))
              }
            })
          const claimed = yield* Effect.all([
            Effect.provide(worker("one-a"), one!),
            Effect.provide(worker("one-b"), one!),
            Effect.provide(worker("two-a"), two!),
            Effect.provide(worker("two-b"), two!)
          ], { concurrency: 4 })
          for (const seqs of claimed) assert.isAbove(seqs.length, 0, "every worker got rows")
          const all = claimed.flat().sort((a, b) => a - b)
          assert.strictEqual(all.length, 5_000, "no row claimed twice")
          assert.deepStrictEqual(all, Array.from({ length: 5_000 }, (_, i) => i + 1))
          const counts = yield* Effect.provide(Effect.flatMap(Store, (store) => store.counts(id)), two!)
          assert.deepStrictEqual({ ...counts }, { ...ProgressStore.emptyCounts, submitting: 5_000, total: 5_000 })
        }),
      60_000
    )
  })

  layer(
    Postgres.withDatabase((url) => Layer.provideMerge(SqlStore.layer, PgClient.layer({ url }))),
    { excludeTestServices: true }
  )("PostgresStore plans", (it) => {
    it.effect("the hot statements use their indexes and probe recipients by key", () => Workload.planChecks, 60_000)
  })

  layer(Postgres.withDatabase((url) => PostgresStore.layer({ url })), { excludeTestServices: true })(
    "PostgresStore at 100,000",
    (it) => {
      it.effect(
        "inserts, claims, records and applies events for 100,000 recipients",
        () => Workload.bigRun(100_000),
        180_000
      )
    }
  )
} else {
  if (!process.env.CI) {
    console.warn(`PostgresStore tests skipped: ${Postgres.unavailableMessage} (set CRIER_TEST_PG_URL)`)
  }
  describe("PostgresStore", () => {
    // CI must run these: there a missing server is a failure, not a skip.
    it.skipIf(!process.env.CI)(`skipped: ${Postgres.unavailableMessage} (set CRIER_TEST_PG_URL)`, () => {
      throw new Error(`${Postgres.unavailableMessage}; CI must run the PostgreSQL store tests`)
    })
  })
}
