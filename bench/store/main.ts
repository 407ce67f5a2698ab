// bench/store: the durable store's throughput, SQLite and PostgreSQL, on a fresh database per store and size (a temp
// SQLite file; a `crier_bench_<random>` database on the server CRIER_TEST_PG_URL names, dropped afterwards): insert,
// claim + record, and status events, in recipients/s (see workload.ts), with the claim + record rate per 10% slice of
// the run to show whether it stays flat as the table fills with sent rows. Each store first runs a warm-up broadcast
// on a database of its own, so the first size is not measured on cold code. With `--repeat N` each size runs N times
// (each on a fresh database) and reports the run with the median claim + record rate, with every run's rate beside
// it: the machine is shared and noisy, and a 10,000 run lasts half a second.
// Targets: ≥ 20,000 recipients/s through claim + record on each store, and at 1M no more than 20% slower than at 10k.
// Last line is JSON. Usage: node bench/store/main.ts [--sizes 10000,100000,1000000] [--stores sqlite,postgres]
// [--warmup 20000] [--repeat 3]
import { Effect } from "effect"
import { parseArgs } from "node:util"
import * as Databases from "./databases.ts"
import * as Workload from "./workload.ts"

const { values } = parseArgs({
  options: {
    sizes: { type: "string", default: "10000,100000,1000000" },
    stores: { type: "string", default: Databases.kinds.join(",") },
    warmup: { type: "string", default: "20000" },
    repeat: { type: "string", default: "3" }
  }
})
const sizes = values.sizes.split(",").map(Number)
const stores = values.stores.split(",") as ReadonlyArray<Databases.Kind>
const warmup = Number(values.warmup)
const repeat = Number(values.repeat)
if (!Number.isInteger(repeat) || repeat < 1) throw new Error(`bad repeat ${values.repeat}`)
for (const kind of stores) {
  if (!Databases.kinds.includes(kind)) throw new Error(`unknown store ${kind} (${Databases.kinds.join(", ")})`)
}
for (const size of sizes) {
  if (!Number.isInteger(size) || size <= 0) throw new Error(`bad size ${size}`)
}

const targetPerSecond = 20_000
const maxSlowdown = 0.2

const thousands = (n: number) => n.toLocaleString("en-US")
const kilo = (n: number) => Number.isFinite(n) ? `${(n / 1000).toFixed(1)}k` : "-"

interface Result {
  /** The run with the median claim + record rate. */
  readonly median: Workload.Figures
  /** Every run's claim + record rate, in run order. */
  readonly runs: ReadonlyArray<number>
}

const program = Effect.gen(function*() {
  const results: Partial<Record<Databases.Kind, Record<number, Result>>> = {}
  for (const kind of stores) {
    if (warmup > 0) yield* Databases.withFresh(kind, Workload.run(warmup))
    const bySize: Record<number, Result> = {}
    results[kind] = bySize
    for (const size of sizes) {
      const runs: Array<Workload.Figures> = []
      for (let i = 0; i < repeat; i++) runs.push(yield* Databases.withFresh(kind, Workload.run(size)))
      const figures = [...runs].sort((a, b) => a.claimRecordPerSecond - b.claimRecordPerSecond)[(repeat - 1) >> 1]!
      bySize[size] = { median: figures, runs: runs.map((run) => run.claimRecordPerSecond) }
      console.log(
        `${kind.padEnd(8)} ${thousands(size).padStart(9)}: insert ${thousands(figures.insertPerSecond)}/s · ` +
          `claim+record ${thousands(figures.claimRecordPerSecond)}/s (per 1,000: claim ${
            figures.claimMillis.toFixed(1)
          } ms, record ${figures.recordMillis.toFixed(1)} ms) · events ${thousands(figures.eventsPerSecond)}/s`
      )
      console.log(`${" ".repeat(20)}claim+record per 10% slice: ${figures.slices.map(kilo).join(" ")}`)
      if (repeat > 1) {
        console.log(
          `${" ".repeat(20)}claim+record of each run: ${runs.map((run) => kilo(run.claimRecordPerSecond)).join(" ")}`
        )
      }
    }
  }
  return results
})

const results = await Effect.runPromise(program)

const rates = Object.values(results).flatMap((bySize) =>
  Object.values(bySize).map((result) => result.median.claimRecordPerSecond)
)
const slowdown = Object.fromEntries(
  stores.map((kind) => {
    const small = results[kind]?.[10_000]
    const large = results[kind]?.[1_000_000]
    return [
      kind,
      small === undefined || large === undefined
        ? null
        : Number((1 - large.median.claimRecordPerSecond / small.median.claimRecordPerSecond).toFixed(3))
    ]
  })
)
const minimum = rates.length === 0 ? null : Math.min(...rates)
console.log(
  `claim+record: slowest ${minimum === null ? "-" : thousands(minimum)}/s (target ≥ ${thousands(targetPerSecond)}); ` +
    `1M vs 10k: ${
      stores.map((kind) => {
        const s = slowdown[kind]
        return `${kind} ${
          s === null || s === undefined ? "-" : `${Math.abs(s * 100).toFixed(1)}% ${s >= 0 ? "slower" : "faster"}`
        }`
      }).join(", ")
    } (target ≤ ${maxSlowdown * 100}%)`
)
console.log(JSON.stringify({
  ...Object.fromEntries(
    Object.entries(results).map(([kind, bySize]) => [
      kind,
      Object.fromEntries(
        Object.entries(bySize).map(([size, { median, runs }]) => [size, {
          insert_per_s: median.insertPerSecond,
          claim_record_per_s: median.claimRecordPerSecond,
          events_per_s: median.eventsPerSecond,
          claim_record_slices_per_s: median.slices,
          claim_record_runs_per_s: runs
        }])
      )
    ])
  ),
  targets: { claim_record_min_per_s: minimum, slowdown_1m_vs_10k: slowdown }
}))
