/**
 * The few places where SQLite and PostgreSQL really differ, behind one interface: reading a JSON array as a table
 * (how a whole batch travels as one parameter), row locks, how a write transaction starts, and the migration lock.
 * Everything else is one SQL text for both.
 */
import * as ProgressStore from "@crier/core/ProgressStore"
import { Effect, Schedule } from "effect"
import { SqlClient, type SqlError, type Statement } from "effect/sql"
import { isTransient } from "./sqlError.ts"

export type ColumnType = "text" | "int" | "bigint"

export interface Dialect {
  readonly name: "pg" | "sqlite"
  /**
   * A JSON array of objects as the table `v` with the given columns (a missing key reads as NULL): a batch of any
   * size is one parameter, so a batched statement keeps one SQL text (prepared once) and never meets the
   * databases' limits on parameters per statement.
   */
  readonly recordset: (
    rows: ReadonlyArray<object>,
    columns: ReadonlyArray<readonly [name: string, type: ColumnType]>
  ) => Statement.Fragment
  /**
   * `column` is one of `values` (one JSON parameter), in a form the planner answers with an index probe per value.
   * PostgreSQL gets an array (`= ANY`): a join would let a stale estimate of a partial index (made empty by the
   * migration, grown since) pick a merge join that walks the whole index.
   */
  readonly oneOf: (column: string, values: ReadonlyArray<string>) => Statement.Fragment
  /** Locks the rows a read returns until the transaction ends (PostgreSQL; SQLite's writer already holds the file). */
  readonly forUpdate: (alias: string) => Statement.Fragment
  /**
   * Runs `effect` as one write transaction. SQLite starts it with `BEGIN IMMEDIATE`, taking the write lock before
   * the first read, so a read-then-write never fails midway on another writer (it waits out the busy timeout
   * instead). PostgreSQL runs it again when it lost a deadlock or a serialization conflict.
   */
  readonly write: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | SqlError.SqlError, R>
  /** Serializes migrations across processes for the rest of the transaction. */
  readonly migrationLock: Effect.Effect<void, SqlError.SqlError>
}

// "crier" in ASCII: the advisory lock key crier's migrations share in a PostgreSQL database.
const migrationLockKey = 0x6372696572n

export const make = (sql: SqlClient.SqlClient): Effect.Effect<Dialect, ProgressStore.StoreError> =>
  sql.onDialectOrElse({
    pg: () =>
      Effect.succeed<Dialect>({
        name: "pg",
        recordset: (rows, columns) =>
          sql`json_to_recordset(${JSON.stringify(rows)}::json) AS v(${
            sql.literal(columns.map(([name, type]) => `${name} ${type}`).join(", "))
          })`,
        oneOf: (column, values) =>
          sql`${sql.literal(column)} = ANY(ARRAY(SELECT json_array_elements_text(${JSON.stringify(values)}::json)))`,
        forUpdate: (alias) => sql.literal(`FOR UPDATE OF ${alias}`),
        write: (effect) =>
          Effect.retry(sql.withTransaction(effect), {
            times: 5,
            while: isTransient,
            schedule: Schedule.exponential("10 millis")
          }),
        migrationLock: Effect.asVoid(sql`SELECT pg_advisory_xact_lock(${migrationLockKey})`)
      }),
    sqlite: () =>
      Effect.succeed<Dialect>({
        name: "sqlite",
        // Rows travel as arrays and are read through JSONB: SQLite then parses the batch once, not once per field.
        recordset: (rows, columns) =>
          sql`(SELECT ${
            sql.literal(columns.map(([name], index) => `value ->> ${index} AS ${name}`).join(", "))
          } FROM jsonb_each(${
            JSON.stringify(rows.map((row) => columns.map(([name]) => (row as Record<string, unknown>)[name] ?? null)))
          })) AS v`,
        oneOf: (column, values) =>
          sql`${sql.literal(column)} IN (SELECT value FROM json_each(${JSON.stringify(values)}))`,
        forUpdate: () => sql.literal(""),
        write: (effect) =>
          sql.withTransaction(effect).pipe(Effect.provideService(SqlClient.BeginTransaction, "BEGIN IMMEDIATE")),
        migrationLock: Effect.void
      }),
    orElse: () =>
      Effect.fail(
        new ProgressStore.StoreError({
          reason: "Unknown",
          message: `the SQL store supports SQLite and PostgreSQL, not ${sql.driver}`
        })
      )
  })
