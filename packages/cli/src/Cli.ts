/**
 * The `crier` command tree and how a run ends: the exit status for every outcome (see `CliFailure.ExitCode`).
 */
import { Effect, Logger, References } from "effect"
import { Command } from "effect/cli"
import { ExitCode, ExitWith } from "./CliFailure.ts"
import { cancel } from "./commands/cancel.ts"
import { demo } from "./commands/demo.ts"
import { list } from "./commands/list.ts"
import { pause } from "./commands/pause.ts"
import { recipients } from "./commands/recipients.ts"
import { resume } from "./commands/resume.ts"
import { send } from "./commands/send.ts"
import { status } from "./commands/status.ts"
import { validate } from "./commands/validate.ts"
import { webhooks } from "./commands/webhooks.ts"
import { worker } from "./commands/worker.ts"
import * as Logging from "./Logging.ts"

export const version = "0.1.0"

export const crier = Command.make("crier").pipe(
  Command.withDescription("Send one WhatsApp template to many recipients, and account for every one of them"),
  Command.withSubcommands([demo, send, status, recipients, pause, resume, cancel, list, webhooks, validate, worker])
)

/**
 * Runs the command line. Parse errors have been printed with the help by then and end with status 2; `--help`
 * ends with 0. Logs go to stderr, warnings and worse unless `--log-level` says otherwise.
 */
export const run = (args: ReadonlyArray<string>) =>
  Command.runWith(crier, { version })(args).pipe(
    Effect.catchTag("ShowHelp", (help) =>
      help.errors.length === 0 ? Effect.void : Effect.fail(new ExitWith({ code: ExitCode.usage }))),
    Effect.provideService(References.MinimumLogLevel, Logging.defaultLevel),
    Effect.provideService(Logger.LogToStderr, true)
  )
