// Crash safety (issue 4): a broadcast of 3,000 recipients run by a child process over a real store, killed with
// SIGKILL at random points and recovered, again and again; then the store and the provider's journal must agree.
// See crash/worker.ts (the child), crash/scenario.ts (the runs) and crash/check.ts (what must hold, and why).
//
// CRIER_CRASH_SEED=<n> replays the kill plans of a run (the seed is printed with the counts).
import * as Broadcast from "@crier/core/Broadcast"
import * as Recipient from "@crier/core/Recipient"
import * as PostgresStore from "@crier/store-sql/PostgresStore"
import * as SqliteStore from "@crier/store-sql/SqliteStore"
import { PgClient } from "@effect/sql-pg"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll } from "vitest"
import * as Check from "./crash/check.ts"
import * as Journal from "./crash/journal.ts"
import type { Entry } from "./crash/journal.ts"
import * as Protocol from "./crash/protocol.ts"
import * as Scenario from "./crash/scenario.ts"
import * as Postgres from "./fixtures/postgres.ts"

const recipients = 3_000
/** Per policy and store: twice this many kills per store. */
const killsPerPolicy = 16
const policies: ReadonlyArray<Broadcast.InDoubtPolicy> = ["at-most-once", "at-least-once"]

const seed = Number(process.env.CRIER_CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31))

// mulberry32: a small seeded generator, one stream per scenario.
const seeded = (seed: number) => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
}

