/**
 * How a command ends with a non-zero exit status. The runner reads `Runtime.errorExitCode`; the CLI renders
 * `CliError.userMessage` as one line, without a stack trace.
 */
import type * as BroadcastStatus from "@crier/core/BroadcastStatus"
import type * as ProgressStore from "@crier/core/ProgressStore"
import { Effect, Schema } from "effect"
import { CliError } from "effect/cli"
import * as Runtime from "effect/Runtime"

export const ExitCode = {
  ok: 0,
  /** Completed, but some rows were rejected or duplicated, or recipients failed (or the broadcast was cancelled). */
  problems: 1,
  /** Usage or configuration error, or an input that cannot be read. */
  usage: 2,
  /** The broadcast is paused: by the breaker (its reason is printed), or by `crier pause`. */
  paused: 3,
  /** Ctrl-C (or SIGTERM): the runtime's own status for an interrupted program. */
  interrupted: 130
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

/** The failures of the store and the engine that a person fixes by changing the command or its settings. */
type Explained =
  | ProgressStore.StoreError
  | ProgressStore.BroadcastNotFound
  | ProgressStore.BroadcastNotEditable
  | BroadcastStatus.InvalidTransition

const explainedTags: ReadonlySet<string> = new Set([
  "StoreError",
  "BroadcastNotFound",
  "BroadcastNotEditable",
  "InvalidTransition"
])

const isExplained = (error: unknown): error is Explained =>
  typeof error === "object" && error !== null && "_tag" in error && explainedTags.has(String(error._tag))

/** Turns those failures into one-line `UsageError`s; every other failure passes through. */
export const explained = <A, E, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, Exclude<E, Explained> | UsageError, R> =>
  Effect.mapError(
    effect,
    (error): Exclude<E, Explained> | UsageError =>
      isExplained(error) ? new UsageError({ message: error.message }) : error as Exclude<E, Explained>
  )
