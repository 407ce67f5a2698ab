import * as TransportError from "@crier/core/TransportError"
import { assert, describe, it } from "@effect/vitest"
import { DateTime, Duration, Effect, Exit, Option, Schema } from "effect"
import { HttpClientError, HttpClientRequest, HttpClientResponse } from "effect/http"

type Scope = TransportError.Scope
type Tag = TransportError.Reason["_tag"]

// PROVIDERS.md's Meta table, copied by hand from the document (not from the implementation) so a wrong entry
// in `metaCodes` shows up here. Columns: reason, scope, retryable.
const providersTable: ReadonlyArray<readonly [code: number, tag: Tag, scope: Scope, retryable: boolean]> = [
  // throughput / app / account rate limit: retry with backoff, slow the sender down
  [130429, "RateLimited", "message", true],
  [4, "RateLimited", "message", true],
  [80007, "RateLimited", "message", true],
  // pair rate limit: retry that recipient only
  [131056, "PairRateLimited", "message", true],
  // transient: bounded retries with backoff
  [131000, "ProviderUnavailable", "message", true],
  [131016, "ProviderUnavailable", "message", true],
  [133004, "ProviderUnavailable", "message", true],
  [1, "ProviderUnavailable", "message", true],
  [2, "ProviderUnavailable", "message", true],
  [131057, "ProviderUnavailable", "message", true],
  // recipient cannot / must not get it: permanent failure for that recipient
  [131026, "RecipientRejected", "message", false],
  [131050, "RecipientRejected", "message", false],
  [130472, "RecipientRejected", "message", false],
  [130497, "RecipientRejected", "message", false],
  [131047, "RecipientRejected", "message", false],
  // Meta chose not to deliver: fail for this broadcast, never retry
  [131049, "RecipientDeclined", "message", false],
  // parameters do not fit the template: stop the broadcast (unless per-row, tested below)
  [132000, "TemplateParamsMismatch", "broadcast", false],
  [132005, "TemplateParamsMismatch", "broadcast", false],
  [132012, "TemplateParamsMismatch", "broadcast", false],
  [131008, "TemplateParamsMismatch", "broadcast", false],
  [131009, "TemplateParamsMismatch", "broadcast", false],
  [100, "TemplateParamsMismatch", "broadcast", false],
  // template missing/paused/disabled, spam limit, account blocked, bad token: pause the broadcast
  [132001, "TemplateRejected", "broadcast", false],
  [132015, "TemplateRejected", "broadcast", false],
  [132016, "TemplateRejected", "broadcast", false],
  [131048, "PolicyBlocked", "broadcast", false],
  [368, "PolicyBlocked", "broadcast", false],
  [131031, "PolicyBlocked", "broadcast", false],
  [131042, "PolicyBlocked", "broadcast", false],
  // a bad credential pauses this broadcast and every other one on it
  [190, "Unauthorized", "account", false],
  [0, "Unauthorized", "account", false],
  // new marketing template not yet synced: retry later
  [134101, "NotReady", "message", true]
]

// Codes the implementation adds beyond PROVIDERS.md (Graph API permission errors).
const extraCodes: ReadonlyArray<readonly [code: number, tag: Tag, scope: Scope, retryable: boolean]> = [
  [3, "Forbidden", "account", false],
  [10, "Forbidden", "account", false]
]

const now = DateTime.makeUnsafe("2026-05-01T12:00:00Z") // a Friday

const meta = (code: number, extra: Partial<Parameters<typeof TransportError.fromMetaError>[0]> = {}) =>
  TransportError.fromMetaError({
    code,
    httpStatus: 400,
    message: `(#${code}) provider text`,
    provider: "meta",
    ...extra
  })

const http = (status: number, extra: Partial<Parameters<typeof TransportError.fromHttpStatus>[0]> = {}) =>
  TransportError.fromHttpStatus({ status, now, provider: "keebai", ...extra })

const roundTrip = (error: TransportError.TransportError): TransportError.TransportError => {
  const json = JSON.stringify(Schema.encodeSync(TransportError.TransportError)(error))
  return Schema.decodeSync(TransportError.TransportError)(JSON.parse(json))
}

