// `crier send` through every transport to the end, and every way it can stop short: rejected rows, the breaker,
// missing settings. Each test runs the real command against an emulator on 127.0.0.1 and its own SQLite store.
import { KapsoEmulator, KeebaiEmulator, MetaEmulator } from "@crier/testkit"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFileSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import { existsSync } from "node:fs"
import { join } from "node:path"
import {
  countsAddUp,
  crier,
  csv,
  fastMeta,
  json,
  phone,
  statusOf,
  summaryKeys,
  template,
  templateFlags,
  workspace
} from "./fixtures.ts"

const send = (transport: string, file: string, ...more: ReadonlyArray<string>) => [
  "send",
  "--transport",
  transport,
  "--csv",
  file,
  ...templateFlags,
  ...more
]

const keebaiSecret = `kbai_pk_${randomBytes(8).toString("hex")}`

describe.concurrent("crier send", () => {
  it.live("memory: sends every row to the end and prints one JSON object; exit 0", () =>
    Effect.gen(function*() {
      const ws = workspace()
      const run = yield* crier(send("memory", ws.file("r.csv", csv(12)), "--rate", "200", "--json"), {
        env: ws.env(),
        cwd: ws.dir
      })
      assert.strictEqual(run.status, 0, run.stderr)
      const summary = json(run)
      assert.deepStrictEqual(Object.keys(summary).sort(), summaryKeys)
      assert.strictEqual(summary.status, "completed")
      assert.strictEqual(summary.transport, "memory")
      assert.strictEqual(summary.total, 12)
      assert.isTrue(countsAddUp(summary))
      assert.strictEqual(summary.pending + summary.submitting + summary.in_doubt, 0)
      assert.isNotNull(summary.started_at)
      assert.isNotNull(summary.completed_at)
      assert.match(summary.id, /^bc_[0-9A-Z]{26}$/)
      // Its statuses live in the process, which waits for them: none is left merely accepted.
      assert.strictEqual(summary.accepted, 0)
      assert.isAbove(summary.delivery_rate, 0)
      assert.include(run.stderr, "12 rows")
    }), 60_000)

  it.live(
    "reports rejected and duplicate rows as validate does, sends the rest, and exits 1",
    () =>
      Effect.gen(function*() {
        const ws = workspace()
        const file = ws.file("r.csv", `${csv(3)}not-a-number,Dee\n${phone(0)},Ana again\n`)
        const run = yield* crier(send("memory", file, "--rate", "200", "--json"), { env: ws.env(), cwd: ws.dir })
        assert.strictEqual(run.status, 1, run.stderr)
        const summary = json(run)
        assert.strictEqual(summary.status, "completed")
        assert.strictEqual(summary.total, 3)
        assert.match(run.stderr, /rejected\s+1/)
        assert.match(run.stderr, /duplicates\s+1/)
        assert.match(run.stderr, /line 5, phone_number: /)
        assert.include(run.stderr, "line 6 repeats the number on line 2")
      }),
    60_000
  )

  it.live("keebai: sends through the bulk API, never prints the token; exit 0", () =>
    Effect.gen(function*() {
      const ws = workspace()
      const emulator = yield* KeebaiEmulator.make({
        tokens: [{ token: keebaiSecret }],
        budgets: [],
        timing: { startAfter: 0, messagesPerSecond: 10_000 }
      })
      const env = ws.env({ KEEBAI_TOKEN: keebaiSecret, KEEBAI_BASE_URL: emulator.url, KEEBAI_CHANNEL_ID: "chan-1" })
      const run = yield* crier(send("keebai", ws.file("r.csv", csv(25)), "--json"), { env, cwd: ws.dir })
      assert.strictEqual(run.status, 0, run.stderr)
      const summary = json(run)
      assert.strictEqual(summary.status, "completed")
      assert.strictEqual(summary.transport, "keebai")
      assert.strictEqual(summary.accepted, 25)
      const [remote] = yield* emulator.broadcasts
      assert.strictEqual(remote?.total, 25)
      assert.strictEqual(remote?.sender, "chan-1")
      assert.notInclude(run.stdout + run.stderr, keebaiSecret)
    }), 60_000)

  it.live("kapso: creates, fills, sends and follows a Kapso broadcast; exit 0", () =>
    Effect.gen(function*() {
      const ws = workspace()
      const emulator = yield* KapsoEmulator.make({
        configs: [{ id: "config-1" }],
        templates: [{ name: template.name, language: template.language, body: template.body }],
        timing: { batchSize: 1000, interval: 0, delivered: 0, read: 0, responded: 0 }
      })
      const env = ws.env({
        KAPSO_API_KEY: emulator.apiKey,
        KAPSO_BASE_URL: emulator.url,
        KAPSO_WHATSAPP_CONFIG_ID: "config-1"
      })
      const run = yield* crier(send("kapso", ws.file("r.csv", csv(10)), "--json"), { env, cwd: ws.dir })
      assert.strictEqual(run.status, 0, run.stderr)
      const summary = json(run)
      assert.strictEqual(summary.status, "completed")
      assert.strictEqual(summary.transport, "kapso")
      assert.strictEqual(summary.total, 10)
      assert.strictEqual(summary.pending + summary.submitting + summary.accepted, 0)
      const [remote] = yield* emulator.broadcasts
      assert.strictEqual(remote?.counts.total, 10)
      assert.notInclude(run.stdout + run.stderr, emulator.apiKey)
    }), 60_000)

  it.live(
    "meta: one request per message; a refused recipient fails alone (exit 1), listed by reason and exported as CSV",
    () =>
      Effect.gen(function*() {
        const ws = workspace()
        const emulator = yield* MetaEmulator.make({
          templates: [{ spec: template }],
          timing: fastMeta,
          outcomes: {
            byAddress: new Map([[phone(3), MetaEmulator.failed(131026, "send")], [
              phone(7),
              MetaEmulator.failed(131026, "send")
            ]])
          }
        })
        const env = ws.env({
          META_ACCESS_TOKEN: emulator.accessToken,
          META_BASE_URL: emulator.graphUrl,
          META_PHONE_NUMBER_ID: MetaEmulator.defaultPhoneNumberId
        })
        const run = yield* crier(send("meta", ws.file("r.csv", csv(10)), "--json"), { env, cwd: ws.dir })
        assert.strictEqual(run.status, 1, run.stderr)
        const summary = json(run)
        assert.strictEqual(summary.status, "completed")
        assert.strictEqual(summary.accepted, 8)
        assert.strictEqual(summary.failed, 2)
        assert.deepStrictEqual(summary.failures.map((failure) => [failure.code, failure.count]), [["131026", 2]])
        assert.strictEqual((yield* emulator.messages).length, 8)
        assert.notInclude(run.stdout + run.stderr, emulator.accessToken)

        const exported = yield* crier(["recipients", summary.id, "--status", "failed", "--format", "csv"], {
          env: ws.env(),
          cwd: ws.dir
        })
        assert.strictEqual(exported.status, 0, exported.stderr)
        const [header, ...rows] = exported.stdout.trim().split("\n")
        assert.match(header!, /^phone_number,first_name,seq,status,status_code,status_reason,/)
        assert.deepStrictEqual(rows.map((row) => row.split(",").slice(0, 6)), [
          [phone(3), "Name 3", "4", "failed", "131026", rows[0]!.split(",")[5]!],
          [phone(7), "Name 7", "8", "failed", "131026", rows[1]!.split(",")[5]!]
        ])
        // The export is a recipient file again: the failed ones can be sent anew.
        const again = yield* crier(
          ["validate", ws.file("failed.csv", exported.stdout), "--template-text", template.bodyText!, "--json"],
          { env: ws.env(), cwd: ws.dir }
        )
        assert.strictEqual(again.status, 0, again.stdout + again.stderr)
        assert.strictEqual(JSON.parse(again.stdout).accepted, 2)
      }),
    60_000
  )

  it.live(
    "the breaker: a paused template pauses the broadcast, prints the reason, exit 3",
    () =>
      Effect.gen(function*() {
        const ws = workspace()
        const emulator = yield* MetaEmulator.make({
          templates: [{ spec: template, status: "PAUSED" }],
          timing: fastMeta
        })
        const env = ws.env({
          META_ACCESS_TOKEN: emulator.accessToken,
          META_BASE_URL: emulator.graphUrl,
          META_PHONE_NUMBER_ID: MetaEmulator.defaultPhoneNumberId
        })
        const run = yield* crier(send("meta", ws.file("r.csv", csv(30)), "--json"), { env, cwd: ws.dir })
        assert.strictEqual(run.status, 3, run.stderr)
        const summary = json(run)
        assert.strictEqual(summary.status, "paused")
        assert.strictEqual(summary.accepted, 0)
        assert.isTrue(countsAddUp(summary))
        assert.match(run.stderr, /Paused: .*132015/)
        assert.include(run.stderr, `crier resume ${summary.id}`)
        // Not every row was tried: the breaker stopped the list.
        assert.isBelow((yield* emulator.requests).length, 30)
      }),
    60_000
  )

  it.live(
    "the breaker: a refused token stops the broadcast with what to fix, and is never printed; exit 3",
    () =>
      Effect.gen(function*() {
        const ws = workspace()
        const emulator = yield* KeebaiEmulator.make({ budgets: [], timing: { startAfter: 0 } })
        const env = ws.env({ KEEBAI_TOKEN: keebaiSecret, KEEBAI_BASE_URL: emulator.url, KEEBAI_CHANNEL_ID: "chan-1" })
        const run = yield* crier(send("keebai", ws.file("r.csv", csv(5))), { env, cwd: ws.dir })
        assert.strictEqual(run.status, 3, run.stderr)
        assert.match(run.stdout, /: paused/)
        assert.match(run.stderr, /Paused: .*KEEBAI_TOKEN/)
        assert.notInclude(run.stdout + run.stderr, keebaiSecret)
      }),
    60_000
  )

  const usage: ReadonlyArray<
    readonly [what: string, args: (file: string) => ReadonlyArray<string>, env: Record<string, string>, message: RegExp]
  > = [
    [
      "a missing Keebai channel",
      (file) => send("keebai", file),
      { KEEBAI_TOKEN: keebaiSecret },
      /KEEBAI_CHANNEL_ID is not set: export KEEBAI_CHANNEL_ID=… \(/
    ],
    [
      "a missing Keebai token",
      (file) => send("keebai", file),
      { KEEBAI_CHANNEL_ID: "chan-1" },
      /KEEBAI_TOKEN is not set: export KEEBAI_TOKEN=… \(your Keebai API token/
    ],
    [
      "a missing Kapso API key",
      (file) => send("kapso", file),
      { KAPSO_WHATSAPP_CONFIG_ID: "c" },
      /KAPSO_API_KEY is not set: export KAPSO_API_KEY=…/
    ],
    [
      "a missing Meta phone number id",
      (file) => send("meta", file),
      { META_ACCESS_TOKEN: keebaiSecret },
      /META_PHONE_NUMBER_ID is not set: export META_PHONE_NUMBER_ID=…/
    ],
    [
      "a store URL crier does not know",
      (file) => send("memory", file, "--store", `mysql://admin:${keebaiSecret}@db/crier`),
      {},
      /the store URL mysql:\/\/admin:\*\*\*@db\/crier is not one crier knows/
    ],
    [
      "--detach with the memory transport",
      (file) => send("memory", file, "--detach"),
      {},
      /--transport memory cannot --detach/
    ],
    [
      "a --send-at in the past",
      (file) => send("memory", file, "--send-at", "2020-01-01T00:00:00Z"),
      {},
      /--send-at 2020-01-01T00:00:00.000Z is in the past/
    ],
    [
      "a --send-at that is not a time",
      (file) => send("memory", file, "--send-at", "tomorrow"),
      {},
      /--send-at tomorrow is not an ISO-8601 time/
    ]
  ]
  for (const [what, args, env, message] of usage) {
    it.live(`exits 2 with one line for ${what}, creating nothing`, () =>
      Effect.gen(function*() {
        const ws = workspace()
        const run = yield* crier(args(ws.file("r.csv", csv(2))), { env: ws.env(env), cwd: ws.dir })
        assert.strictEqual(run.status, 2, run.stdout + run.stderr)
        assert.match(run.stderr, message)
        assert.notMatch(run.stderr, /\n\s+at /, "no stack trace")
        assert.notInclude(run.stdout + run.stderr, keebaiSecret)
        assert.isFalse(existsSync(join(ws.dir, "crier.db")), "no store was created")
      }), 60_000)
  }

  it.live("exits 2 naming the problem of a bad --template-spec file", () =>
    Effect.gen(function*() {
      const ws = workspace()
      const file = ws.file("r.csv", csv(2))
      const cases: ReadonlyArray<readonly [string, RegExp]> = [
        [ws.file("spec.json", "{ not json"), /--template-spec .*spec\.json: is not a JSON object/],
        [
          ws.file("other.json", JSON.stringify({ name: "other", body: { _tag: "positional", count: 1 } })),
          /its name is "other" but --template is order_update/
        ],
        [
          ws.file("bad.json", JSON.stringify({ body: { _tag: "positional", count: -1 } })),
          /--template-spec .*bad\.json: /
        ],
        [join(ws.dir, "gone.json"), /there is no such file/]
      ]
      const runs = yield* Effect.forEach(cases, ([spec]) =>
        crier(
          [
            "send",
            "--transport",
            "memory",
            "--csv",
            file,
            "--template",
            "order_update",
            "--language",
            "en_US",
            "--template-spec",
            spec
          ],
          { env: ws.env(), cwd: ws.dir }
        ), { concurrency: "unbounded" })
      for (const [i, run] of runs.entries()) {
        assert.strictEqual(run.status, 2, run.stderr)
        assert.match(run.stderr, cases[i]![1])
      }
    }), 60_000)

  it.live(
    "a --template-spec file describes the template; name and language come from the flags",
    () =>
      Effect.gen(function*() {
        const ws = workspace()
        const spec = ws.file("spec.json", JSON.stringify({ body: { _tag: "named", keys: ["first_name"] } }))
        const run = yield* crier(
          [
            "send",
            "--transport",
            "memory",
            "--csv",
            ws.file("r.csv", csv(3)),
            "--template",
            "order_update",
            "--language",
            "en_US",
            "--template-spec",
            spec,
            "--json"
          ],
          { env: ws.env(), cwd: ws.dir }
        )
        assert.strictEqual(run.status, 0, run.stderr)
        assert.strictEqual(json(run).total, 3)
      }),
    60_000
  )

  // As the store-sql tests do: the local server, or CRIER_TEST_PG_URL; a database of its own, dropped after.
  const pgServer = process.env.CRIER_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"
  const psql = (sql: string) => execFileSync("psql", [pgServer, "-Atqc", sql], { stdio: "pipe", timeout: 5000 })
  const pgAvailable = (() => {
    try {
      psql("SELECT 1")
      return true
    } catch {
      return false
    }
  })()

  it.live.skipIf(!pgAvailable && !process.env.CI)(
    "--store postgres://… keeps the record in PostgreSQL",
    () =>
      Effect.gen(function*() {
        const ws = workspace()
        const database = `crier_cli_${randomBytes(6).toString("hex")}`
        yield* Effect.acquireRelease(
          Effect.sync(() => psql(`CREATE DATABASE ${database}`)),
          () => Effect.sync(() => psql(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`))
        )
        const url = new URL(pgServer)
        url.pathname = `/${database}`
        const store = url.toString()
        const run = yield* crier(
          send("memory", ws.file("r.csv", csv(5)), "--rate", "200", "--store", store, "--json"),
          {
            env: ws.env(),
            cwd: ws.dir
          }
        )
        assert.strictEqual(run.status, 0, run.stderr)
        const sent = json(run)
        assert.strictEqual(sent.status, "completed")
        const status = yield* statusOf(ws, sent.id, ws.env({ CRIER_STORE: store }))
        assert.strictEqual(status.total, 5)
        assert.strictEqual(status.status, "completed")
      }),
    60_000
  )
})
