/**
 * How the send loop answers a failed hand-off, by the `TransportError`'s reason: retry the recipient later, fail it
 * for good, or pause the broadcast (the breaker).
 *
 * | reason                                        | decision                                                      |
 * |-----------------------------------------------|---------------------------------------------------------------|
 * | scope `broadcast` or `account`                | `Pause`: template paused, spam limit, bad token, … — a human   |
 * |                                               | fixes the cause and resumes; nothing is burnt through          |
 * | `PairRateLimited` (Meta 131056)               | `Retry` that recipient only, after 4^attempt seconds           |
 * | `retryAfter` given (429, 130429, 134101, 503) | `Retry` after exactly `retryAfter`                             |
 * | other retryable (5xx, timeout, network, 4/80007) | `Retry` after an exponential backoff with jitter            |
 * | not retryable, scope `message` (131026, …)    | `Fail` the recipient: never retried                            |
 * | retryable, but `maxAttempts` reached          | `Fail` the recipient with that last reason                     |
 *
 * A `RateLimited` answer also asks the pacer to slow down: the sender's throughput for a sender limit, every sender
 * of the credential for the others.
 *
 * Retries are durable (the store keeps `notBefore`), so the delay is computed here rather than by a `Schedule`
 * held in memory: a restarted process honours the same backoff.
 */
import { Duration, Effect, Option, Random } from "effect"
import type * as TransportError from "./TransportError.ts"

/** Whose hand-offs a rate limit holds back: the sender's throughput, or everything on the credential. */
export type SlowDown = "sender" | "transport"

export type Decision =
  | {
    readonly _tag: "Retry"
    readonly delay: Duration.Duration
    /** The reason, kept on the row while it waits. */
    readonly error: string
    readonly slowDown: Option.Option<SlowDown>
  }
  | { readonly _tag: "Fail"; readonly code: string | undefined; readonly reason: string }
  | { readonly _tag: "Pause"; readonly scope: "broadcast" | "account"; readonly reason: string }

export interface Attempt {
  /** Submissions of this recipient so far, this one included (1 on the first try). */
  readonly attempt: number
  readonly maxAttempts: number
}

/** First backoff step; each further attempt doubles it. */
export const baseDelay = Duration.seconds(1)
/** No backoff step waits longer than this. */
export const maxDelay = Duration.minutes(5)
/** Jitter adds up to this share of the step, so a step never overlaps the next one (factor 2 > 1 + 0.5). */
export const jitterShare = 0.5

/** The exponential step for an attempt, `jitter` in [0, 1), in whole milliseconds (stores keep instants as integers). */
export const backoff = (attempt: number, jitter: number): Duration.Duration =>
  Duration.min(
    Duration.millis(
      Math.round(Duration.toMillis(baseDelay) * 2 ** (Math.max(1, attempt) - 1) * (1 + jitterShare * jitter))
    ),
    maxDelay
  )

/** Meta's pair rate limit: the same recipient again after 4^attempt seconds. */
export const pairBackoff = (attempt: number): Duration.Duration => Duration.seconds(4 ** Math.max(1, attempt))

/** What a failed row records as its reason: the reason's tag and the provider's message. */
export const describe = (error: TransportError.TransportError): string =>
  `${error.reason._tag}: ${error.reason.message}`

const codeOf = (error: TransportError.TransportError): string | undefined =>
  error.reason.code === undefined ? undefined : String(error.reason.code)

/** The decision for one error, with the jitter given: pure, so a test can pin every branch. */
export const decideWith = (error: TransportError.TransportError, attempt: Attempt, jitter: number): Decision => {
  const scope = error.scope
  if (scope !== "message") return { _tag: "Pause", scope, reason: error.message }
  if (!error.isRetryable || attempt.attempt >= attempt.maxAttempts) {
    return { _tag: "Fail", code: codeOf(error), reason: describe(error) }
  }
  const reason = error.reason
  // Rounded up to whole milliseconds: the instant is stored, and a provider's retryAfter may be fractional.
  const delay = Duration.millis(Math.ceil(Duration.toMillis(
    reason._tag === "PairRateLimited"
      ? pairBackoff(attempt.attempt)
      : Option.getOrElse(error.retryAfter, () => backoff(attempt.attempt, jitter))
  )))
  const slowDown: Option.Option<SlowDown> = reason._tag === "RateLimited"
    ? Option.some(reason.limit === "sender" ? "sender" : "transport")
    : Option.none()
  return { _tag: "Retry", delay, error: describe(error), slowDown }
}

/** The decision for one error, its jitter drawn from the Effect `Random` (seeded in tests). */
export const decide = Effect.fn("RetryPolicy.decide")(
  function*(error: TransportError.TransportError, attempt: Attempt) {
    return decideWith(error, attempt, yield* Random.next)
  }
)
