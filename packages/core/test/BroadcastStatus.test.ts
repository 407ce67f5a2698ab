import * as BroadcastStatus from "@crier/core/BroadcastStatus"
import { assert, describe, it } from "@effect/vitest"
import { Result, Schema } from "effect"

const statuses = BroadcastStatus.BroadcastStatus.literals

// Every one of the 49 pairs, written out: "ok" or the refusal's reason.
const expected: Record<
  BroadcastStatus.BroadcastStatus,
  Record<BroadcastStatus.BroadcastStatus, "ok" | BroadcastStatus.InvalidTransitionReason>
> = {
  draft: {
    draft: "Unchanged",
    scheduled: "ok",
    sending: "ok",
    paused: "NotSending",
    completed: "NotSending",
    failed: "NotSending",
    cancelled: "ok"
  },
  scheduled: {
    draft: "ok",
    scheduled: "Unchanged",
    sending: "ok",
    paused: "NotSending",
    completed: "NotSending",
    failed: "NotSending",
    cancelled: "ok"
  },
  sending: {
    draft: "AlreadyStarted",
    scheduled: "AlreadyStarted",
    sending: "Unchanged",
    paused: "ok",
    completed: "ok",
    failed: "ok",
    cancelled: "ok"
  },
  paused: {
    draft: "AlreadyStarted",
    scheduled: "AlreadyStarted",
    sending: "ok",
    paused: "Unchanged",
    completed: "NotSending",
    failed: "NotSending",
    cancelled: "ok"
  },
  completed: {
    draft: "Terminal",
    scheduled: "Terminal",
    sending: "Terminal",
    paused: "Terminal",
    completed: "Unchanged",
    failed: "Terminal",
    cancelled: "Terminal"
  },
  failed: {
    draft: "Terminal",
    scheduled: "Terminal",
    sending: "Terminal",
    paused: "Terminal",
    completed: "Terminal",
    failed: "Unchanged",
    cancelled: "Terminal"
  },
  cancelled: {
    draft: "Terminal",
    scheduled: "Terminal",
    sending: "Terminal",
    paused: "Terminal",
    completed: "Terminal",
    failed: "Terminal",
    cancelled: "Unchanged"
  }
}

describe("BroadcastStatus", () => {
  it("has the seven statuses and rejects anything else", () => {
    assert.deepStrictEqual(statuses, ["draft", "scheduled", "sending", "paused", "completed", "failed", "cancelled"])
    const decode = Schema.decodeUnknownResult(BroadcastStatus.BroadcastStatus)
    for (const s of statuses) assert.deepStrictEqual(decode(s), Result.succeed(s))
    for (const bad of ["running", "Draft", "", 1, null, undefined]) assert.isTrue(Result.isFailure(decode(bad)))
  })

  describe("all 49 pairs", () => {
    for (const from of statuses) {
      for (const to of statuses) {
        const want = expected[from][to]
        it(`${from} → ${to}: ${want}`, () => {
          assert.strictEqual(BroadcastStatus.canTransition(from, to), want === "ok")
          const result = BroadcastStatus.transition(from, to)
          if (want === "ok") {
            assert.deepStrictEqual(result, Result.succeed(to))
          } else {
            if (Result.isSuccess(result)) return assert.fail(`${from} → ${to} should be refused`)
            const error = result.failure
            assert.instanceOf(error, BroadcastStatus.InvalidTransition)
            assert.strictEqual(error._tag, "InvalidTransition")
            assert.strictEqual(error.from, from)
            assert.strictEqual(error.to, to)
            assert.strictEqual(error.reason, want)
            assert.include(error.message, from)
          }
        })
      }
    }
  })

  it("allows exactly twelve transitions", () => {
    const allowed = statuses.flatMap((from) =>
      statuses.filter((to) => BroadcastStatus.canTransition(from, to)).map((to) => `${from}→${to}`)
    )
    assert.deepStrictEqual(allowed, [
      "draft→scheduled",
      "draft→sending",
      "draft→cancelled",
      "scheduled→draft",
      "scheduled→sending",
      "scheduled→cancelled",
      "sending→paused",
      "sending→completed",
      "sending→failed",
      "sending→cancelled",
      "paused→sending",
      "paused→cancelled"
    ])
  })

  it("says why in the message", () => {
    const message = (from: BroadcastStatus.BroadcastStatus, to: BroadcastStatus.BroadcastStatus) =>
      Result.match(BroadcastStatus.transition(from, to), {
        onSuccess: () => "allowed",
        onFailure: (e) => e.message
      })
    assert.strictEqual(
      message("cancelled", "sending"),
      "a cancelled broadcast is final and cannot be started or resumed"
    )
    assert.strictEqual(
      message("completed", "draft"),
      "a completed broadcast is final and cannot be moved back to draft"
    )
    assert.strictEqual(message("paused", "paused"), "the broadcast is already paused")
    assert.strictEqual(message("draft", "paused"), "a draft broadcast is not sending, so it cannot be paused")
    assert.strictEqual(message("paused", "completed"), "a paused broadcast is not sending, so it cannot be completed")
    assert.strictEqual(
      message("sending", "scheduled"),
      "a sending broadcast has already started, so it cannot be scheduled"
    )
  })

  it("the error is a schema value that round-trips", () => {
    const error = new BroadcastStatus.InvalidTransition({
      from: "failed",
      to: "sending",
      reason: "Terminal",
      message: "a failed broadcast is final and cannot be started or resumed"
    })
    const encoded = Schema.encodeSync(BroadcastStatus.InvalidTransition)(error)
    const decoded = Schema.decodeUnknownSync(BroadcastStatus.InvalidTransition)(encoded)
    assert.strictEqual(decoded.reason, "Terminal")
    assert.strictEqual(decoded.message, error.message)
    assert.isTrue(
      Result.isFailure(
        Schema.decodeUnknownResult(BroadcastStatus.InvalidTransition)({ ...encoded, reason: "Because" })
      )
    )
  })

  it("isTerminal: completed, failed, cancelled", () => {
    assert.deepStrictEqual(statuses.filter(BroadcastStatus.isTerminal), ["completed", "failed", "cancelled"])
    for (const s of statuses.filter(BroadcastStatus.isTerminal)) {
      assert.isTrue(statuses.every((to) => !BroadcastStatus.canTransition(s, to)))
    }
  })

  it("acceptsRecipients: draft and scheduled, not paused", () => {
    assert.deepStrictEqual(statuses.filter(BroadcastStatus.acceptsRecipients), ["draft", "scheduled"])
  })
})
