import * as Address from "@crier/core/Address"
import * as Broadcast from "@crier/core/Broadcast"
import { BroadcastTransport, type Outgoing } from "@crier/core/BroadcastTransport"
import * as Recipient from "@crier/core/Recipient"
import * as TemplateParams from "@crier/core/TemplateParams"
import * as TemplateSpec from "@crier/core/TemplateSpec"
import type * as TransportError from "@crier/core/TransportError"
import * as KeebaiBulk from "@crier/keebai/KeebaiBulk"
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, DateTime, Duration, Effect, Fiber, Layer, Option, Random, Redacted } from "effect"
import { HttpClient, HttpClientError, type HttpClientRequest, HttpClientResponse } from "effect/http"
import { TestClock } from "effect/testing"

const secret = "kbai_pk_live_SECRET_do_not_log"

interface Recorded {
  readonly method: string
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: any
}

type Canned =
  | {
    readonly status: number
    readonly body?: unknown
    readonly raw?: string
    readonly headers?: Record<string, string>
  }
  | "network"
  | "hang"

const accepted = (id: string, status = "PENDING"): Canned => ({
  status: 202,
  body: { broadcast_id: id, status, total_recipients: 1, scheduled_at: "2026-01-01T00:00:00Z" }
})

const remote = (id: string, status: string, sent = 0, failed = 0, pending = 0): Canned => ({
  status: 200,
  body: { broadcast_id: id, status, total_recipients: sent + failed + pending, sent, failed, pending }
})

/** A recording fake `HttpClient`: every request is kept; answers come from `answer` in order of the calls. */
const fakeClient = (answer: (request: Recorded, n: number) => Canned) => {
  const requests: Array<Recorded> = []
  const client = HttpClient.make((request: HttpClientRequest.HttpClientRequest) =>
    Effect.gen(function*() {
      const text = request.body._tag === "Uint8Array" ? new TextDecoder().decode(request.body.body) : ""
      const recorded = {
        method: request.method,
        url: request.url,
        headers: request.headers,
        body: text === "" ? undefined : JSON.parse(text)
      }
      requests.push(recorded)
      const canned = answer(recorded, requests.length)
      if (canned === "hang") return yield* Effect.never
      if (canned === "network") {
        return yield* new HttpClientError.HttpClientError({
          reason: new HttpClientError.TransportError({ request, description: "ECONNRESET" })
        })
      }
      const body = canned.raw ?? (canned.body === undefined ? null : JSON.stringify(canned.body))
      return HttpClientResponse.fromWeb(
        request,
        new Response(body, {
          status: canned.status,
          headers: { "content-type": "application/json", ...canned.headers }
        })
      )
    })
  )
  return { client, requests }
}

const template = (body: TemplateSpec.BodyParameters = { _tag: "positional", count: 1 }) =>
  new TemplateSpec.TemplateSpec({ name: "promo_july", language: "pt_BR", body, header: "none", buttons: [] })

const makeBroadcast = (fields: Partial<ConstructorParameters<typeof Broadcast.Broadcast>[0]> = {}) =>
  Effect.map(Broadcast.makeId, (id) =>
    new Broadcast.Broadcast({
      id,
      name: "July promo",
      transport: "keebai",
      sender: "ch_7",
      template: template(),
      policy: new Broadcast.Policy({}),
      status: "sending",
      createdAt: DateTime.makeUnsafe(0),
      ...fields
    }))

const phone = (i: number) => Address.PhoneNumber.make(`+5511960${String(i).padStart(6, "0")}`)

const items = (broadcast: Broadcast.Broadcast, count: number, from = 1): [Outgoing, ...Array<Outgoing>] => {
  const list = Array.from({ length: count }, (_, i): Outgoing => ({
    recipientId: Recipient.recipientId(broadcast.id, from + i),
    seq: from + i,
    address: phone(from + i),
    params: new TemplateParams.TemplateParams({ body: [`Ada ${from + i}`], buttons: [] })
  }))
  return [list[0]!, ...list.slice(1)]
}

