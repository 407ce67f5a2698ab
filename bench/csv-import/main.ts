// bench/csv-import: import a generated 1,000,000-row recipient file with full validation (E.164 parsing, template
// parameters, dedupe) and report rows/s and peak RSS. Last line is JSON.
// Usage: node bench/csv-import/main.ts [--rows 1000000]
import * as CsvImport from "@crier/core/CsvImport"
import * as TemplateSpec from "@crier/core/TemplateSpec"
import { NodeServices } from "@effect/platform-node"
import { Effect, Result } from "effect"
import { once } from "node:events"
import { createWriteStream, mkdirSync, statSync } from "node:fs"
import { join } from "node:path"
import { parseArgs } from "node:util"
import { generateLines } from "../data/generate-recipients.ts"

const { values } = parseArgs({ options: { rows: { type: "string", default: "1000000" } } })
const rows = Number(values.rows)
const outDir = join(import.meta.dirname, "out")
const file = join(outDir, `recipients-${rows}.csv`)

const writeFile = async () => {
  mkdirSync(outDir, { recursive: true })
  const out = createWriteStream(file)
  let buffer = ""
  for (const line of generateLines({ rows, invalidShare: 0.03, duplicateShare: 0.02 })) {
    buffer += `${line}\n`
    if (buffer.length > 1 << 16) {
      if (!out.write(buffer)) await once(out, "drain")
      buffer = ""
    }
  }
  out.end(buffer)
  await once(out, "finish")
}

if (statSync(file, { throwIfNoEntry: false }) === undefined) {
  console.log(`generating ${file} …`)
  await writeFile()
}
const megabytes = statSync(file).size / 1024 / 1024

const spec = Result.getOrThrow(
  TemplateSpec.fromText("Hi {{first_name}}, your order {{order_id}} ships today.", {
    name: "order_update",
    language: "en"
  })
)
const started = performance.now()
const report = await Effect.runPromise(
  CsvImport.report(file, CsvImport.fromFile(file, { spec, defaultRegion: "US" })).pipe(
    Effect.provide(NodeServices.layer)
  )
)
const seconds = (performance.now() - started) / 1000
const peakRssMb = process.resourceUsage().maxRSS / 1024

console.log(`file          ${file} (${megabytes.toFixed(1)} MB)`)
console.log(
  `rows          ${report.rows} = ${report.accepted} accepted + ${report.rejected} rejected + ${report.duplicates} duplicates + ${report.blank} blank`
)
console.log(`time          ${seconds.toFixed(2)} s`)
console.log(`rows/s        ${Math.round(report.rows / seconds)}`)
console.log(`peak RSS      ${peakRssMb.toFixed(0)} MB`)
console.log(
  JSON.stringify({
    rows: report.rows,
    rows_per_s: Math.round(report.rows / seconds),
    peak_rss_mb: Math.round(peakRssMb)
  })
)
