// `crier demo` as a person runs it on a fresh machine: no settings at all, the store where the follow-up commands
// find it without flags (./.crier/crier.db of the current folder), the emulator and the webhook server in its process.
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { crier, type Env, eventually, json, start, workspace } from "./fixtures.ts"

const sample = join(import.meta.dirname, "..", "..", "..", "examples", "data", "recipients.csv")

/** The sample's header and its first `rows` rows: a few of them invalid, a few duplicates. */
const slice = (rows: number) => readFileSync(sample, "utf8").split("\n").slice(0, rows + 1).join("\n") + "\n"

// No CRIER_STORE, no provider setting: the demo needs none.
const bare = (dir: string): Env => ({ PATH: process.env.PATH ?? "", HOME: dir, NO_COLOR: "1" })

const number = (text: string) => Number(text.replaceAll(",", ""))

/** A funnel line: `  delivered    272   93.5%`. */
const step = (stdout: string, label: string) => {
  const match = new RegExp(`^  ${label} +([\\d,]+) +([\\d.]+)%$`, "m").exec(stdout)
  assert.isNotNull(match, `no "${label}" line in:\n${stdout}`)
  return number(match![1]!)
}

describe.concurrent("crier demo", () => {
  it.live(
    "sends a slice of the sample through the emulator and prints the funnel, the failures and the commands that work next",
    () =>
      Effect.gen(function*() {
        const ws = workspace()
        const env = bare(ws.dir)
        const run = yield* crier(["demo", "--csv", ws.file("slice.csv", slice(300)), "--rate", "500"], {
          env,
          cwd: ws.dir
        })
        assert.strictEqual(run.status, 0, run.stderr)
        // The import is reported as send reports it.
        assert.include(run.stderr, "slice.csv: 300 rows")
        assert.match(run.stderr, /rejected +7/)
        assert.match(run.stderr, /duplicates +2/)
        assert.match(run.stderr, /line 2, phone_number: "12345" has too few digits/)
        assert.include(run.stderr, `sqlite:${join(ws.dir, ".crier", "crier.db")}`)

        const total = number(/^Funnel of the ([\d,]+) recipients:$/m.exec(run.stdout)?.[1] ?? "NaN")
        assert.strictEqual(total, 291, run.stdout)
        const funnel = {
          sent: step(run.stdout, "sent"),
          delivered: step(run.stdout, "delivered"),
          read: step(run.stdout, "read"),
          replied: step(run.stdout, "replied"),
          failed: step(run.stdout, "failed"),
          inDoubt: step(run.stdout, "in doubt")
        }
        assert.isTrue(
          funnel.sent >= funnel.delivered && funnel.delivered >= funnel.read && funnel.read >= funnel.replied,
          run.stdout
        )
        assert.isAbove(funnel.replied, 0)
        assert.isAbove(funnel.failed, 0)
        assert.strictEqual(funnel.inDoubt, 0)
        // Every message came to an end: sent (and further) or failed.
        assert.strictEqual(funnel.sent + funnel.failed, total, run.stdout)
        assert.match(run.stdout, /^Failures:$/m)
        assert.match(run.stdout, /^ +\d+ × 131026 /m)

        const id = /^  pnpm crier status (bc_[0-9A-Z]{26})$/m.exec(run.stdout)?.[1]
        assert.isDefined(id, run.stdout)
        assert.include(run.stdout, `\n  pnpm crier recipients ${id} --status failed\n`)

        // The printed commands, as printed, in the same folder: no flag needed.
        const status = yield* crier(["status", id!, "--json"], { env, cwd: ws.dir })
        assert.strictEqual(status.status, 0, status.stderr)
        const summary = json(status)
        assert.strictEqual(summary.status, "completed")
        assert.strictEqual(summary.transport, "meta")
        assert.strictEqual(summary.total, total)
        assert.strictEqual(summary.pending + summary.submitting + summary.accepted + summary.in_doubt, 0)
        assert.deepStrictEqual({
          sent: summary.sent + summary.delivered + summary.read + summary.replied,
          delivered: summary.delivered + summary.read + summary.replied,
          read: summary.read + summary.replied,
          replied: summary.replied,
          failed: summary.failed,
          inDoubt: summary.in_doubt
        }, funnel)
        const failed = yield* crier(["recipients", id!, "--status", "failed", "--json"], { env, cwd: ws.dir })
        assert.strictEqual(failed.status, 0, failed.stderr)
        assert.strictEqual(failed.stdout.trim().split("\n").length, funnel.failed)
      }),
    60_000
  )

  it.live("Ctrl-C pauses it like send (exit 130) and says it cannot be resumed", () =>
    Effect.gen(function*() {
      const ws = workspace()
      const env = bare(ws.dir)
      const demo = yield* start(["demo", "--csv", ws.file("slice.csv", slice(300)), "--rate", "20"], {
        env,
        cwd: ws.dir
      })
      yield* eventually(Effect.sync(demo.output), (output) => /sending \d+\/291/.test(output.stderr))
      demo.child.kill("SIGINT")
      const run = yield* demo.exit
      assert.strictEqual(run.status, 130, run.stderr)
      const id = /^(bc_[0-9A-Z]{26})/m.exec(run.stderr)![1]!
      assert.include(run.stderr, `Paused ${id} (interrupted by the user)`)
      assert.include(run.stderr, "cannot be resumed: run crier demo again")
      assert.notInclude(run.stdout, "Funnel")
      const status = yield* crier(["status", id, "--json"], { env, cwd: ws.dir })
      const summary = json(status)
      assert.strictEqual(summary.status, "paused")
      assert.strictEqual(summary.submitting + summary.in_doubt, 0)
      assert.isAbove(summary.pending, 0)
    }), 60_000)

  it.live(
    "exits 2 with one clear line for a file without the sample's columns, or a rate of 0",
    () =>
      Effect.gen(function*() {
        const ws = workspace()
        const env = bare(ws.dir)
        const columns = yield* crier(["demo", "--csv", ws.file("other.csv", "phone_number,name\n+14155550100,Ana\n")], {
          env,
          cwd: ws.dir
        })
        assert.strictEqual(columns.status, 2, columns.stderr)
        assert.match(columns.stderr, /first_name|order_id/)
        const rate = yield* crier(["demo", "--rate", "0"], { env, cwd: ws.dir })
        assert.strictEqual(rate.status, 2, rate.stderr)
        assert.include(rate.stderr, "--rate must be a number of messages per second above 0")
      }),
    30_000
  )
})
