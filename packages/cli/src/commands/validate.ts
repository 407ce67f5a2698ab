/**
 * `crier validate FILE …`: import a recipient file exactly as `send` would, and report every row.
 */
import * as Address from "@crier/core/Address"
import * as CsvImport from "@crier/core/CsvImport"
import { Console, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { ExitCode, ExitWith, UsageError } from "../CliFailure.ts"
import * as TemplateFlags from "../TemplateFlags.ts"

const delimiters = { auto: "auto", comma: ",", semicolon: ";", tab: "\t" } as const

/** How many rejections the human report shows; `--json` lists every one. */
const shownRejections = 20

export const validate = Command.make(
  "validate",
  {
    file: Argument.String("file").pipe(Argument.withDescription("The recipient CSV file")),
    ...TemplateFlags.flags,
    defaultRegion: Flag.String("default-region").pipe(
      Flag.withDescription("Country for numbers written without a country code, e.g. US"),
      Flag.optional
    ),
    delimiter: Flag.Literals("delimiter", ["auto", "comma", "semicolon", "tab"]).pipe(
      Flag.withDescription("Field delimiter; auto detects it from the header line"),
      Flag.withDefault("auto")
    ),
    json: Flag.Boolean("json").pipe(Flag.withDescription("Print one JSON object"), Flag.withDefault(false))
  },
  Effect.fn("crier.validate")(function*(input) {
    const spec = yield* TemplateFlags.toSpec(input)
    const defaultRegion = Option.getOrUndefined(input.defaultRegion)?.toUpperCase()
    if (defaultRegion !== undefined && !Address.isRegion(defaultRegion)) {
      return yield* new UsageError({ message: `--default-region ${defaultRegion} is not a known country code (try US, BR, GB)` })
    }
    const report = yield* CsvImport.report(
      input.file,
      CsvImport.fromFile(input.file, { spec, defaultRegion, delimiter: delimiters[input.delimiter] })
    ).pipe(Effect.mapError((error) => new UsageError({ message: error.message })))

    yield* Console.log(input.json ? JSON.stringify(report) : humanReport(report))
    if (report.rejected + report.duplicates > 0) return yield* new ExitWith({ code: ExitCode.problems })
  })
).pipe(
  Command.withDescription("Check a recipient file against a template without sending anything"),
  Command.withExamples([{
    command: "crier validate recipients.csv --template-text \"Hi {{first_name}}\" --default-region US",
    description: "Check every row of recipients.csv"
  }])
)

const count = (n: number) => n.toLocaleString("en-US")

const humanReport = (report: CsvImport.Report): string => {
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
    lines.push("", report.errors.length > shownRejections ? `First ${shownRejections} rejections:` : "Rejections:")
    for (const error of report.errors.slice(0, shownRejections)) {
      lines.push(`  line ${error.line}, ${error.column}: ${error.reason}`)
    }
    if (report.errors.length > shownRejections) {
      lines.push(`  … ${count(report.errors.length - shownRejections)} more; --json lists every one`)
    }
  }
  if (report.duplicateRows.length > 0) {
    const first = report.duplicateRows[0]!
    lines.push("", `Duplicates are sent once: e.g. line ${first.line} repeats the number on line ${first.firstLine}.`)
  }
  return lines.join("\n")
}
