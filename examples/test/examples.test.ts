/**
 * Every example runs as a user would run it: `node examples/<name>.ts`, in its own process (the Node that runs the
 * tests). Each must exit 0 and print the lines that show it did its job, with every recipient accounted for.
 */
import { NodeServices } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { ChildProcess, ChildProcessSpawner } from "effect/process"
import { join } from "node:path"

const examples = join(import.meta.dirname, "..")

const text = <E>(stream: Stream.Stream<Uint8Array, E>) => stream.pipe(Stream.decodeText(), Stream.mkString)

const run = (file: string) =>
  Effect.gen(function*() {
    const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
    const child = yield* spawner.spawn(ChildProcess.make(process.execPath, [join(examples, file)], { cwd: examples }))
    const [stdout, stderr, exitCode] = yield* Effect.all([text(child.stdout), text(child.stderr), child.exitCode], {
      concurrency: "unbounded"
    })
    return { stdout, stderr, exitCode: Number(exitCode) }
  }).pipe(Effect.scoped, Effect.provide(NodeServices.layer))

// The 200-row sample of examples/data/recipients.csv: 5 unusable numbers, 2 repeats.
const imported = "imported: 193 added, 5 rejected, 2 duplicates"

/**
 * Each "<transport>: broadcast completed, N recipients" summary: its statuses add up to N, nothing is left pending
 * or in doubt, and (where the example waits for the provider's last status) nothing is accepted without an outcome.
 */
const settled = (stdout: string, transports: ReadonlyArray<string>, waitsForStatuses = true) => {
  const summaries = [...stdout.matchAll(/^(\w+): broadcast completed, (\d+) recipients\n {2}statuses {2}(.*)$/gm)]
  assert.deepStrictEqual(summaries.map((summary) => summary[1]), [...transports], stdout)
  for (const [, transport, total, statuses] of summaries) {
    const counts: Record<string, number> = {}
    for (const entry of statuses!.split(" · ")) {
      const [status, n] = entry.split(" ")
      counts[status!] = Number(n)
    }
    const sum = Object.values(counts).reduce((a, b) => a + b, 0)
    assert.strictEqual(sum, Number(total), `${transport}: ${statuses}`)
    assert.deepStrictEqual([counts["pending"], counts["in_doubt"]], [0, 0], `${transport}: ${statuses}`)
    if (waitsForStatuses) assert.strictEqual(counts["accepted"], 0, `${transport}: ${statuses}`)
    assert.isAbove(counts["delivered"]!, 0, `${transport}: ${statuses}`)
  }
}

const expectSuccess = (file: string, check: (stdout: string) => void) =>
  Effect.gen(function*() {
    const { exitCode, stderr, stdout } = yield* run(file)
    assert.strictEqual(exitCode, 0, `${file} exited ${exitCode}\n${stdout}\n${stderr}`)
    check(stdout)
  })

describe.concurrent("examples", () => {
  it.live("quick-start: the memory layers, from CSV to the final funnel", () =>
    expectSuccess("quick-start.ts", (stdout) => {
      assert.include(stdout, imported)
      assert.match(stdout, /^sending: \d+\/193 handed over/m)
      // It gives the statuses a second rather than waiting for the last one: a busy machine may leave some behind.
      settled(stdout, ["memory"], false)
    }))

  it.live("kapso-broadcasts: one draft, one add, one send, polled to the end", () =>
    expectSuccess("kapso-broadcasts.ts", (stdout) => {
      assert.include(stdout, imported)
      assert.match(stdout, /^Kapso broadcast \S+ completed$/m)
      assert.match(stdout, /^Kapso API calls: 1 create, 1 add, 1 send, \d+ status polls/m)
      settled(stdout, ["kapso"])
    }))

  it.live("keebai-bulk: one bulk call, statuses by signed webhooks", () =>
    expectSuccess("keebai-bulk.ts", (stdout) => {
      assert.include(stdout, imported)
      assert.include(stdout, "Keebai calls: bk_000001 (193)")
      assert.match(stdout, /^webhooks: \d+ delivered, \d+ applied, \d+ duplicates ignored$/m)
      settled(stdout, ["keebai"])
    }))

  it.live("meta-direct: one request per recipient to the Graph API, statuses and replies by webhook", () =>
    expectSuccess("meta-direct.ts", (stdout) => {
      assert.include(stdout, imported)
      assert.match(stdout, /^Meta API: \d+ requests through graph, refused: .*131050/m)
      assert.match(stdout, /^replies: [1-9]\d*, [1-9]\d* attributed to the broadcast they answer$/m)
      assert.match(stdout, /^ {2}\+\d+: "Yes please, where is it\?" answers "Order update" \(order_update, sent /m)
      settled(stdout, ["meta"])
    }))

  it.live("meta-kapso-proxy: the same transport through Kapso's proxy", () =>
    expectSuccess("meta-kapso-proxy.ts", (stdout) => {
      assert.include(stdout, imported)
      assert.match(stdout, /^Meta API: \d+ requests through kapso, refused/m)
      settled(stdout, ["meta"])
    }))

  it.live("provider-migration: one campaign through three transports, the same totals", () =>
    expectSuccess("provider-migration.ts", (stdout) => {
      assert.include(stdout, imported)
      assert.match(stdout, /^total +193 +193 +193$/m)
      assert.include(stdout, "all 3 transports accounted for the same 193 recipients")
      settled(stdout, ["kapso", "keebai", "meta"])
    }))
})
