import { assert, describe, it } from "@effect/vitest"
import { SqlError } from "effect/sql"
import { isTransient, scrub, toStoreError } from "../src/internal/sqlError.ts"

const error = (reason: SqlError.SqlErrorReason) => new SqlError.SqlError({ reason })
const props = (cause: unknown, message = "driver message") => ({ cause, message, operation: "execute" })

describe("toStoreError", () => {
  const map = toStoreError("claim")

  it("maps connection, auth, busy, timeout, deadlock and serialization failures to Unavailable", () => {
    for (
      const reason of [
        new SqlError.ConnectionError(props(new Error("connect ECONNREFUSED 127.0.0.1:5432"))),
        new SqlError.AuthenticationError(props(new Error("password authentication failed"))),
        new SqlError.AuthorizationError(props(new Error("permission denied"))),
        new SqlError.LockTimeoutError(props({ errcode: 5, message: "database is locked" })),
        new SqlError.StatementTimeoutError(props(new Error("canceling statement"))),
        new SqlError.DeadlockError(props(new Error("deadlock detected"))),
        new SqlError.SerializationError(props(new Error("could not serialize")))
      ]
    ) {
      assert.strictEqual(map(error(reason)).reason, "Unavailable", reason._tag)
    }
  })

  it("maps constraint violations to Conflict", () => {
    assert.strictEqual(
      map(error(new SqlError.UniqueViolation({ ...props(new Error("dup")), constraint: "k" }))).reason,
      "Conflict"
    )
    assert.strictEqual(map(error(new SqlError.ConstraintError(props(new Error("not null"))))).reason, "Conflict")
  })

  it("maps a damaged SQLite file or PostgreSQL data to Corrupt", () => {
    for (
      const cause of [{ errcode: 11 }, { errcode: 26 }, { errno: 267 /* SQLITE_CORRUPT_VTAB */ }, { code: "XX001" }, {
        code: "XX002"
      }]
    ) {
      assert.strictEqual(map(error(new SqlError.UnknownError(props(cause)))).reason, "Corrupt", JSON.stringify(cause))
    }
  })

  it("maps a full disk or an I/O error to Unavailable, and anything else to Unknown", () => {
    assert.strictEqual(map(error(new SqlError.UnknownError(props({ errcode: 13 })))).reason, "Unavailable")
    assert.strictEqual(map(error(new SqlError.UnknownError(props({ errcode: 10 | (1 << 8) })))).reason, "Unavailable")
    assert.strictEqual(map(error(new SqlError.SqlSyntaxError(props(new Error("syntax error"))))).reason, "Unknown")
    assert.strictEqual(map(error(new SqlError.UnknownError(props(new Error("?"))))).reason, "Unknown")
  })

  it("names the operation and the driver's and database's messages, keeps the SqlError as the cause", () => {
    const sqlError = error(
      new SqlError.LockTimeoutError(props(new Error("database is locked"), "Failed to execute statement"))
    )
    const storeError = map(sqlError)
    assert.strictEqual(storeError.message, "claim failed: Failed to execute statement: database is locked")
    assert.strictEqual(storeError.cause, sqlError)
  })

  it("never carries a password from a connection string", () => {
    const storeError = map(
      error(new SqlError.ConnectionError(props(new Error("could not reach postgres://crier:hunter2@db:5432/crier"))))
    )
    assert.notInclude(storeError.message, "hunter2")
    assert.include(storeError.message, "postgres://crier:***@db:5432/crier")
  })
})

describe("scrub", () => {
  it("removes the password of every URL and leaves the rest", () => {
    assert.strictEqual(
      scrub("a postgresql://u:p%40ss@h/db and redis://:secret@r:6379, not me@example.com or http://h/x"),
      "a postgresql://u:***@h/db and redis://:***@r:6379, not me@example.com or http://h/x"
    )
  })
})

describe("isTransient", () => {
  it("is true for deadlocks and serialization failures only", () => {
    assert.isTrue(isTransient(error(new SqlError.DeadlockError(props(null)))))
    assert.isTrue(isTransient(error(new SqlError.SerializationError(props(null)))))
    assert.isFalse(isTransient(error(new SqlError.LockTimeoutError(props(null)))))
    assert.isFalse(isTransient(new Error("deadlock")))
  })
})