const withTransport = <A, E>(
  answer: (request: Recorded, n: number) => Canned,
  body: (transport: BroadcastTransport["Service"], requests: ReadonlyArray<Recorded>) => Effect.Effect<A, E, any>,
  options: Partial<KeebaiBulk.Options> = {}
) => {
  const { client, requests } = fakeClient(answer)
  return Effect.gen(function*() {
    const transport = yield* BroadcastTransport
    return yield* body(transport, requests)
  }).pipe(
    Effect.provide(
      KeebaiBulk.layer({ token: Redacted.make(secret), baseUrl: "https://keebai.test/", ...options }).pipe(
        Layer.provideMerge(Layer.succeed(HttpClient.HttpClient, client))
      )
    )
  ) as Effect.Effect<A, E, never>
}

/** The error of a submit that fails, with the request it made. */
const submitError = (canned: Canned) =>
  withTransport(() => canned, (transport) =>
    Effect.gen(function*() {
      const broadcast = yield* makeBroadcast()
      return yield* Effect.flip(transport.submit(broadcast, items(broadcast, 3)))
    }))

describe("KeebaiBulk submit", () => {
  it.effect("sends one POST with the template, sender, a distinct campaign name and each recipient's data", () =>
    withTransport((_, n) => accepted(`bk_${n}`), (transport, requests) =>
      Effect.gen(function*() {
        const broadcast = yield* makeBroadcast()
        const first = yield* transport.submit(broadcast, items(broadcast, 3))
        yield* transport.submit(broadcast, items(broadcast, 2, 4))
        assert.strictEqual(requests.length, 2)
        const [call, second] = requests
        assert.strictEqual(call!.method, "POST")
        assert.strictEqual(call!.url, "https://keebai.test/v1/messages/bulk")
        assert.strictEqual(call!.headers.authorization, `Bearer ${secret}`)
        assert.deepStrictEqual(call!.body, {
          template_name: "promo_july",
          language: "pt_BR",
          channel_id: "ch_7",
          campaign_name: "July promo · part 1 (#1–#3)",
          recipients: [1, 2, 3].map((seq) => ({
            to: phone(seq),
            variables: { "1": `Ada ${seq}` },
            meta_data: { crier_recipient_id: Recipient.recipientId(broadcast.id, seq) }
          }))
        })
        assert.strictEqual(second!.body.campaign_name, "July promo · part 2 (#4–#5)")
        assert.deepStrictEqual(
          first.outcomes,
          [1, 2, 3].map(() => ({ _tag: "Accepted", providerMessageId: Option.none(), held: false }))
        )
      })))

  it.effect("named variables travel by name; the sender may go as phone_number_id; an empty sender takes channelId", () =>
    withTransport(() => accepted("bk_1"), (transport, requests) =>
      Effect.gen(function*() {
        const broadcast = yield* makeBroadcast({
          sender: "",
          template: template({ _tag: "named", keys: ["first_name", "code"] })
        })
        const [item] = items(broadcast, 1)
        const named = {
          ...item,
          params: new TemplateParams.TemplateParams({ body: { first_name: "Zoë", code: "X1" }, buttons: [] })
        }
        yield* transport.submit(broadcast, [named])
        const body = requests[0]!.body
        assert.deepStrictEqual(body.recipients[0].variables, { first_name: "Zoë", code: "X1" })
        assert.strictEqual(body.phone_number_id, "pn_default")
        assert.isUndefined(body.channel_id)
      }), { senderField: "phone_number_id", channelId: "pn_default" }))

  it.effect("an address Keebai cannot take is rejected alone and never sent; all of them: no call at all", () =>
    withTransport(() => accepted("bk_1"), (transport, requests) =>
      Effect.gen(function*() {
        const broadcast = yield* makeBroadcast()
        const [a, b, c] = items(broadcast, 3)
        const bsuid = { ...b!, address: Address.Bsuid.make("US.13491208655302741918") }
        const garbage = { ...c!, address: "+999" as Address.Address }
        const { outcomes } = yield* transport.submit(broadcast, [a!, bsuid, garbage])
        assert.deepStrictEqual(outcomes.map((outcome) => outcome._tag), ["Accepted", "Rejected", "Rejected"])
        for (const outcome of outcomes.slice(1)) {
          if (outcome._tag !== "Rejected") continue
          assert.strictEqual(outcome.error.reason._tag, "RecipientRejected")
          assert.strictEqual(outcome.error.scope, "message")
          assert.isFalse(outcome.error.isRetryable)
        }
        assert.deepStrictEqual(requests[0]!.body.recipients.map((r: { to: string }) => r.to), [phone(1)])
        const none = yield* transport.submit(broadcast, [bsuid, garbage])
        assert.deepStrictEqual(none.outcomes.map((outcome) => outcome._tag), ["Rejected", "Rejected"])
        assert.strictEqual(requests.length, 1, "nothing sendable, nothing sent")
      })))

  it.effect("more than 5,000 recipients, or no sender at all, fail before any request", () =>
    withTransport(() => accepted("bk_1"), (transport, requests) =>
      Effect.gen(function*() {
        const broadcast = yield* makeBroadcast()
        const big = yield* Effect.flip(transport.submit(broadcast, items(broadcast, 5001)))
        assert.strictEqual(big.reason._tag, "InvalidRequest")
        const anonymous = yield* makeBroadcast({ sender: " " })
        const nobody = yield* Effect.flip(transport.submit(anonymous, items(anonymous, 1)))
        assert.strictEqual(nobody.reason._tag, "InvalidRequest")
        assert.include(nobody.message, "KEEBAI_CHANNEL_ID")
        assert.strictEqual(requests.length, 0)
      })))
})

