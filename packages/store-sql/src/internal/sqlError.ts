/**
 * The one mapping from effect/sql's `SqlError` to the port's `StoreError`: every database failure reaches callers as
 * a `StoreError` with a reason, never as a defect, and never with a secret in its message.
 */
import * as ProgressStore from "@crier/core/ProgressStore"
import { Predicate } from "effect"
import { SqlError } from "effect/sql"

type Reason = ProgressStore.StoreError["reason"]

// SQLite primary result codes (the low byte of an extended code) that say the file itself is damaged.
const sqliteCorrupt = new Set([11, /* SQLITE_CORRUPT */ 26 /* SQLITE_NOTADB */])
// The disk or the file cannot take the write right now; nothing is wrong with the data.
const sqliteUnavailable = new Set([
  8, /* SQLITE_READONLY */
  10, /* SQLITE_IOERR */
  13, /* SQLITE_FULL */
  14, /* SQLITE_CANTOPEN */
  15 /* SQLITE_PROTOCOL */
])

const sqliteCode = (cause: unknown): number | undefined => {
  for (const key of ["errcode", "errno"] as const) {
    if (Predicate.hasProperty(cause, key) && typeof cause[key] === "number") return (cause[key] as number) & 0xff
  }
  return undefined
}

// PostgreSQL SQLSTATE class XX (internal error): XX001 data_corrupted, XX002 index_corrupted.
const pgState = (cause: unknown): string | undefined =>
  Predicate.hasProperty(cause, "code") && typeof cause.code === "string" ? cause.code : undefined

const reasonOf = (error: SqlError.SqlError): Reason => {
  const cause = error.reason.cause
  const sqlite = sqliteCode(cause)
  const state = pgState(cause)
  if ((sqlite !== undefined && sqliteCorrupt.has(sqlite)) || state === "XX001" || state === "XX002") return "Corrupt"
  switch (error.reason._tag) {
    case "ConnectionError":
    case "AuthenticationError":
    case "AuthorizationError":
    case "LockTimeoutError":
    case "StatementTimeoutError":
    case "DeadlockError":
    case "SerializationError":
      return "Unavailable"
    case "UniqueViolation":
    case "ConstraintError":
      return "Conflict"
    default:
      return sqlite !== undefined && sqliteUnavailable.has(sqlite) ? "Unavailable" : "Unknown"
  }
}

/** Removes credentials from connection strings a driver may echo (`postgres://user:secret@host`). */
export const scrub = (text: string): string => text.replace(/([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*):[^@\s]*@/gi, "$1:***@")

const detail = (error: SqlError.SqlError): string => {
  const cause = error.reason.cause
  const own = error.reason.message ?? error.reason._tag
  const underlying = Predicate.hasProperty(cause, "message") && typeof cause.message === "string"
    ? cause.message
    : undefined
  return scrub(underlying === undefined || underlying === own ? own : `${own}: ${underlying}`)
}

/** `operation` names what the store was doing, e.g. "claim". */
export const toStoreError = (operation: string) => (error: SqlError.SqlError): ProgressStore.StoreError =>
  new ProgressStore.StoreError({
    reason: reasonOf(error),
    message: `${operation} failed: ${detail(error)}`,
    cause: error
  })

/**
 * SQLite refused a lock (SQLITE_BUSY). It does so at once, without waiting out the busy timeout, where waiting could
 * deadlock: e.g. a connection that read a file and now needs it to itself, while another holds its write lock.
 */
export const isSqliteBusy = (error: unknown): boolean =>
  SqlError.isSqlError(error) && sqliteCode(error.reason.cause) === 5

/** Deadlocks and serialization failures: the transaction can simply run again. */
export const isTransient = (error: unknown): boolean =>
  SqlError.isSqlError(error) &&
  (error.reason._tag === "DeadlockError" || error.reason._tag === "SerializationError")
