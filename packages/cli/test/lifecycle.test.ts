// A broadcast's life across processes: sent by a background worker and followed from another terminal; paused,
// resumed and cancelled from elsewhere; interrupted with Ctrl-C; its worker killed and the broadcast recovered.
import { MetaEmulator } from "@crier/testkit"
import { assert, describe, it } from "@effect/vitest"
import { DateTime, Duration, Effect } from "effect"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import {
  countsAddUp,
  crier,
  csv,
  eventually,
  fastMeta,
  json,
  start,
  statusOf,
  template,
  templateFlags,
  type Workspace,
  workspace
} from "./fixtures.ts"

const metaStack = Effect.fn(function*(options: MetaEmulator.Options = {}) {
  const ws = workspace()
  const emulator = yield* MetaEmulator.make({ templates: [{ spec: template }], timing: fastMeta, ...options })
  const env = ws.env({
    META_ACCESS_TOKEN: emulator.accessToken,
    META_BASE_URL: emulator.graphUrl,
    META_PHONE_NUMBER_ID: MetaEmulator.defaultPhoneNumberId
  })
  const send = (rows: number, ...more: ReadonlyArray<string>) =>
    crier(["send", "--transport", "meta", "--csv", ws.file("r.csv", csv(rows)), ...templateFlags, ...more], {
      env,
      cwd: ws.dir
    })
  return { ws, emulator, env, send }
})

/** Every address the emulator was asked to send to, at most once each. */
const sentOnce = (emulator: MetaEmulator.MetaEmulator) =>
  Effect.map(emulator.messages, (messages) => {
    const addresses = messages.map((message) => message.address)
    assert.strictEqual(new Set(addresses).size, addresses.length, "an address was sent twice")
    return addresses.length
  })

const runFile = (ws: Workspace, id: string) => join(ws.dir, "run", `${id}.json`)

const idOf = (stdout: string) => {
  const id = stdout.trim()
  assert.match(id, /^bc_[0-9A-Z]{26}$/)
  return id
}