describe("KeebaiBulk errors", () => {
  it.effect("a 400 fails the whole batch with Keebai's message, and pauses the broadcast", () =>
    Effect.gen(function*() {
      const error = yield* submitError({
        status: 400,
        body: { error: { code: "invalid_phone_number", message: "recipients[1].to is not a valid E.164 number" } }
      })
      assert.strictEqual(error.reason._tag, "InvalidRequest")
      assert.strictEqual(error.reason.httpStatus, 400)
      assert.strictEqual(error.scope, "broadcast")
      assert.include(error.message, "recipients[1].to is not a valid E.164 number")
      assert.strictEqual(error.operation, "submit")
    }))

  it.effect("401 and 403 stop everything on the credential, saying what to fix", () =>
    Effect.gen(function*() {
      const unauthorized = yield* submitError({ status: 401, body: { error: "token expired" } })
      assert.strictEqual(unauthorized.reason._tag, "Unauthorized")
      assert.strictEqual(unauthorized.scope, "account")
      assert.include(unauthorized.message, "token expired")
      assert.include(unauthorized.message, "KEEBAI_TOKEN")
      const forbidden = yield* submitError({ status: 403, body: { message: "insufficient scope" } })
      assert.strictEqual(forbidden.reason._tag, "Forbidden")
      assert.strictEqual(forbidden.scope, "account")
      assert.include(forbidden.message, "insufficient scope")
      assert.include(forbidden.message, "messages:bulk")
      const bare = yield* submitError({ status: 403 })
      assert.include(bare.message, "messages:bulk")
    }))

  it.effect("a 429 is a credential rate limit: its Retry-After plus at most a quarter of jitter, or none", () =>
    Effect.gen(function*() {
      const delays: Array<number> = []
      for (let i = 0; i < 20; i++) {
        const error = yield* submitError({ status: 429, headers: { "retry-after": "20" } }).pipe(
          Random.withSeed(`seed-${i}`)
        )
        assert.strictEqual(error.reason._tag, "RateLimited")
        const reason = error.reason as TransportError.RateLimited
        assert.strictEqual(reason.limit, "credential")
        assert.isTrue(error.isRetryable)
        delays.push(Duration.toMillis(Option.getOrThrow(error.retryAfter)))
      }
      assert.isTrue(delays.every((delay) => delay >= 20_000 && delay <= 25_000), delays.join(","))
      assert.isAbove(new Set(delays).size, 1, "the jitter varies")
      const without = yield* submitError({ status: 429 })
      assert.strictEqual(without.reason._tag, "RateLimited")
      assert.isTrue(Option.isNone(without.retryAfter), "the engine's jittered backoff applies")
    }))

  it.effect("every other status is mapped to its reason", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [number, string, boolean]> = [
        [404, "InvalidRequest", false],
        [409, "InvalidRequest", false],
        [413, "InvalidRequest", false],
        [422, "InvalidRequest", false],
        [418, "InvalidRequest", false],
        [408, "Timeout", true],
        [500, "ProviderUnavailable", true],
        [502, "ProviderUnavailable", true],
        [503, "ProviderUnavailable", true],
        [504, "Timeout", true],
        [599, "ProviderUnavailable", true],
        [302, "ProviderUnavailable", true]
      ]
      for (const [status, tag, retryable] of cases) {
        const error = yield* submitError({ status, raw: "<html>oops</html>" })
        assert.strictEqual(error.reason._tag, tag, String(status))
        assert.strictEqual(error.reason.httpStatus, status)
        assert.strictEqual(error.isRetryable, retryable, String(status))
      }
      const unavailable = yield* submitError({ status: 503, headers: { "retry-after": "7" } })
      assert.deepStrictEqual(unavailable.retryAfter, Option.some(Duration.seconds(7)))
    }))

  it.effect("an accepted call whose body cannot be read pauses the broadcast: it may have been sent", () =>
    Effect.gen(function*() {
      for (
        const canned of [
          { status: 202, raw: "not json" },
          { status: 202, body: { status: "PENDING" } },
          { status: 202, body: { broadcast_id: "" } },
          { status: 202 },
          { status: 200, body: { broadcast_id: "bk_1", status: "QUEUED" } }
        ] satisfies ReadonlyArray<Canned>
      ) {
        const error = yield* submitError(canned)
        assert.strictEqual(error.reason._tag, "InvalidRequest", JSON.stringify(canned))
        assert.strictEqual(error.scope, "broadcast")
        assert.include(error.message, "may have been sent")
      }
    }))

  it.effect("a network error is Network, an answer that never comes is Timeout; the token never shows", () =>
    Effect.gen(function*() {
      const network = yield* submitError("network")
      assert.strictEqual(network.reason._tag, "Network")
      assert.isTrue(network.isRetryable)
      const fiber = yield* Effect.forkChild(submitError("hang"))
      yield* TestClock.adjust("31 seconds")
      const timeout = yield* Fiber.join(fiber)
      assert.strictEqual(timeout.reason._tag, "Timeout")
      assert.include(timeout.message, "30s")
      for (const error of [network, timeout, yield* submitError({ status: 401, body: { error: "bad token" } })]) {
        assert.notInclude(error.message, secret)
        assert.notInclude(JSON.stringify(error), secret)
      }
    }))
})