const assertSeconds = (actual: Option.Option<Duration.Duration>, seconds: number) =>
  assert.deepStrictEqual(Option.map(actual, Duration.toMillis), Option.some(seconds * 1000))

describe("TransportError", () => {
  describe("fromMetaError", () => {
    it.each([...providersTable, ...extraCodes])(
      "code %i is %s, scope %s, retryable %s",
      (code, tag, scope, retryable) => {
        const error = meta(code)
        assert.strictEqual(error._tag, "TransportError")
        assert.strictEqual(error.reason._tag, tag)
        assert.strictEqual(error.scope, scope)
        assert.strictEqual(error.isRetryable, retryable)
        assert.strictEqual(error.reason.code, code)
        assert.strictEqual(error.reason.httpStatus, 400)
        assert.include(error.message, "meta")
        assert.include(error.message, `code ${code}`)
      }
    )

    it("metaCodes holds exactly the PROVIDERS.md codes plus the documented extras", () => {
      const expected = [...providersTable, ...extraCodes].map(([code]) => code).sort((a, b) => a - b)
      assert.deepStrictEqual([...TransportError.metaCodes.keys()].sort((a, b) => a - b), expected)
      for (const [, classification] of TransportError.metaCodes) {
        assert.isAbove(classification.meaning.trim().length, 0)
      }
    })

    it("classifies by code, not by HTTP status", () => {
      assert.strictEqual(meta(130429, { httpStatus: 400 }).reason._tag, "RateLimited")
      assert.strictEqual(meta(190, { httpStatus: 500 }).reason._tag, "Unauthorized")
      assert.strictEqual(meta(131000, { httpStatus: 400 }).reason._tag, "ProviderUnavailable")
      assert.strictEqual(meta(3, { httpStatus: 500 }).reason._tag, "Forbidden")
    })

    it("rate limits say whose budget ran out", () => {
      const limits = [130429, 4, 80007].map((code) => {
        const reason = meta(code).reason
        return reason._tag === "RateLimited" ? reason.limit : undefined
      })
      assert.deepStrictEqual(limits, ["sender", "app", "account"])
    })

    it("a parameter mismatch fails only its recipient when the request was per recipient", () => {
      for (const code of [132000, 132005, 132012, 131008, 131009, 100]) {
        assert.strictEqual(meta(code, { perRecipient: true }).scope, "message")
        assert.isFalse(meta(code, { perRecipient: true }).isRetryable)
        assert.strictEqual(meta(code, { perRecipient: false }).scope, "broadcast")
        assert.strictEqual(meta(code).scope, "broadcast")
      }
      // other reasons ignore the flag
      assert.strictEqual(meta(132015, { perRecipient: true }).scope, "broadcast")
      assert.strictEqual(meta(131026, { perRecipient: false }).scope, "message")
      assert.isFalse("perRecipient" in meta(132015, { perRecipient: true }).reason)
    })

    it("never retries a declined recipient", () => {
      const error = meta(131049)
      assert.isFalse(error.isRetryable)
      assert.isTrue(Option.isNone(error.retryAfter))
    })

    it("carries a given retryAfter on retryable reasons", () => {
      assertSeconds(meta(130429, { retryAfter: Duration.seconds(30) }).retryAfter, 30)
      assertSeconds(meta(131016, { retryAfter: Duration.seconds(5) }).retryAfter, 5)
      assert.isTrue(Option.isNone(meta(130429).retryAfter))
      // dropped where the reason has no use for it
      assert.isTrue(Option.isNone(meta(131026, { retryAfter: Duration.seconds(30) }).retryAfter))
      assert.isTrue(Option.isNone(meta(131056, { retryAfter: Duration.seconds(30) }).retryAfter))
    })

    it("134101 waits for the template sync (10 minutes) unless told otherwise", () => {
      assertSeconds(meta(134101).retryAfter, 600)
      assertSeconds(meta(134101, { retryAfter: Duration.minutes(2) }).retryAfter, 120)
    })

    it("keeps Meta's message, details and subcode", () => {
      const error = TransportError.fromMetaError({
        code: 190,
        subcode: 463,
        httpStatus: 401,
        message: "Error validating access token",
        details: "Session has expired",
        provider: "meta",
        operation: "send"
      })
      assert.strictEqual(error.reason.message, "Error validating access token: Session has expired")
      assert.strictEqual(error.reason.subcode, 463)
      assert.strictEqual(
        error.message,
        "meta send failed: Unauthorized (code 190/463, HTTP 401): Error validating access token: Session has expired"
      )
    })

    it("falls back to the table's meaning when Meta gives no text", () => {
      for (const message of [undefined, "", "   "]) {
        const error = TransportError.fromMetaError({ code: 132015, message, details: " ", provider: "meta" })
        assert.strictEqual(error.reason.message, "template is paused for low quality")
        assert.strictEqual(
          error.message,
          "meta failed: TemplateRejected (code 132015): template is paused for low quality"
        )
      }
    })

    describe("unknown codes", () => {
      it("without an HTTP status pause the broadcast: neither retried nor failed per recipient", () => {
        const error = TransportError.fromMetaError({ code: 999_999, provider: "meta" })
        assert.strictEqual(error.reason._tag, "InvalidRequest")
        assert.strictEqual(error.scope, "broadcast")
        assert.isFalse(error.isRetryable)
        assert.strictEqual(error.reason.code, 999_999)
        assert.include(error.message, "unrecognised Meta error code")
        assert.include(error.message, "999999")
      })

      it.each(
        [
          [400, "InvalidRequest", "broadcast", false],
          [401, "Unauthorized", "account", false],
          [403, "Forbidden", "account", false],
          [429, "RateLimited", "message", true],
          [500, "ProviderUnavailable", "message", true],
          [503, "ProviderUnavailable", "message", true]
        ] as const
      )("with HTTP %i are %s", (status, tag, scope, retryable) => {
        const error = TransportError.fromMetaError({ code: 999_999, httpStatus: status, provider: "meta" })
        assert.strictEqual(error.reason._tag, tag)
        assert.strictEqual(error.scope, scope)
        assert.strictEqual(error.isRetryable, retryable)
        assert.strictEqual(error.reason.code, 999_999)
        assert.strictEqual(error.reason.httpStatus, status)
        assert.include(error.message, "unrecognised Meta error code")
      })
    })
  })

  describe("fromHttpStatus", () => {
    it.each(
      [
        [400, "InvalidRequest", "broadcast", false],
        [401, "Unauthorized", "account", false],
        [403, "Forbidden", "account", false],
        [404, "InvalidRequest", "broadcast", false],
        [408, "Timeout", "message", true],
        [409, "InvalidRequest", "broadcast", false],
        [413, "InvalidRequest", "broadcast", false],
        [418, "InvalidRequest", "broadcast", false],
        [422, "InvalidRequest", "broadcast", false],
        [429, "RateLimited", "message", true],
        [500, "ProviderUnavailable", "message", true],
        [502, "ProviderUnavailable", "message", true],
        [503, "ProviderUnavailable", "message", true],
        [504, "Timeout", "message", true],
        [507, "ProviderUnavailable", "message", true],
        [302, "ProviderUnavailable", "message", true]
      ] as const
    )("HTTP %i is %s, scope %s, retryable %s", (status, tag, scope, retryable) => {
      const error = http(status)
      assert.strictEqual(error.reason._tag, tag)
      assert.strictEqual(error.scope, scope)
      assert.strictEqual(error.isRetryable, retryable)
      assert.strictEqual(error.reason.httpStatus, status)
      assert.isUndefined(error.reason.code)
      assert.include(error.message, "keebai")
      assert.include(error.message, `HTTP ${status}`)
    })

    it("keeps the provider's message and the operation", () => {
      const error = http(422, { message: "Template not linked to config", provider: "kapso", operation: "open" })
      assert.strictEqual(error.operation, "open")
      assert.strictEqual(
        error.message,
        "kapso open failed: InvalidRequest (HTTP 422): Template not linked to config"
      )
    })

    describe("429", () => {
      const limit = (error: TransportError.TransportError) =>
        error.reason._tag === "RateLimited" ? error.reason.limit : undefined

      it("without Retry-After has no retryAfter and counts against the credential", () => {
        const error = http(429)
        assert.isTrue(Option.isNone(error.retryAfter))
        assert.strictEqual(limit(error), "credential")
        assert.isTrue(error.isRetryable)
      })

      it("with delta-seconds", () => {
        const error = http(429, { retryAfterHeader: "120" })
        assertSeconds(error.retryAfter, 120)
        assert.include(error.message, "retry after 2m")
      })

      it("with an HTTP-date", () => {
        assertSeconds(http(429, { retryAfterHeader: "Fri, 01 May 2026 12:01:30 GMT" }).retryAfter, 90)
      })

      it("with garbage is still rate limited, with no retryAfter", () => {
        const error = http(429, { retryAfterHeader: "soon" })
        assert.strictEqual(error.reason._tag, "RateLimited")
        assert.isTrue(Option.isNone(error.retryAfter))
      })

      it("with a date in the past retries now", () => {
        assertSeconds(http(429, { retryAfterHeader: "Thu, 30 Apr 2026 12:00:00 GMT" }).retryAfter, 0)
      })
    })

    it("503 honours Retry-After; a 401 drops it", () => {
      assertSeconds(http(503, { retryAfterHeader: "7" }).retryAfter, 7)
      assert.isTrue(Option.isNone(http(401, { retryAfterHeader: "7" }).retryAfter))
      assert.isTrue(Option.isNone(http(400, { retryAfterHeader: "7" }).retryAfter))
    })
  })

  describe("parseRetryAfter", () => {
    const parse = (header: string) => Option.map(TransportError.parseRetryAfter(header, now), Duration.toMillis)

    it.each(
      [
        ["0", 0],
        ["17", 17_000],
        [" 17 ", 17_000],
        ["-5", 0],
        ["86400", 86_400_000],
        // IMF-fixdate
        ["Fri, 01 May 2026 12:01:30 GMT", 90_000],
        ["Sat, 02 May 2026 12:00:00 GMT", 86_400_000],
        ["Fri, 01 May 2026 12:00:00 GMT", 0],
        ["Sun, 06 Nov 1994 08:49:37 GMT", 0],
        // obsolete RFC 850 (two-digit year) and asctime forms
        ["Friday, 01-May-26 12:01:30 GMT", 90_000],
        ["Sunday, 06-Nov-94 08:49:37 GMT", 0],
        ["Fri May  1 12:01:30 2026", 90_000],
        ["Sun Nov  6 08:49:37 1994", 0]
      ] as const
    )("%j is %i ms", (header, millis) => {
      assert.deepStrictEqual(parse(header), Option.some(millis))
    })

    it.each([
      "",
      "   ",
      "soon",
      "1.5",
      "1e3",
      "0x10",
      "+5",
      "12 seconds",
      "2026-05-01T12:01:30Z",
      "Fri, 01 May 2026 12:01:30 +0000",
      "Fri, 01 May 2026 12:01:30",
      "fri, 01 may 2026 12:01:30 gmt",
      "Fri, 1 May 2026 12:01:30 GMT",
      "Fri, 31 Feb 2026 12:01:30 GMT",
      "Fri, 00 May 2026 12:01:30 GMT",
      "Fri, 01 May 2026 24:00:00 GMT",
      "Fri, 01 May 2026 12:60:00 GMT",
      "Fri, 01 Foo 2026 12:01:30 GMT"
    ])("%j is none", (header) => {
      assert.isTrue(Option.isNone(TransportError.parseRetryAfter(header, now)))
    })
  })

  describe("message", () => {
    const reasons: ReadonlyArray<TransportError.Reason> = [
      new TransportError.RateLimited({ message: "", limit: "sender" }),
      new TransportError.PairRateLimited({ message: "" }),
      new TransportError.Unauthorized({ message: "" }),
      new TransportError.Forbidden({ message: "" }),
      new TransportError.InvalidRequest({ message: "" }),
      new TransportError.TemplateRejected({ message: "" }),
      new TransportError.TemplateParamsMismatch({ message: "" }),
      new TransportError.RecipientRejected({ message: "", code: 131026 }),
      new TransportError.RecipientDeclined({ message: "" }),
      new TransportError.PolicyBlocked({ message: "" }),
      new TransportError.NotReady({ message: "", retryAfter: Duration.minutes(10) }),
      new TransportError.ProviderUnavailable({ message: "" }),
      new TransportError.Timeout({ message: "" }),
      new TransportError.Network({ message: "" }),
      new TransportError.Unsupported({ message: "" })
    ]

    it("every reason has a definite scope and retryability, and retryable ones are message-scoped", () => {
      assert.strictEqual(new Set(reasons.map((reason) => reason._tag)).size, TransportError.Reason.members.length)
      for (const reason of reasons) {
        assert.include(["message", "broadcast", "account"], reason.scope)
        if (reason.isRetryable) assert.strictEqual(reason.scope, "message")
      }
    })

    it("only a timeout or a connection lost after sending may have been acted on (in-doubt policy)", () => {
      const acted = [...reasons, new TransportError.Network({ message: "", afterSend: true })].filter((reason) =>
        new TransportError.TransportError({ provider: "", reason }).mayHaveActed
      )
      assert.deepStrictEqual(acted.map((reason) => reason._tag), ["Timeout", "Network"])
    })

    it.each(reasons.map((reason) => [reason._tag, reason] as const))("is never empty: %s", (tag, reason) => {
      const error = new TransportError.TransportError({ provider: "", reason })
      assert.include(error.message, tag)
      assert.strictEqual(error.message, error.message.trim())
      assert.isAbove(error.message.length, tag.length)
    })

    it("is never empty for any classified answer", () => {
      for (const code of [...TransportError.metaCodes.keys(), 424_242]) {
        assert.isAbove(TransportError.fromMetaError({ code, provider: "meta" }).reason.message.length, 0)
      }
      for (const status of [...TransportError.httpStatuses.keys(), 418, 599]) {
        assert.isAbove(http(status).reason.message.length, 0)
      }
    })

    it("reports the provider, operation and reason", () => {
      const error = new TransportError.TransportError({
        provider: "kapso",
        operation: "cancel",
        reason: new TransportError.Unsupported({ message: "Kapso v1 has no cancel" })
      })
      assert.strictEqual(error.message, "kapso cancel failed: Unsupported: Kapso v1 has no cancel")
      assert.strictEqual(error.scope, "broadcast")
      assert.isFalse(error.isRetryable)
    })
  })

  describe("Schema", () => {
    const samples = [
      ...[...TransportError.metaCodes.keys()].map((code) => meta(code, { operation: "send", perRecipient: true })),
      meta(130429, { retryAfter: Duration.millis(1500), subcode: 2494055 }),
      meta(132000),
      meta(777, { httpStatus: 503 }),
      ...[...TransportError.httpStatuses.keys()].map((status) => http(status, { retryAfterHeader: "30" })),
      new TransportError.TransportError({
        provider: "meta",
        reason: new TransportError.Network({ message: "ECONNRESET", afterSend: true })
      })
    ]

    it.each(samples.map((error) => [error.message, error] as const))("round-trips through JSON: %s", (_, error) => {
      const decoded = roundTrip(error)
      assert.instanceOf(decoded, TransportError.TransportError)
      assert.strictEqual(decoded.reason._tag, error.reason._tag)
      assert.strictEqual(decoded.message, error.message)
      assert.strictEqual(decoded.scope, error.scope)
      assert.strictEqual(decoded.isRetryable, error.isRetryable)
      assert.deepStrictEqual(
        Option.map(decoded.retryAfter, Duration.toMillis),
        Option.map(error.retryAfter, Duration.toMillis)
      )
      assert.deepStrictEqual(
        Schema.encodeSync(TransportError.TransportError)(decoded),
        Schema.encodeSync(TransportError.TransportError)(error)
      )
    })

    it("encodes to plain JSON the store can keep", () => {
      const encoded = Schema.encodeSync(TransportError.TransportError)(
        meta(130429, { retryAfter: Duration.seconds(2), operation: "send" })
      )
      assert.deepStrictEqual(JSON.parse(JSON.stringify(encoded)), {
        _tag: "TransportError",
        provider: "meta",
        operation: "send",
        reason: {
          _tag: "RateLimited",
          message: "(#130429) provider text",
          code: 130429,
          httpStatus: 400,
          limit: "sender",
          retryAfter: 2000
        }
      })
    })

    it("refuses a record with an unknown reason", () => {
      const bad = { _tag: "TransportError", provider: "meta", reason: { _tag: "Exploded", message: "?" } }
      assert.isTrue(Exit.isFailure(Schema.decodeUnknownExit(TransportError.TransportError)(bad)))
    })
  })

  describe("Effect.catchReason", () => {
    it.effect("handles one reason and leaves the rest", () =>
      Effect.gen(function*() {
        const limited = yield* Effect.fail(http(429, { retryAfterHeader: "3" })).pipe(
          Effect.catchReason("TransportError", "RateLimited", (reason) => Effect.succeed(reason.limit))
        )
        assert.strictEqual(limited, "credential")

        const other = yield* Effect.fail(http(401)).pipe(
          Effect.catchReason("TransportError", "RateLimited", (reason) => Effect.succeed(reason.limit)),
          Effect.flip
        )
        assert.strictEqual(other.reason._tag, "Unauthorized")

        const fallback = yield* Effect.fail(meta(131026)).pipe(
          Effect.catchReason(
            "TransportError",
            "RateLimited",
            () => Effect.succeed("limited"),
            (reason) => Effect.succeed(reason._tag)
          )
        )
        assert.strictEqual(fallback, "RecipientRejected")
      }))

    it.effect("unwrapReason exposes the reasons as errors", () =>
      Effect.gen(function*() {
        const reason = yield* Effect.fail(meta(131056)).pipe(Effect.unwrapReason("TransportError"), Effect.flip)
        assert.instanceOf(reason, TransportError.PairRateLimited)
        assert.strictEqual(reason.code, 131056)
      }))
  })
})

