/**
 * The embedded store: SQLite in one file through Node's built-in `node:sqlite` (no native build), the default when no
 * database is configured. Several processes can share the file (`send` in one terminal, `status` or the webhook
 * server in another): SQLite's lock serializes their writes and each waits up to `busyTimeout` for the others.
 *
 * Settings, for every connection:
 * - `journal_mode = WAL`: readers never block the writer, and a commit is one append to the log.
 * - `synchronous = FULL`: each commit is on disk before it returns. For a crash of the process alone (`kill -9`)
 *   NORMAL would do as well (a committed WAL frame is in the OS's cache, which outlives the process); FULL keeps
 *   committed rows through a power cut or an OS crash too, and the guarantees need that: a recorded acceptance that
 *   vanished would send the message again. The price is one fsync per transaction, which the store's batched writes
 *   (one transaction per claim, receipt batch or event batch) spread over the whole batch.
 * - `busy_timeout`: how long a write waits for another process's before failing as `Unavailable`.
 */
import * as ProgressStore from "@crier/core/ProgressStore"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Effect, Layer, Predicate, Schedule, Schema } from "effect"
import { Reactivity } from "effect/reactivity"
import { SqlClient } from "effect/sql"
import { mkdirSync } from "node:fs"
import { dirname } from "node:path"
import { isSqliteBusy, toStoreError } from "./internal/sqlError.ts"
import * as SqlStore from "./SqlStore.ts"

export interface Options {
  /** The database file; its folder is created when missing. Default `./.crier/crier.db`. */
  readonly filename?: string | undefined
}

export const defaultFilename = "./.crier/crier.db"

/** How long a write waits for another process holding the file before it fails. */
export const busyTimeoutMillis = 5_000

const unavailable = (filename: string, cause: unknown) =>
  new ProgressStore.StoreError({
    reason: "Unavailable",
    message: `cannot open the SQLite store ${filename}: ${
      Predicate.hasProperty(cause, "message") ? String(cause.message) : String(cause)
    }`,
    cause
  })

const JournalMode = Schema.Struct({ journal_mode: Schema.String })
const decodeJournalMode = Schema.decodeUnknownEffect(JournalMode)

/** Opens (creating when needed) the file and its settings, then the store; closes the file when the scope ends. */
const make = Effect.fnUntraced(function*(filename: string) {
  if (filename !== ":memory:" && filename !== "") {
    yield* Effect.try({
      try: () => mkdirSync(dirname(filename), { recursive: true }),
      catch: (cause) => unavailable(filename, cause)
    })
  }
  // The driver opens the file synchronously and throws when it cannot; WAL is switched on below, after the busy
  // timeout, so two processes opening a new file at once wait for each other instead of failing.
  const client = yield* SqliteClient.make({ filename, disableWAL: true }).pipe(
    Effect.catchDefect((cause) => Effect.fail(unavailable(filename, cause)))
  )
  yield* Effect.gen(function*() {
    yield* client.unsafe(`PRAGMA busy_timeout = ${busyTimeoutMillis}`)
    const [mode] = yield* client.unsafe(`PRAGMA journal_mode = WAL`)
    const { journal_mode } = yield* decodeJournalMode(mode).pipe(Effect.orElseSucceed(() => ({ journal_mode: "" })))
    if (journal_mode !== "wal" && journal_mode !== "memory") {
      return yield* new ProgressStore.StoreError({
        reason: "Unavailable",
        message: `the SQLite store ${filename} cannot use write-ahead logging (journal mode ${
          journal_mode || "unknown"
        })`
      })
    }
    yield* client.unsafe(`PRAGMA synchronous = FULL`)
  }).pipe(
    // The switch to WAL needs the file to itself: while another process writes to a new file (or switches it too),
    // SQLite refuses at once rather than wait, so the switch is tried again for about as long as the busy timeout.
    Effect.retry({ while: isSqliteBusy, schedule: Schedule.exponential("10 millis"), times: 9 }),
    Effect.catchTag("SqlError", (error) => Effect.fail(toStoreError(`open ${filename}`)(error)))
  )
  return yield* Effect.provideService(SqlStore.make, SqlClient.SqlClient, client)
})

/** The store in the SQLite file `filename` (default `./.crier/crier.db`). */
export const layer = (options: Options = {}): Layer.Layer<ProgressStore.ProgressStore, ProgressStore.StoreError> =>
  Layer.effect(ProgressStore.ProgressStore, make(options.filename ?? defaultFilename)).pipe(
    Layer.provide(Reactivity.layer)
  )