describe("KeebaiBulk poll", () => {
  it.effect("reads the oldest unfinished call first, goes on while calls are over, and reports progress", () => {
    const states: Record<string, Array<Canned>> = {
      bk_1: [remote("bk_1", "IN_PROGRESS", 1, 0, 2), remote("bk_1", "COMPLETED", 2, 1, 0)],
      bk_2: [remote("bk_2", "scheduled", 0, 0, 2), remote("bk_2", "completed", 2, 0, 0)]
    }
    return withTransport((request, n) => {
      if (request.method === "POST") return accepted(`bk_${n}`, n === 1 ? "PENDING" : "scheduled")
      const id = request.url.split("/").pop()!
      return states[id]!.shift()!
    }, (transport, requests) =>
      Effect.gen(function*() {
        const bulk = yield* KeebaiBulk.KeebaiBulk
        const broadcast = yield* makeBroadcast()
        const nothing = yield* transport.poll(broadcast, Option.none())
        assert.deepStrictEqual(
          nothing,
          { events: [], cursor: Option.none(), done: true },
          "no call, nothing to wait for"
        )
        yield* transport.submit(broadcast, items(broadcast, 3))
        yield* transport.submit(broadcast, items(broadcast, 2, 4))
        const first = yield* transport.poll(broadcast, Option.none())
        assert.isFalse(first.done)
        assert.deepStrictEqual(first.events, [])
        assert.deepStrictEqual(requests.slice(2).map((r) => r.url), ["https://keebai.test/v1/messages/bulk/bk_1"])
        assert.strictEqual(requests[2]!.headers.authorization, `Bearer ${secret}`)
        const progress = yield* bulk.progress(broadcast.id)
        assert.deepStrictEqual(
          { total: progress.total, sent: progress.sent, pending: progress.pending, done: progress.done },
          { total: 5, sent: 1, pending: 4, done: false }
        )
        assert.deepStrictEqual(progress.batches.map((batch) => batch.status), ["IN_PROGRESS", "PENDING"])
        // bk_1 is over now, so the same poll goes on to bk_2 (`scheduled`, read as PENDING).
        const second = yield* transport.poll(broadcast, Option.none())
        assert.isFalse(second.done)
        assert.deepStrictEqual(requests.slice(3).map((r) => r.url.split("/").pop()), ["bk_1", "bk_2"])
        const third = yield* transport.poll(broadcast, Option.none())
        assert.isTrue(third.done)
        assert.deepStrictEqual(requests.slice(5).map((r) => r.url.split("/").pop()), ["bk_2"])
        const final = yield* bulk.progress(broadcast.id)
        assert.deepStrictEqual(
          { sent: final.sent, failed: final.failed, pending: final.pending, done: final.done },
          { sent: 4, failed: 1, pending: 0, done: true }
        )
        // Calls that are over are never read again.
        assert.isTrue((yield* transport.poll(broadcast, Option.none())).done)
        assert.strictEqual(requests.length, 6)
      }))
  })

  it.effect("at most maxReadsPerPoll GETs per poll; FAILED and CANCELLED calls are over", () =>
    withTransport((request, n) => {
      if (request.method === "POST") return accepted(`bk_${n}`)
      const id = request.url.split("/").pop()!
      return remote(id, id === "bk_1" ? "FAILED" : "CANCELLED", 0, 1, 0)
    }, (transport, requests) =>
      Effect.gen(function*() {
        const broadcast = yield* makeBroadcast()
        for (let i = 0; i < 3; i++) yield* transport.submit(broadcast, items(broadcast, 1, i + 1))
        assert.isFalse((yield* transport.poll(broadcast, Option.none())).done)
        assert.strictEqual(requests.length, 5)
        assert.isTrue((yield* transport.poll(broadcast, Option.none())).done)
        assert.strictEqual(requests.length, 6)
      }), { maxReadsPerPoll: 2 }))

  it.effect("a poll answer that cannot be read, or an error status, fails the poll with its reason", () =>
    Effect.gen(function*() {
      const pollWith = (canned: Canned) =>
        withTransport(
          (request) => request.method === "POST" ? accepted("bk_1") : canned,
          (transport) =>
            Effect.gen(function*() {
              const broadcast = yield* makeBroadcast()
              yield* transport.submit(broadcast, items(broadcast, 1))
              return yield* Effect.flip(transport.poll(broadcast, Option.none()))
            })
        )
      const garbled = yield* pollWith({ status: 200, body: { broadcast_id: "bk_1", status: "DONE" } })
      assert.strictEqual(garbled.reason._tag, "InvalidRequest")
      assert.strictEqual(garbled.operation, "poll")
      const negative = yield* pollWith(remote("bk_1", "COMPLETED", -1, 0, 0))
      assert.strictEqual(negative.reason._tag, "InvalidRequest")
      const limited = yield* pollWith({ status: 429, headers: { "retry-after": "3" } })
      assert.strictEqual(limited.reason._tag, "RateLimited")
      const gone = yield* pollWith({ status: 404, body: { error: { message: "no broadcast bk_1" } } })
      assert.strictEqual(gone.reason._tag, "InvalidRequest")
      assert.include(gone.message, "no broadcast bk_1")
    }))
})

