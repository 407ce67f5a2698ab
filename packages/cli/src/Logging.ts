/**
 * Logs go to stderr, so stdout keeps a command's result. Commands show errors only (what a warning would say, such as
 * a pause and its reason, they print themselves); the webhook server and
 * background workers, whose output is a log, show info too. `--log-level` overrides both.
 */
import { Effect, type LogLevel, Option, References } from "effect"
import { GlobalFlag } from "effect/cli"

export const defaultLevel: LogLevel.LogLevel = "Error"

/** Runs `effect` logging at `level` and above, unless `--log-level` was given. */
export const atLeast = (level: LogLevel.LogLevel) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(
    GlobalFlag.LogLevel,
    (flag) => Option.isSome(flag) ? effect : Effect.provideService(effect, References.MinimumLogLevel, level)
  )