describe("fromHttpClientError", () => {
  const request = HttpClientRequest.post("https://graph.example/v24.0/1/messages")
  const failed = (reason: HttpClientError.HttpClientErrorReason) =>
    new TransportError.TransportError({
      provider: "meta",
      reason: TransportError.fromHttpClientError(new HttpClientError.HttpClientError({ reason }))
    })
  // As fetch (undici) reports a socket error: its own TypeError, the socket's error as the cause.
  const fetchFailed = (code: string) => Object.assign(new TypeError("fetch failed"), { cause: { code } })

  it("a connection never made is Network, not acted on; one lost after sending may have been", () => {
    for (const code of ["ECONNREFUSED", "ENOTFOUND", "UND_ERR_CONNECT_TIMEOUT", "CERT_HAS_EXPIRED"]) {
      const error = failed(new HttpClientError.TransportError({ request, cause: fetchFailed(code) }))
      assert.strictEqual(error.reason._tag, "Network")
      assert.isFalse(error.mayHaveActed, code)
      assert.include(error.message, code)
    }
    for (const code of ["ECONNRESET", "UND_ERR_SOCKET", "EPIPE"]) {
      const error = failed(new HttpClientError.TransportError({ request, cause: { code } }))
      assert.isTrue(error.mayHaveActed, code)
    }
    // A failure it cannot place is taken as possibly acted on.
    assert.isTrue(failed(new HttpClientError.TransportError({ request, cause: new Error("?") })).mayHaveActed)
  })

  it("an answer that could not be read may have been acted on; a request that could not be made was not", () => {
    const response = HttpClientResponse.fromWeb(request, new Response("{", { status: 200 }))
    const unread = failed(new HttpClientError.DecodeError({ request, response }))
    assert.deepStrictEqual([unread.reason._tag, unread.mayHaveActed], ["Network", true])
    const badUrl = failed(new HttpClientError.InvalidUrlError({ request }))
    assert.deepStrictEqual([badUrl.reason._tag, badUrl.mayHaveActed, badUrl.isRetryable], [
      "InvalidRequest",
      false,
      false
    ])
  })
})