describe("KeebaiBulk shape", () => {
  it.effect("capabilities, unsupported templates, a no-op start, no cancel", () =>
    withTransport(() => accepted("bk_1"), (transport, requests) =>
      Effect.gen(function*() {
        assert.strictEqual(transport.name, "keebai")
        assert.deepStrictEqual(transport.capabilities, KeebaiBulk.capabilities)
        assert.strictEqual(transport.capabilities.maxBatchSize, 5000)
        assert.isFalse(transport.capabilities.providerDedupe)
        const broadcast = yield* makeBroadcast()
        assert.deepStrictEqual(yield* transport.open(broadcast), Option.none())
        yield* transport.start(broadcast)
        const error = yield* Effect.flip(transport.cancel(broadcast))
        assert.strictEqual(error.reason._tag, "Unsupported")
        assert.strictEqual(requests.length, 0)
        assert.isTrue(Option.isNone(transport.unsupported(template())))
        const withHeader = new TemplateSpec.TemplateSpec({ ...template(), header: "image" })
        assert.isTrue(Option.isSome(transport.unsupported(withHeader)))
        const withButton = new TemplateSpec.TemplateSpec({
          ...template(),
          buttons: [new TemplateSpec.Button({ index: 0, kind: "url" })]
        })
        assert.isTrue(Option.isSome(transport.unsupported(withButton)))
      })))

  it("declares Keebai's request budgets, so every broadcast spends them", () => {
    assert.deepStrictEqual(
      KeebaiBulk.capabilities.requestBudgets.map(({ limit, windowMillis }) => [limit, windowMillis]),
      [[60, 60_000], [1000, 3_600_000]]
    )
  })
})

