/**
 * The `crier` command tree and how a run ends: the exit status for every outcome.
 */
import { Effect } from "effect"
import { Command } from "effect/cli"
import { ExitCode, ExitWith } from "./CliFailure.ts"
import { validate } from "./commands/validate.ts"

export const version = "0.1.0"

export const crier = Command.make("crier").pipe(
  Command.withDescription("Send one WhatsApp template to many recipients, and account for every one of them"),
  Command.withSubcommands([validate])
)

/**
 * Runs the command line. Parse errors have been printed with the help by then and end with status 2; `--help`
 * ends with 0.
 */
export const run = (args: ReadonlyArray<string>) =>
  Command.runWith(crier, { version })(args).pipe(
    Effect.catchTag("ShowHelp", (help) =>
      help.errors.length === 0 ? Effect.void : Effect.fail(new ExitWith({ code: ExitCode.usage })))
  )
