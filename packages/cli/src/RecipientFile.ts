/**
 * A recipient CSV file as the commands read it: the flags that say how (`--default-region`, `--delimiter`), and
 * the report of its rows — counts, and the first rejections by line — shared by `validate` and `send`.
 */
import * as Address from "@crier/core/Address"
import type * as Broadcaster from "@crier/core/Broadcaster"
import * as CsvImport from "@crier/core/CsvImport"
import type * as TemplateSpec from "@crier/core/TemplateSpec"
import { Effect, Option, Stream } from "effect"
import { Flag } from "effect/cli"
import { UsageError } from "./CliFailure.ts"

const delimiters = { auto: "auto", comma: ",", semicolon: ";", tab: "\t" } as const

export const flags = {
  defaultRegion: Flag.String("default-region").pipe(
    Flag.withDescription("Country for numbers written without a country code, e.g. US"),
    Flag.optional
  ),
  delimiter: Flag.Literals("delimiter", ["auto", "comma", "semicolon", "tab"]).pipe(
    Flag.withDescription("Field delimiter; auto detects it from the header line"),
    Flag.withDefault("auto")
  )
} as const

export interface Input {
  readonly defaultRegion: Option.Option<string>
  readonly delimiter: keyof typeof delimiters
}

export interface Options {
  readonly defaultRegion: string | undefined
  readonly delimiter: CsvImport.Delimiter | "auto"
}

export const options = (input: Input): Effect.Effect<Options, UsageError> => {
  const defaultRegion = Option.getOrUndefined(input.defaultRegion)?.toUpperCase()
  return defaultRegion !== undefined && !Address.isRegion(defaultRegion)
    ? Effect.fail(
      new UsageError({ message: `--default-region ${defaultRegion} is not a known country code (try US, BR, GB)` })
    )
    : Effect.succeed({ defaultRegion, delimiter: delimiters[input.delimiter] })
}

/** The file's header, checked against the template before anything is created. */
export const checkHeader = (file: string, spec: TemplateSpec.TemplateSpec, options: Options) =>
  CsvImport.fromFile(file, { spec, ...options }).pipe(
    Stream.take(1),
    Stream.runDrain,
    Effect.mapError((error) => new UsageError({ message: error.message }))
  )

/** How many rejections the human report shows; `--json` lists every one. */
const shownRejections = 20

/** What the engine's import of a file came to, as `validate` reports a file (the engine keeps the first issues). */
export const fromAddReport = (file: string, report: Broadcaster.AddReport): CsvImport.Report => ({
  file,
  rows: report.added + report.rejected + report.duplicates + report.blank,
  accepted: report.added,
  rejected: report.rejected,
  duplicates: report.duplicates,
  blank: report.blank,
  errors: report.issues.flatMap((issue) =>
    issue._tag === "Rejected"
      ? [{ line: issue.line ?? 0, column: issue.column ?? "", reason: issue.reason }]
      : []
  ),
  duplicateRows: report.issues.flatMap((issue) =>
    issue._tag === "Duplicate" && issue.line !== undefined && issue.firstLine !== undefined
      ? [{ line: issue.line, firstLine: issue.firstLine }]
      : []
  )
})

export const count = (n: number) => n.toLocaleString("en-US")

export const human = (report: CsvImport.Report): string => {
  const width = count(report.rows).length
  const line = (label: string, n: number) => `  ${label.padEnd(11)}${count(n).padStart(width)}`
  const lines = [
    `${report.file}: ${count(report.rows)} rows`,
    line("accepted", report.accepted),
    line("rejected", report.rejected),
    line("duplicates", report.duplicates),
    line("blank", report.blank)
  ]
  if (report.errors.length > 0) {
    lines.push("", report.rejected > shownRejections ? `First ${shownRejections} rejections:` : "Rejections:")
    for (const error of report.errors.slice(0, shownRejections)) {
      lines.push(`  line ${error.line}, ${error.column}: ${error.reason}`)
    }
    if (report.rejected > shownRejections) {
      lines.push(`  … ${count(report.rejected - shownRejections)} more; crier validate --json lists every one`)
    }
  }
  if (report.duplicateRows.length > 0) {
    const first = report.duplicateRows[0]!
    lines.push("", `Duplicates are sent once: e.g. line ${first.line} repeats the number on line ${first.firstLine}.`)
  }
  return lines.join("\n")
}
