// Fresh, throwaway databases for bench/store: a SQLite file in a temp folder, or a `crier_bench_<random>` database
// on the PostgreSQL server CRIER_TEST_PG_URL names (default: the local one, trust auth), each removed when the scope
// that made it closes.
import * as ProgressStore from "@crier/core/ProgressStore"
import * as PostgresStore from "@crier/store-sql/PostgresStore"
import * as SqliteStore from "@crier/store-sql/SqliteStore"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Random, Redacted, type Scope } from "effect"
import { Reactivity } from "effect/reactivity"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

export type Kind = "sqlite" | "postgres"

export const kinds: ReadonlyArray<Kind> = ["sqlite", "postgres"]

const serverUrl = process.env.CRIER_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"

const onAdmin = <A, E>(f: (client: PgClient.PgClient) => Effect.Effect<A, E>) =>
  Effect.scoped(
    Effect.flatMap(PgClient.make({ url: Redacted.make(serverUrl), connectTimeout: "5 seconds", maxConnections: 1 }), f)
  ).pipe(Effect.provide(Reactivity.layer))

const sqlite = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "crier-bench-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
).pipe(Effect.map((dir) => SqliteStore.layer({ filename: join(dir, "crier.db") })))

const postgres = Effect.acquireRelease(
  Effect.gen(function*() {
    const name = `crier_bench_${(yield* Random.nextIntBetween(0, 2 ** 31)).toString(36)}`
    yield* onAdmin((client) => client.unsafe(`CREATE DATABASE ${name}`))
    return name
  }),
  (name) => Effect.ignore(onAdmin((client) => client.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)))
).pipe(Effect.map((name) => {
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  return PostgresStore.layer({ url: Redacted.make(url.toString()) })
}))

/** A store on a new, empty database of `kind`, closed and removed with the scope. */
const fresh = (kind: Kind): Effect.Effect<
  Layer.Layer<ProgressStore.ProgressStore, ProgressStore.StoreError>,
  unknown,
  Scope.Scope
> => kind === "sqlite" ? sqlite : postgres

/** Runs `effect` against a store on a new database of `kind`, then closes the store and removes the database. */
export const withFresh = <A, E>(kind: Kind, effect: Effect.Effect<A, E, ProgressStore.ProgressStore>) =>
  Effect.scoped(Effect.gen(function*() {
    const layer = yield* fresh(kind)
    return yield* Effect.provide(effect, yield* Layer.build(layer))
  }))