describe("KeebaiBulk layerConfig", () => {
  const fromEnv = (env: Record<string, string>) =>
    Effect.gen(function*() {
      const { client, requests } = fakeClient(() => accepted("bk_1"))
      yield* Effect.gen(function*() {
        const transport = yield* BroadcastTransport
        const broadcast = yield* makeBroadcast({ sender: "" })
        yield* transport.submit(broadcast, items(broadcast, 1))
      }).pipe(Effect.provide(KeebaiBulk.layerConfig.pipe(Layer.provide(Layer.succeed(HttpClient.HttpClient, client)))))
      return requests[0]!
    }).pipe(Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown(env))))

  it.effect("reads the token, the base URL (with its default) and the channel id", () =>
    Effect.gen(function*() {
      const custom = yield* fromEnv({
        KEEBAI_TOKEN: "kbai_pk_env",
        KEEBAI_BASE_URL: "http://127.0.0.1:9999",
        KEEBAI_CHANNEL_ID: "ch_env"
      })
      assert.strictEqual(custom.url, "http://127.0.0.1:9999/v1/messages/bulk")
      assert.strictEqual(custom.headers.authorization, "Bearer kbai_pk_env")
      assert.strictEqual(custom.body.channel_id, "ch_env")
      const defaults = yield* Effect.flip(fromEnv({ KEEBAI_TOKEN: "kbai_pk_env" }))
      // No sender anywhere: the call is refused before any request, but the default base URL was taken.
      assert.include(String(defaults), "KEEBAI_CHANNEL_ID")
      const { client, requests } = fakeClient(() => accepted("bk_1"))
      yield* Effect.gen(function*() {
        const transport = yield* BroadcastTransport
        const broadcast = yield* makeBroadcast()
        yield* transport.submit(broadcast, items(broadcast, 1))
      }).pipe(
        Effect.provide(KeebaiBulk.layerConfig.pipe(Layer.provide(Layer.succeed(HttpClient.HttpClient, client)))),
        Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ KEEBAI_TOKEN: "kbai_pk_env" })))
      )
      assert.strictEqual(requests[0]!.url, "https://api.keebai.com/v1/messages/bulk")
    }))

  it.effect("without KEEBAI_TOKEN the layer fails with a ConfigError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(fromEnv({ KEEBAI_BASE_URL: "http://127.0.0.1:9999" }))
      assert.include(String(error), "KEEBAI_TOKEN")
    }))

  it.effect("the token read from config is Redacted", () =>
    Effect.gen(function*() {
      const options = yield* KeebaiBulk.config.pipe(
        Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ KEEBAI_TOKEN: "kbai_pk_env" })))
      )
      assert.isTrue(Redacted.isRedacted(options.token))
      assert.notInclude(String(options.token), "kbai_pk_env")
      assert.strictEqual(Redacted.value(options.token), "kbai_pk_env")
      assert.strictEqual(options.baseUrl, KeebaiBulk.defaultBaseUrl)
      assert.isUndefined(options.channelId)
    }))
})
