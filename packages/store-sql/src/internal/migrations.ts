/**
 * The store's schema, as numbered migrations applied when the layer starts: all pending ones in one transaction
 * that first takes a lock every crier process agrees on (`BEGIN IMMEDIATE` on SQLite, an advisory lock on
 * PostgreSQL), then reads the version. So starting twice does nothing the second time, and processes starting at
 * once wait for each other instead of racing.
 *
 * Never edit a released migration: add the next one.
 */
import * as ProgressStore from "@crier/core/ProgressStore"
import * as RecipientStatus from "@crier/core/RecipientStatus"
import { DateTime, Effect, Schema } from "effect"
import type { SqlClient } from "effect/sql"
import type { Dialect } from "./dialect.ts"

interface Migration {
  readonly version: number
  readonly name: string
  readonly statements: ReadonlyArray<string>
}

// The recipients table's columns, the same in every version, and the indexes its queries use.
const recipientsTable = (name: string, keys: string) =>
  `CREATE TABLE ${name} (
      broadcast_id TEXT NOT NULL,
      seq INTEGER NOT NULL,
      address TEXT NOT NULL,
      params TEXT NOT NULL,
      metadata TEXT NOT NULL,
      status TEXT NOT NULL,
      failure_code TEXT,
      failure_reason TEXT,
      skip_reason TEXT,
      attempts INTEGER NOT NULL,
      provider_message_id TEXT,
      last_error TEXT,
      not_before BIGINT,
      ready_at BIGINT,
      lease_owner TEXT,
      lease_until BIGINT,
      updated_at BIGINT NOT NULL,
      accepted_at BIGINT,
      sent_at BIGINT,
      delivered_at BIGINT,
      read_at BIGINT,
      replied_at BIGINT,
      failed_at BIGINT,
      ${keys}
    )`

const recipientIndexes: ReadonlyArray<string> = [
  // Claims: rows never claimed, in send order ...
  `CREATE INDEX crier_recipients_fresh ON crier_recipients (broadcast_id, seq)
    WHERE status = 'pending' AND ready_at IS NULL`,
  // ... and rows back in pending (released, retried, recovered), by when they may go again.
  `CREATE INDEX crier_recipients_ready ON crier_recipients (broadcast_id, ready_at)
    WHERE status = 'pending' AND ready_at IS NOT NULL`,
  `CREATE INDEX crier_recipients_provider ON crier_recipients (provider_message_id)
    WHERE provider_message_id IS NOT NULL`,
  // Reply attribution: the latest accepted row of an address, ties broken by broadcast and seq.
  `CREATE INDEX crier_recipients_accepted ON crier_recipients (address, accepted_at, broadcast_id, seq)
    WHERE accepted_at IS NOT NULL`
]

const initial: Migration = {
  version: 1,
  name: "initial",
  statements: [
    `CREATE TABLE crier_broadcasts (
      id TEXT PRIMARY KEY,
      name TEXT NOT NULL,
      transport TEXT NOT NULL,
      sender TEXT NOT NULL,
      template TEXT NOT NULL,
      policy TEXT NOT NULL,
      status TEXT NOT NULL,
      status_reason TEXT,
      remote_id TEXT,
      created_at BIGINT NOT NULL,
      scheduled_at BIGINT,
      started_at BIGINT,
      completed_at BIGINT,
      last_seq INTEGER NOT NULL DEFAULT 0
    )`,
    `CREATE INDEX crier_broadcasts_created ON crier_broadcasts (created_at, id)`,
    // Maintained in the transaction of every status change, so progress reads one row, not the whole broadcast.
    `CREATE TABLE crier_counts (
      broadcast_id TEXT PRIMARY KEY,
      ${RecipientStatus.tags.map((tag) => `${tag} INTEGER NOT NULL DEFAULT 0`).join(",\n      ")}
    )`,
    recipientsTable(
      "crier_recipients",
      `PRIMARY KEY (broadcast_id, seq),
      UNIQUE (broadcast_id, address)`
    ),
    ...recipientIndexes
  ]
}

// A broadcast's addresses move to a table of their own, written once per recipient, where an insert finds
// duplicates. As a unique key of crier_recipients, PostgreSQL added an entry to it for every new version of a row
// (each claim, receipt and status event: the status is in the claim indexes' filters, so no update is in place), about
// a quarter of the cost of claiming and recording a batch. Neither dialect drops a unique key the same way (SQLite
// cannot at all), so the table is rebuilt without it.
const addresses: Migration = {
  version: 2,
  name: "addresses",
  statements: [
    `CREATE TABLE crier_addresses (
      broadcast_id TEXT NOT NULL,
      address TEXT NOT NULL,
      seq INTEGER NOT NULL,
      PRIMARY KEY (broadcast_id, address)
    )`,
    `INSERT INTO crier_addresses (broadcast_id, address, seq) SELECT broadcast_id, address, seq FROM crier_recipients`,
    recipientsTable("crier_recipients_v2", "PRIMARY KEY (broadcast_id, seq)"),
    `INSERT INTO crier_recipients_v2 SELECT * FROM crier_recipients`,
    `DROP TABLE crier_recipients`,
    `ALTER TABLE crier_recipients_v2 RENAME TO crier_recipients`,
    ...recipientIndexes
  ]
}

export const migrations: ReadonlyArray<Migration> = [initial, addresses]

export const latest = migrations[migrations.length - 1]!.version

const VersionRow = Schema.Struct({ version: Schema.NullOr(Schema.Union([Schema.Number, Schema.BigInt])) })
const decodeVersion = Schema.decodeUnknownEffect(VersionRow)

/**
 * Applies the pending migrations up to `through` (the latest unless a test builds an older schema); returns the
 * versions it applied (none when the store was up to date).
 */
export const run = (sql: SqlClient.SqlClient, dialect: Dialect, through: number = latest) =>
  dialect.write(Effect.gen(function*() {
    yield* dialect.migrationLock
    yield* sql`CREATE TABLE IF NOT EXISTS crier_migrations (
      version INTEGER PRIMARY KEY,
      name TEXT NOT NULL,
      applied_at BIGINT NOT NULL
    )`
    const [row] = yield* sql`SELECT MAX(version) AS version FROM crier_migrations`
    const { version } = yield* decodeVersion(row).pipe(
      Effect.mapError((issue) =>
        new ProgressStore.StoreError({ reason: "Corrupt", message: `the migrations table cannot be read: ${issue}` })
      )
    )
    const current = version === null ? 0 : Number(version)
    if (current > latest) {
      return yield* new ProgressStore.StoreError({
        reason: "Conflict",
        message: `the store's schema is at version ${current}, newer than this crier knows (${latest}): upgrade crier`
      })
    }
    const now = DateTime.toEpochMillis(yield* DateTime.now)
    const pending = migrations.filter((migration) => migration.version > current && migration.version <= through)
    for (const migration of pending) {
      for (const statement of migration.statements) yield* sql.unsafe(statement)
      yield* sql`INSERT INTO crier_migrations (version, name, applied_at)
        VALUES (${migration.version}, ${migration.name}, ${now})`
    }
    return pending.map((migration) => migration.version)
  }))
