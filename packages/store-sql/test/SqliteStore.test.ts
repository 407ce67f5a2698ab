import * as Broadcast from "@crier/core/Broadcast"
import * as ProgressStore from "@crier/core/ProgressStore"
import { ProgressStoreSuite } from "@crier/core/testing"
import * as SqliteStore from "@crier/store-sql/SqliteStore"
import * as SqlStore from "@crier/store-sql/SqlStore"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { afterAll, assert, describe, it, layer } from "@effect/vitest"
import { Effect, Exit, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { spawn } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import * as Data from "./fixtures/data.ts"
import * as Workload from "./fixtures/workload.ts"

const dir = mkdtempSync(join(tmpdir(), "crier-sqlite-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
const freshFile = () => join(dir, `db-${++files}`, "crier.db")

// A file in a folder that does not exist yet: the layer creates it, and WAL needs a real file.
ProgressStoreSuite.suite("SqliteStore", SqliteStore.layer({ filename: join(dir, "conformance", "crier.db") }))

/** The store and a client on the same file (in a folder that exists), for looking under the store. */
const withClient = (filename: string) => Layer.provideMerge(SqlStore.layer, SqliteClient.layer({ filename }))

const migrationRows = (filename: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    return yield* sql<{ version: number; name: string; applied_at: number }>`
      SELECT version, name, applied_at FROM crier_migrations ORDER BY version`
  }).pipe(Effect.provide(SqliteClient.layer({ filename })))

interface ChildResult {
  readonly code: number | null
  readonly out: string
  readonly err: string
}

/**
 * Starts one child per tag on `filename` (`fixtures/openStore.ts`), lets them load, then tells them all to open the
 * store at the same moment.
 */
const openTogether = (filename: string, tags: ReadonlyArray<string>): Promise<ReadonlyArray<ChildResult>> => {
  const children = tags.map((tag) => {
    // The real binary, not node_modules/.bin/node (a wrapper script): see TOOLCHAIN.md.
    const proc = spawn(process.execPath, [join(import.meta.dirname, "fixtures", "openStore.ts"), filename, tag], {
      stdio: ["pipe", "pipe", "pipe"]
    })
    let out = ""
    let err = ""
    const ready = new Promise<void>((resolve) =>
      proc.stdout.on("data", (chunk) => {
        out += chunk
        if (out.includes("ready\n")) resolve()
      })
    )
    proc.stderr.on("data", (chunk) => (err += chunk))
    const done = new Promise<ChildResult>((resolve) =>
      proc.on("close", (code) => resolve({ code, out: out.replace("ready\n", ""), err }))
    )
    return { proc, ready, done }
  })
  return Promise.all(children.map((child) => child.ready)).then(() => {
    for (const child of children) child.proc.stdin.end("go\n")
    return Promise.all(children.map((child) => child.done))
  })
}

describe("SqliteStore", () => {
  it.effect("starting twice on one file migrates once and keeps the data", () =>
    Effect.gen(function*() {
      const filename = freshFile()
      const id = yield* Data.makeBroadcast.pipe(Effect.provide(SqliteStore.layer({ filename })))
      const first = yield* migrationRows(filename)
      assert.deepStrictEqual(first.map((row) => row.version), [1, 2])
      const again = yield* Effect.flatMap(ProgressStore.ProgressStore, (store) => store.getBroadcast(id)).pipe(
        Effect.provide(SqliteStore.layer({ filename }))
      )
      assert.strictEqual(again.id, id)
      assert.deepStrictEqual(yield* migrationRows(filename), first, "the second start applied nothing")
    }))

  it.live(
    "two processes opening one new file at once both start, and the schema is made once",
    () =>
      Effect.gen(function*() {
        const filename = freshFile()
        const results = yield* Effect.promise(() => openTogether(filename, ["a", "b"]))
        for (const result of results) assert.strictEqual(result.code, 0, result.err)
        const ids = results.map((result) => Broadcast.BroadcastId.make(result.out.trim()))
        assert.deepStrictEqual((yield* migrationRows(filename)).map((row) => row.version), [1, 2])
        const counts = yield* Effect.forEach(ids, (id) =>
          Effect.flatMap(ProgressStore.ProgressStore, (store) =>
            store.counts(id)).pipe(
              Effect.provide(SqliteStore.layer({ filename }))
            ))
        for (const count of counts) {
          assert.deepStrictEqual({ ...count }, {
            ...ProgressStore.emptyCounts,
            pending: 90,
            submitting: 10,
            total: 100
          })
        }
      }),
    60_000
  )

  it.effect("a file that cannot be created or opened fails as Unavailable, not as a defect", () =>
    Effect.gen(function*() {
      const blocker = join(dir, "a-file")
      writeFileSync(blocker, "")
      // A folder under a plain file cannot be created.
      const exit = yield* Effect.exit(
        Layer.build(SqliteStore.layer({ filename: join(blocker, "crier.db") })).pipe(Effect.scoped)
      )
      assert.isTrue(Exit.isFailure(exit))
      const error = yield* Effect.flip(exit)
      assert.strictEqual(error.reason, "Unavailable")
    }))

  it.live("opening a new file while another connection writes to it waits for that writer", () =>
    Effect.gen(function*() {
      const filename = freshFile()
      mkdirSync(dirname(filename), { recursive: true })
      // Another process (here a connection) created the file and holds the write lock, still in rollback mode. Our
      // switch to WAL reads the file and then needs it to itself: SQLite answers "locked" at once, without the busy
      // timeout (waiting could deadlock), so the store must try again once the writer is done.
      const writer = new DatabaseSync(filename)
      writer.exec("BEGIN IMMEDIATE; CREATE TABLE other_app (x INTEGER)")
      const done = setTimeout(() => {
        writer.exec("COMMIT")
        writer.close()
      }, 300)
      const id = yield* Data.makeBroadcast.pipe(
        Effect.provide(SqliteStore.layer({ filename })),
        Effect.ensuring(
          Effect.sync(() => clearTimeout(done))
        )
      )
      assert.isTrue(id.startsWith("bc_"))
      assert.deepStrictEqual((yield* migrationRows(filename)).map((row) => row.version), [1, 2])
    }))

  it.live(
    "a write held up by another writer longer than the busy timeout fails as Unavailable",
    () =>
      Effect.gen(function*() {
        const filename = join(dir, "busy.db")
        const context = yield* Layer.build(SqliteStore.layer({ filename }))
        // Another connection holds the write lock past the busy timeout (node:sqlite waits synchronously, so it cannot
        // let go meanwhile).
        const blocker = yield* Effect.acquireRelease(
          Effect.sync(() => {
            const db = new DatabaseSync(filename)
            db.exec("BEGIN IMMEDIATE")
            return db
          }),
          (db) => Effect.sync(() => db.close())
        )
        const error = yield* Effect.flip(Effect.provide(Data.makeBroadcast, context))
        assert.strictEqual(error.reason, "Unavailable")
        assert.include(error.message, "database is locked")
        blocker.exec("ROLLBACK")
        const id = yield* Effect.provide(Data.makeBroadcast, context)
        assert.strictEqual(
          yield* Effect.provide(
            Effect.flatMap(ProgressStore.ProgressStore, (store) => Effect.map(store.getBroadcast(id), (b) => b.id)),
            context
          ),
          id
        )
      }),
    30_000
  )

  it.effect("a file that is not a database fails as Corrupt", () =>
    Effect.gen(function*() {
      const filename = join(dir, "not-a-db")
      writeFileSync(filename, "x".repeat(4096))
      const error = yield* Effect.flip(Layer.build(SqliteStore.layer({ filename })).pipe(Effect.scoped))
      assert.strictEqual(error._tag, "StoreError")
      assert.strictEqual(error.reason, "Corrupt")
    }))

  it.effect("a schema newer than this crier is refused as Conflict", () =>
    Effect.gen(function*() {
      const filename = freshFile()
      yield* Layer.build(SqliteStore.layer({ filename })).pipe(Effect.scoped)
      yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql`INSERT INTO crier_migrations (version, name, applied_at) VALUES (99, 'future', 0)`).pipe(
          Effect.provide(SqliteClient.layer({ filename }))
        )
      const error = yield* Effect.flip(Layer.build(SqliteStore.layer({ filename })).pipe(Effect.scoped))
      assert.strictEqual(error.reason, "Conflict")
      assert.include(error.message, "version 99")
    }))

  it.effect("a row that does not decode fails as Corrupt", () =>
    Effect.gen(function*() {
      const store = yield* ProgressStore.ProgressStore
      const sql = yield* SqlClient.SqlClient
      const id = yield* Data.makeBroadcast
      yield* store.insertRecipients(id, Data.recipients(id, 3))
      yield* sql`UPDATE crier_recipients SET params = 'not json' WHERE broadcast_id = ${id} AND seq = 2`
      const error = yield* Effect.flip(store.recipients(id, { limit: 10 }))
      assert.strictEqual(error.reason, "Corrupt")
      assert.include(error.message, `${id}:2`)
      yield* sql`UPDATE crier_recipients SET params = '{"body":[],"buttons":[]}', status = 'lost' WHERE broadcast_id = ${id} AND seq = 2`
      assert.strictEqual((yield* Effect.flip(store.recipients(id, { limit: 10 }))).reason, "Corrupt")
      yield* sql`UPDATE crier_broadcasts SET policy = '{"batchSize": -1}' WHERE id = ${id}`
      const unreadable = yield* Effect.flip(store.getBroadcast(id))
      assert.isTrue(unreadable._tag === "StoreError" && unreadable.reason === "Corrupt")
    }).pipe(Effect.provide(withClient(join(dir, "corrupt.db")))))
})

layer(withClient(join(dir, "plans.db")), { excludeTestServices: true })("SqliteStore plans", (it) => {
  it.effect("the hot statements use their indexes and probe recipients by key", () => Workload.planChecks, 60_000)
})

layer(SqliteStore.layer({ filename: join(dir, "big", "crier.db") }), { excludeTestServices: true })(
  "SqliteStore at 100,000",
  (it) => {
    it.effect(
      "inserts, claims, records and applies events for 100,000 recipients",
      () => Workload.bigRun(100_000),
      120_000
    )
  }
)