describe.concurrent("a broadcast across processes", () => {
  it.live(
    "--detach leaves it to a worker; status --watch follows it to the end; list and recipients show it",
    () =>
      Effect.gen(function*() {
        const { emulator, env, send, ws } = yield* metaStack()
        const sent = yield* send(30, "--rate", "25", "--detach")
        assert.strictEqual(sent.status, 0, sent.stderr)
        const id = idOf(sent.stdout)
        assert.include(sent.stderr, `crier status ${id} --watch`)

        const watched = yield* crier(["status", id, "--watch", "--json"], { env, cwd: ws.dir })
        assert.strictEqual(watched.status, 0, watched.stderr)
        const summary = json(watched)
        assert.strictEqual(summary.status, "completed")
        assert.strictEqual(summary.accepted, 30)
        assert.isTrue(countsAddUp(summary))
        assert.strictEqual(yield* sentOnce(emulator), 30)
        assert.match(watched.stderr, new RegExp(`${id} completed 30/30`))

        const log = readFileSync(join(ws.dir, "logs", `${id}.log`), "utf8")
        assert.include(log, `crier worker`)
        assert.match(log, /: completed/)
        yield* eventually(Effect.sync(() => existsSync(runFile(ws, id))), (exists) => !exists)

        const [listed, table, recipients, lines] = yield* Effect.all([
          crier(["list", "--json"], { env, cwd: ws.dir }),
          crier(["list"], { env, cwd: ws.dir }),
          crier(["recipients", id], { env, cwd: ws.dir }),
          crier(["recipients", id, "--json"], { env, cwd: ws.dir })
        ], { concurrency: "unbounded" })
        assert.deepStrictEqual(JSON.parse(listed.stdout).map((item: { id: string }) => item.id), [id])
        assert.match(table.stdout, /^ID\s+NAME\s+TRANSPORT\s+STATUS\s+TOTAL/)
        assert.match(table.stdout, new RegExp(`${id}\\s+order_update · r.csv\\s+meta\\s+completed\\s+30`))
        assert.match(recipients.stdout, /^\s+SEQ\s+ADDRESS\s+STATUS/)
        assert.strictEqual(recipients.stdout.trim().split("\n").length, 31)
        const rows = lines.stdout.trim().split("\n").map((line) => JSON.parse(line))
        assert.strictEqual(rows.length, 30)
        assert.deepStrictEqual(rows[0].recipient_id, `${id}:1`)
        assert.deepStrictEqual(rows[0].status, { _tag: "accepted" })
      }),
    60_000
  )

  it.live("pause, resume and cancel from other processes", () =>
    Effect.gen(function*() {
      const { emulator, env, send, ws } = yield* metaStack()
      const sent = yield* send(60, "--rate", "3", "--detach", "--json")
      assert.strictEqual(sent.status, 0, sent.stderr)
      const id = json(sent).id
      yield* eventually(sentOnce(emulator), (n) => n >= 2)

      const paused = yield* crier(["pause", id], { env, cwd: ws.dir })
      assert.strictEqual(paused.status, 0, paused.stderr)
      assert.include(paused.stdout, `crier resume ${id}`)
      const atPause = yield* statusOf(ws, id)
      assert.strictEqual(atPause.status, "paused")
      assert.strictEqual(atPause.submitting, 0)
      assert.isAbove(atPause.pending, 0)
      // The worker stops, and nothing more goes out.
      yield* eventually(Effect.sync(() => existsSync(runFile(ws, id))), (exists) => !exists)
      const sentAtPause = yield* sentOnce(emulator)
      yield* Effect.sleep(Duration.millis(700))
      assert.strictEqual(yield* sentOnce(emulator), sentAtPause)
      const again = yield* crier(["pause", id], { env, cwd: ws.dir })
      assert.strictEqual(again.status, 2)
      assert.include(again.stderr, "already paused")

      const resumed = yield* crier(["resume", id, "--detach"], { env, cwd: ws.dir })
      assert.strictEqual(resumed.status, 0, resumed.stderr)
      assert.strictEqual(resumed.stdout.trim(), id)
      yield* eventually(sentOnce(emulator), (n) => n > sentAtPause)

      const cancelled = yield* crier(["cancel", id], { env, cwd: ws.dir })
      assert.strictEqual(cancelled.status, 0, cancelled.stderr)
      assert.match(cancelled.stdout, new RegExp(`Cancelled ${id}: \\d+ of 60 recipients were not sent`))
      yield* eventually(Effect.sync(() => existsSync(runFile(ws, id))), (exists) => !exists)
      const final = yield* statusOf(ws, id)
      assert.strictEqual(final.status, "cancelled")
      assert.isAbove(final.skipped, 0)
      assert.strictEqual(final.pending + final.submitting, 0)
      assert.isTrue(countsAddUp(final))
      assert.strictEqual(yield* sentOnce(emulator), final.accepted + final.failed + final.in_doubt)
      const resumeCancelled = yield* crier(["resume", id], { env, cwd: ws.dir })
      assert.strictEqual(resumeCancelled.status, 2)
      assert.include(resumeCancelled.stderr, "is cancelled: there is nothing to resume")
    }), 60_000)

  it.live(
    "Ctrl-C while following pauses the broadcast (exit 130); resume goes on to the end",
    () =>
      Effect.gen(function*() {
        const { emulator, env, ws } = yield* metaStack()
        const following = yield* start(
          ["send", "--transport", "meta", "--csv", ws.file("r.csv", csv(30)), ...templateFlags, "--rate", "10"],
          { env, cwd: ws.dir }
        )
        yield* eventually(Effect.sync(following.output), (output) => /sending \d+\/30/.test(output.stderr))
        following.child.kill("SIGINT")
        const run = yield* following.exit
        assert.strictEqual(run.status, 130, run.stderr)
        const id = /^(bc_[0-9A-Z]{26})/m.exec(run.stderr)![1]!
        assert.include(run.stderr, `Paused ${id} (interrupted by the user)`)
        assert.include(run.stderr, `crier resume ${id}`)
        const paused = yield* statusOf(ws, id)
        assert.strictEqual(paused.status, "paused")
        assert.strictEqual(paused.submitting, 0)
        assert.isAbove(paused.pending, 0)

        const resumed = yield* crier(["resume", id, "--json"], { env, cwd: ws.dir })
        assert.strictEqual(resumed.status, 0, resumed.stderr)
        const summary = json(resumed)
        assert.strictEqual(summary.status, "completed")
        assert.strictEqual(summary.accepted, 30)
        assert.strictEqual(yield* sentOnce(emulator), 30)
      }),
    60_000
  )

  it.live(
    "a worker killed mid-send: resume recovers its broadcast and sends nothing twice",
    () =>
      Effect.gen(function*() {
        const { emulator, env, send, ws } = yield* metaStack()
        const sent = yield* send(40, "--rate", "10", "--detach")
        const id = idOf(sent.stdout)
        yield* eventually(sentOnce(emulator), (n) => n >= 2)
        const { pid } = JSON.parse(readFileSync(runFile(ws, id), "utf8")) as { pid: number }
        process.kill(pid, "SIGKILL")
        // Still "sending" in the store, with nobody sending it.
        const orphan = yield* statusOf(ws, id)
        assert.strictEqual(orphan.status, "sending")

        const resumed = yield* crier(["resume", id, "--json"], { env, cwd: ws.dir })
        assert.include([0, 1], resumed.status, resumed.stderr)
        const summary = json(resumed)
        assert.strictEqual(summary.status, "completed")
        assert.isTrue(countsAddUp(summary))
        assert.strictEqual(summary.accepted + summary.in_doubt, 40)
        const sends = yield* sentOnce(emulator)
        assert.isAtLeast(sends, summary.accepted)
        assert.isAtMost(sends, 40)
      }),
    60_000
  )

  it.live("--send-at schedules it: the worker waits until then", () =>
    Effect.gen(function*() {
      const { env, send, ws } = yield* metaStack()
      const sendAt = DateTime.addDuration(yield* DateTime.now, Duration.seconds(4))
      const sent = yield* send(5, "--send-at", DateTime.formatIso(sendAt), "--detach", "--json")
      assert.strictEqual(sent.status, 0, sent.stderr)
      const scheduled = json(sent)
      // On a machine slow enough to start the command after that time, the worker sends at once.
      if (yield* DateTime.isPast(DateTime.subtract(sendAt, { seconds: 1 }))) {
        assert.include(["scheduled", "sending", "completed"], scheduled.status)
      } else {
        assert.strictEqual(scheduled.status, "scheduled")
        assert.strictEqual(scheduled.pending, 5)
      }
      const watched = yield* crier(["status", scheduled.id, "--watch", "--json"], { env, cwd: ws.dir })
      assert.strictEqual(watched.status, 0, watched.stderr)
      const summary = json(watched)
      assert.strictEqual(summary.status, "completed")
      assert.isAtLeast(Date.parse(summary.started_at!), DateTime.toEpochMillis(sendAt))
    }), 60_000)
})