const dir = mkdtempSync(join(tmpdir(), "crier-crash-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const runPolicies = <E, R>(
  store: string,
  target: (policy: Broadcast.InDoubtPolicy) => Effect.Effect<Scenario.Target, E, R>
) =>
  Effect.gen(function*() {
    const reports: Array<Scenario.Report> = []
    for (const [index, policy] of policies.entries()) {
      reports.push(
        yield* Scenario.run(yield* target(policy), {
          policy,
          recipients,
          kills: killsPerPolicy,
          journal: join(dir, `${store}-${policy}.journal`),
          compileCache: join(dir, "compile-cache"),
          random: seeded(seed + (store === "sqlite" ? 0 : 2) + index)
        })
      )
    }
    console.log(`crash test, seed ${seed}:\n${Scenario.table(reports)}`)
    for (const report of reports) {
      assert.deepStrictEqual(report.violations, [], `${report.store} ${report.policy}`)
      assert.isAtLeast(report.kills, 10)
    }
    assert.isAtLeast(reports.reduce((sum, report) => sum + report.kills, 0), 30)
  })

describe("crash safety under kill -9", () => {
  it.live(
    `SQLite: killed ${2 * killsPerPolicy} times and recovered, nothing recorded is resent and nothing sent is lost`,
    () =>
      runPolicies("sqlite", (policy) =>
        Effect.sync(() => {
          const filename = join(dir, `sqlite-${policy}`, "crier.db")
          return {
            name: "SQLite",
            spec: `sqlite:${filename}`,
            store: SqliteStore.layer({ filename }),
            sql: SqliteClient.layer({ filename })
          }
        })),
    180_000
  )

  if (Postgres.available) {
    it.live(
      `PostgreSQL: killed ${
        2 * killsPerPolicy
      } times and recovered, nothing recorded is resent and nothing sent is lost`,
      () =>
        Effect.scoped(
          runPolicies("postgres", () =>
            Effect.map(Postgres.freshDatabase, (name) => {
              const url = Postgres.urlOf(name)
              return {
                name: "PostgreSQL",
                spec: Redacted.value(url),
                store: PostgresStore.layer({ url }),
                sql: PgClient.layer({ url })
              }
            }))
        ),
      180_000
    )
  } else {
    // CI must run these: there a missing server is a failure, not a skip.
    it.skipIf(!process.env.CI)(`PostgreSQL: skipped: ${Postgres.unavailableMessage} (set CRIER_TEST_PG_URL)`, () => {
      throw new Error(`${Postgres.unavailableMessage}; CI must run the PostgreSQL crash test`)
    })
  }
})

// The checks themselves, on made-up rows and journals: each violation they exist for is caught.
describe("crash checks", () => {
  const broadcastId = "bc_01KA0000000000000000000000"
  const total = 45
  type RowPatch = Partial<Check.Row>
  const row = (seq: number, patch: RowPatch = {}): Check.Row => ({
    seq,
    status: Protocol.refused(seq) ? "failed" : "accepted",
    providerMessageId: Protocol.refused(seq) ? null : Protocol.messageId(1, seq),
    hasAcceptedAt: !Protocol.refused(seq),
    attempts: 1,
    failureCode: Protocol.refused(seq) ? String(Protocol.refusedCode) : null,
    ...patch
  })
  const entry = (seq: number, run: number, line: number): Entry => ({
    seq,
    run,
    messageId: Protocol.messageId(run, seq),
    line
  })
  /** Every recipient accepted in run 1 (of 1 kill + the final run 2), but the refused one. */
  const clean = () => {
    const rows = Array.from({ length: total }, (_, i) => row(i + 1))
    const journal = rows.filter((r) => !Protocol.refused(r.seq)).map((r, i) => entry(r.seq, 1, i + 1))
    return { rows, journal }
  }
  const analyze = (
    policy: Broadcast.InDoubtPolicy,
    rows: ReadonlyArray<Check.Row>,
    journal: ReadonlyArray<Entry>
  ) => Check.analyze({ policy, total, rows, journal, kills: 1 })

  it("a clean at-most-once run: sent-unrecorded and claimed-unsent rows in doubt, the refused one failed", () => {
    const { journal, rows } = clean()
    rows[4] = row(5, { status: "in_doubt", providerMessageId: null, hasAcceptedAt: false })
    rows[5] = row(6, { status: "in_doubt", providerMessageId: null, hasAcceptedAt: false })
    const findings = analyze("at-most-once", rows, journal.filter((e) => e.seq !== 6))
    assert.deepStrictEqual(findings.violations, [])
    assert.deepStrictEqual(
      [findings.accepted, findings.failed, findings.inDoubt, findings.inDoubtSent, findings.inDoubtUnsent],
      [total - 3, 1, 2, 1, 1]
    )
  })

  it("a failure the provider never gave, a refused recipient journaled, a wrong failure code", () => {
    const { journal, rows } = clean()
    rows[1] = row(2, { status: "failed", providerMessageId: null, hasAcceptedAt: false, failureCode: "131026" })
    rows[40] = row(41, { failureCode: "500" })
    const violations = analyze("at-most-once", rows, [...journal, entry(41, 1, 99)]).violations.join("\n")
    assert.include(violations, "recipient 2 failed but the provider never refused it")
    assert.include(violations, "refused recipient 41 was journaled")
    assert.include(violations, "recipient 41 failed with code 500")
  })

  it("a recipient journaled again after its acceptance was recorded", () => {
    const { journal, rows } = clean()
    const again = [...journal, entry(7, 2, journal.length + 1)]
    for (const policy of policies) {
      assert.isTrue(
        analyze(policy, rows, again).violations.some((v) => v.startsWith("recipient 7 recorded accepted as m1.7")),
        policy
      )
    }
    assert.include(analyze("at-most-once", rows, again).violations.join("\n"), "journaled 2 times under at-most-once")
  })

  it("a journaled recipient left pending, recorded without a journal line, or handed over twice in one run", () => {
    const { journal, rows } = clean()
    rows[2] = row(3, { status: "pending", providerMessageId: null, hasAcceptedAt: false })
    const violations = analyze("at-least-once", rows, [...journal.filter((e) => e.seq !== 9), entry(4, 1, 99)])
      .violations.join("\n")
    assert.include(violations, "recipient 3 is pending, not settled")
    assert.include(violations, "recipient 9 recorded accepted, never journaled")
    assert.include(violations, "recipient 4 handed over twice in run 1")
  })

  it("at-least-once: resent rows are fine, in_doubt rows and unrecorded lines of the finished run are not", () => {
    const { journal, rows } = clean()
    rows[9] = row(10, { providerMessageId: Protocol.messageId(2, 10), attempts: 2 })
    const resent = [...journal, entry(10, 2, journal.length + 1)]
    const fine = analyze("at-least-once", rows, resent)
    assert.deepStrictEqual(fine.violations, [])
    assert.deepStrictEqual([fine.duplicates, fine.maxPerRecipient, fine.maxUnrecordedPerKill], [1, 2, 1])
    rows[10] = row(11, { status: "in_doubt", providerMessageId: null, hasAcceptedAt: false })
    const bad = analyze("at-least-once", rows, [...resent, entry(12, 2, 200)]).violations.join("\n")
    assert.include(bad, "recipient 11 left in_doubt under at-least-once")
    assert.include(bad, "the run that finished left 1 journaled messages unrecorded")
    assert.include(bad, "recipient 12 journaled 2 times but claimed 1")
  })

  it("more journaled messages unrecorded by one kill than one claim holds", () => {
    const { journal, rows } = clean()
    const sent = new Set(journal.map((e) => e.seq))
    const many = rows.map((r) =>
      sent.has(r.seq) ? row(r.seq, { status: "in_doubt", providerMessageId: null, hasAcceptedAt: false }) : r
    )
    assert.isAbove(sent.size, Protocol.claimSize)
    assert.include(
      analyze("at-most-once", many, journal).violations.join("\n"),
      `killed run 1 left ${sent.size} journaled messages unrecorded`
    )
    assert.include(
      analyze("at-most-once", many, journal).violations.join("\n"),
      `${sent.size} rows in_doubt after 1 kills of at most ${Protocol.claimSize} in flight each`
    )
  })

  it("the journal: a torn last line is cut off, a line of another broadcast or a bad id is refused", () => {
    const path = join(dir, "checks.journal")
    const id = Broadcast.BroadcastId.make(broadcastId)
    const line = (seq: number, run: number) =>
      Protocol.journalLine(Recipient.recipientId(id, seq), Protocol.messageId(run, seq))
    writeFileSync(path, `${line(1, 1)}${line(2, 1)}${line(3, 1).slice(0, 20)}`)
    assert.isTrue(Journal.repair(path))
    assert.strictEqual(readFileSync(path, "utf8"), `${line(1, 1)}${line(2, 1)}`)
    assert.isFalse(Journal.repair(path))
    assert.deepStrictEqual(Journal.read(path, id), [entry(1, 1, 1), entry(2, 1, 2)])
    writeFileSync(path, `${line(1, 1)}${Recipient.recipientId(id, 2)} ${Protocol.messageId(1, 3)}\n`)
    assert.throws(() => Journal.read(path, id), /checks.journal:2/)
    writeFileSync(path, line(1, 1))
    assert.throws(() => Journal.read(path, "bc_01KA0000000000000000000001"), /checks.journal:1/)
  })
})
