import * as RetryPolicy from "@crier/core/RetryPolicy"
import * as TransportError from "@crier/core/TransportError"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Option, Random } from "effect"

const meta = (code: number, retryAfter?: Duration.Duration) =>
  TransportError.fromMetaError({ code, provider: "meta", operation: "submit", retryAfter })

const at = (attempt: number, maxAttempts = 5): RetryPolicy.Attempt => ({ attempt, maxAttempts })

const millis = (decision: RetryPolicy.Decision): number => {
  assert.strictEqual(decision._tag, "Retry")
  return decision._tag === "Retry" ? Duration.toMillis(decision.delay) : Number.NaN
}

describe("RetryPolicy", () => {
  it("honours retryAfter exactly, whatever the jitter and attempt", () => {
    const error = meta(130429, Duration.seconds(7))
    for (const [attempt, jitter] of [[1, 0], [2, 0.99], [4, 0.5]] as const) {
      assert.strictEqual(millis(RetryPolicy.decideWith(error, at(attempt), jitter)), 7000)
    }
    const notReady = meta(134101)
    assert.strictEqual(millis(RetryPolicy.decideWith(notReady, at(1), 0.3)), 10 * 60 * 1000)
  })

  it("retries a pair rate limit after 4^attempt seconds, without slowing the sender", () => {
    const error = meta(131056)
    assert.deepStrictEqual(
      [1, 2, 3, 4].map((attempt) => millis(RetryPolicy.decideWith(error, at(attempt, 10), 0.7))),
      [4000, 16000, 64000, 256000]
    )
    const decision = RetryPolicy.decideWith(error, at(1), 0)
    assert.isTrue(decision._tag === "Retry" && Option.isNone(decision.slowDown))
  })

  it("backs off exponentially with bounded jitter on transient errors", () => {
    const error = meta(131000)
    const low = [1, 2, 3, 4].map((attempt) => millis(RetryPolicy.decideWith(error, at(attempt, 10), 0)))
    const high = [1, 2, 3, 4].map((attempt) => millis(RetryPolicy.decideWith(error, at(attempt, 10), 0.999)))
    assert.deepStrictEqual(low, [1000, 2000, 4000, 8000])
    // Jitter never makes a step reach the next one's floor: the delays grow whatever the draws.
    for (let i = 0; i < 3; i++) assert.isTrue(high[i]! < low[i + 1]!)
    assert.strictEqual(
      Duration.toMillis(RetryPolicy.backoff(30, 0.5)),
      Duration.toMillis(RetryPolicy.maxDelay)
    )
  })

  it("rounds a fractional retryAfter up to whole milliseconds", () => {
    const error = TransportError.fromMetaError({ code: 130429, provider: "meta", retryAfter: Duration.millis(588.2) })
    assert.strictEqual(millis(RetryPolicy.decideWith(error, at(1), 0)), 589)
  })

  it("backs off in whole milliseconds, which every store can keep", () => {
    for (const jitter of [0.1234567, 0.5, 0.98765]) {
      for (const attempt of [1, 2, 3, 7]) {
        assert.isTrue(Number.isInteger(Duration.toMillis(RetryPolicy.backoff(attempt, jitter))))
      }
    }
  })

  it("never retries a permanent recipient failure", () => {
    for (const code of [131026, 131050, 131049]) {
      const decision = RetryPolicy.decideWith(meta(code), at(1), 0)
      assert.strictEqual(decision._tag, "Fail")
      assert.isTrue(decision._tag === "Fail" && decision.code === String(code))
    }
    const perRow = TransportError.fromMetaError({ code: 132000, provider: "meta", perRecipient: true })
    assert.strictEqual(RetryPolicy.decideWith(perRow, at(1), 0)._tag, "Fail")
  })

  it("fails with the last reason once maxAttempts is reached", () => {
    const error = meta(131000)
    assert.strictEqual(RetryPolicy.decideWith(error, at(2, 3), 0)._tag, "Retry")
    const last = RetryPolicy.decideWith(error, at(3, 3), 0)
    assert.deepStrictEqual(last, { _tag: "Fail", code: "131000", reason: RetryPolicy.describe(error) })
    assert.include(RetryPolicy.describe(error), "ProviderUnavailable")
  })

  it("pauses on broadcast- and account-scope reasons", () => {
    const cases: ReadonlyArray<readonly [number, "broadcast" | "account"]> = [
      [132015, "broadcast"],
      [132016, "broadcast"],
      [131048, "broadcast"],
      [368, "broadcast"],
      [132000, "broadcast"],
      [190, "account"],
      [0, "account"]
    ]
    for (const [code, scope] of cases) {
      const decision = RetryPolicy.decideWith(meta(code), at(1), 0)
      assert.deepStrictEqual(decision._tag === "Pause" ? decision.scope : decision._tag, scope, `code ${code}`)
    }
  })

  it("slows the sender for a sender limit and the whole credential for the others", () => {
    const slow = (code: number) => {
      const decision = RetryPolicy.decideWith(meta(code), at(1), 0)
      return decision._tag === "Retry" ? Option.getOrUndefined(decision.slowDown) : undefined
    }
    assert.strictEqual(slow(130429), "sender")
    assert.strictEqual(slow(4), "transport")
    assert.strictEqual(slow(80007), "transport")
    assert.strictEqual(slow(131000), undefined)
  })

  it.effect("draws its jitter from the Effect Random, so a seed fixes it", () =>
    Effect.gen(function*() {
      const error = meta(131000)
      const draw = RetryPolicy.decide(error, at(2)).pipe(Effect.map(millis))
      const a = yield* Random.withSeed(draw, 42)
      const b = yield* Random.withSeed(draw, 42)
      assert.strictEqual(a, b)
      assert.isTrue(a >= 2000 && a < 3000)
    }))
})
