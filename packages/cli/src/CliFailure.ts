/**
 * How a command ends with a non-zero exit status. The runner reads `Runtime.errorExitCode`; the CLI renders
 * `CliError.userMessage` as one line, without a stack trace.
 */
import { Schema } from "effect"
import { CliError } from "effect/cli"
import * as Runtime from "effect/Runtime"

export const ExitCode = {
  ok: 0,
  /** Completed, but some rows were rejected or duplicated (or recipients failed). */
  problems: 1,
  /** Usage or configuration error, or an input that cannot be read. */
  usage: 2
} as const

/** A usage or input error: one line for the person at the keyboard, exit status 2. */
export class UsageError extends Schema.TaggedError<UsageError>()("UsageError", {
  message: Schema.String
}) {
  override readonly [Runtime.errorExitCode] = ExitCode.usage
  override get [CliError.userMessage]() {
    return this.message
  }
}

/** The command already printed its result; only the exit status is left to set. */
export class ExitWith extends Schema.TaggedError<ExitWith>()("ExitWith", {
  code: Schema.Int
}) {
  override get [Runtime.errorExitCode]() {
    return this.code
  }
  override readonly [Runtime.errorReported] = false
}
