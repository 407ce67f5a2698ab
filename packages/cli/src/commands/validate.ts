/**
 * `crier validate FILE …`: import a recipient file exactly as `send` would, and report every row.
 */
import * as CsvImport from "@crier/core/CsvImport"
import { Console, Effect } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { ExitCode, ExitWith, UsageError } from "../CliFailure.ts"
import * as RecipientFile from "../RecipientFile.ts"
import * as TemplateFlags from "../TemplateFlags.ts"

export const validate = Command.make(
  "validate",
  {
    file: Argument.String("file").pipe(Argument.withDescription("The recipient CSV file")),
    ...TemplateFlags.flags,
    ...RecipientFile.flags,
    json: Flag.Boolean("json").pipe(Flag.withDescription("Print one JSON object"), Flag.withDefault(false))
  },
  Effect.fn("crier.validate")(function*(input) {
    const spec = yield* TemplateFlags.toSpec(input)
    const options = yield* RecipientFile.options(input)
    const report = yield* CsvImport.report(input.file, CsvImport.fromFile(input.file, { spec, ...options })).pipe(
      Effect.mapError((error) => new UsageError({ message: error.message }))
    )

    yield* Console.log(input.json ? JSON.stringify(report) : RecipientFile.human(report))
    if (report.rejected + report.duplicates > 0) return yield* new ExitWith({ code: ExitCode.problems })
  })
).pipe(
  Command.withDescription("Check a recipient file against a template without sending anything"),
  Command.withExamples([{
    command: "crier validate recipients.csv --template-text \"Hi {{first_name}}\" --default-region US",
    description: "Check every row of recipients.csv"
  }])
)
