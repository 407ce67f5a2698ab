import * as WebhookDelivery from "@crier/testkit/WebhookDelivery"
import { NodeHttpClient, NodeHttpServer } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Duration, Effect, Fiber, Random } from "effect"
import {
  HttpClient,
  HttpClientError,
  type HttpClientRequest,
  HttpClientResponse,
  HttpServer,
  HttpServerRequest,
  HttpServerResponse
} from "effect/http"
import { TestClock } from "effect/testing"
import { createServer } from "node:http"

interface Received {
  readonly at: number
  readonly body: string
  readonly headers: Readonly<Record<string, string>>
}

type Answer = number | "network" | "hang" | "die"

const bodyOf = (request: HttpClientRequest.HttpClientRequest): string =>
  request.body._tag === "Uint8Array" ? new TextDecoder().decode(request.body.body) : ""

/** A fake `HttpClient` that records every request and answers with `answer(body, nth time this body was seen)`. */
const fakeClient = (answer: (body: string, seen: number) => Answer = () => 200) => {
  const received: Array<Received> = []
  const seen = new Map<string, number>()
  const client = HttpClient.make((request) =>
    Effect.gen(function*() {
      const body = bodyOf(request)
      const count = (seen.get(body) ?? 0) + 1
      seen.set(body, count)
      received.push({ at: yield* Clock.currentTimeMillis, body, headers: request.headers })
      const reply = answer(body, count)
      if (reply === "hang") return yield* Effect.never
      if (reply === "die") return yield* Effect.die(new Error("client bug"))
      if (reply === "network") {
        return yield* new HttpClientError.HttpClientError({
          reason: new HttpClientError.TransportError({ request, description: "connection refused" })
        })
      }
      return HttpClientResponse.fromWeb(request, new Response(reply === 204 ? null : "ok", { status: reply }))
    })
  )
  return { client, received }
}

const sign = (body: string) => ({ "x-test-signature": `len=${body.length}` })

const deliver = (
  options: Partial<WebhookDelivery.Options>,
  client: HttpClient.HttpClient,
  payloads: ReadonlyArray<unknown>
) =>
  Effect.gen(function*() {
    const delivery = yield* WebhookDelivery.make({ url: "http://127.0.0.1:9/hook", sign, ...options })
    for (const payload of payloads) yield* delivery.enqueue(payload)
    return delivery
  }).pipe(Effect.provideService(HttpClient.HttpClient, client))

/** Runs `idle` to its end while advancing the TestClock a second at a time (at most `limit` seconds). */
const settle = (delivery: WebhookDelivery.WebhookDelivery, limit = 3600) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(delivery.idle)
    for (let i = 0; i < limit && fiber.pollUnsafe() === undefined; i++) yield* TestClock.adjust("1 second")
    assert.isDefined(fiber.pollUnsafe(), "every delivery settled")
    yield* Fiber.join(fiber)
  })

const payloads = (count: number) => Array.from({ length: count }, (_, i) => ({ id: `evt_${i + 1}`, n: i + 1 }))

describe("WebhookDelivery", () => {
  it.effect("posts the JSON body as signed, byte for byte, with the signing headers", () =>
    Effect.gen(function*() {
      const { client, received } = fakeClient()
      const payload = { id: "evt_1", text: "Olá 👋 \"quoted\"", nested: { n: 1 } }
      const delivery = yield* deliver({}, client, [payload])
      yield* settle(delivery)
      assert.strictEqual(received.length, 1)
      const [first] = received
      assert.strictEqual(first!.body, JSON.stringify(payload))
      assert.strictEqual(first!.headers["x-test-signature"], `len=${JSON.stringify(payload).length}`)
      assert.strictEqual(first!.headers["content-type"], "application/json")
      const [record] = yield* delivery.deliveries
      assert.deepStrictEqual(record, {
        id: 1,
        payload: 1,
        body: JSON.stringify(payload),
        duplicate: false,
        state: "delivered",
        attempts: 1
      })
    }))

  it.effect("retries a non-2xx answer and a network error with a doubling backoff until one succeeds", () =>
    Effect.gen(function*() {
      const { client, received } = fakeClient((_, seen) => seen === 1 ? 500 : seen === 2 ? "network" : 204)
      const delivery = yield* deliver({ retryDelay: "10 seconds" }, client, [{ id: "evt_1" }])
      yield* settle(delivery)
      const attempts = yield* delivery.attempts
      assert.deepStrictEqual(attempts.map(({ attempt, ok, status }) => ({ attempt, ok, status })), [
        { attempt: 1, ok: false, status: 500 },
        { attempt: 2, ok: false, status: undefined },
        { attempt: 3, ok: true, status: 204 }
      ])
      assert.strictEqual(attempts[0]!.error, "answered HTTP 500")
      assert.include(attempts[1]!.error, "connection refused")
      assert.isUndefined(attempts[2]!.error)
      // 10 s then 20 s, each plus up to half in jitter.
      const gaps = [received[1]!.at - received[0]!.at, received[2]!.at - received[1]!.at]
      assert.isTrue(gaps[0]! >= 10_000 && gaps[0]! <= 15_000, `first gap ${gaps[0]}`)
      assert.isTrue(gaps[1]! >= 20_000 && gaps[1]! <= 30_000, `second gap ${gaps[1]}`)
      assert.strictEqual((yield* delivery.deliveries)[0]!.state, "delivered")
    }))

  it.effect("gives a copy up after maxAttempts, and a hanging attempt counts as failed after the timeout", () =>
    Effect.gen(function*() {
      const { client, received } = fakeClient((body) => body.includes("hang") ? "hang" : 503)
      const delivery = yield* deliver(
        { maxAttempts: 3, retryDelay: "1 second", timeout: "5 seconds" },
        client,
        [{ id: "evt_503" }, { id: "evt_hang" }]
      )
      yield* settle(delivery)
      const states = (yield* delivery.deliveries).map(({ attempts, state }) => ({ attempts, state }))
      assert.deepStrictEqual(states, [{ attempts: 3, state: "failed" }, { attempts: 3, state: "failed" }])
      assert.strictEqual(received.length, 6)
      const hung = (yield* delivery.attempts).filter((attempt) => attempt.payload === 2)
      assert.isTrue(hung.every((attempt) => !attempt.ok && attempt.status === undefined && attempt.error !== undefined))
    }))

  it.effect("a defect in the client is a failed attempt, not a delivery left pending", () =>
    Effect.gen(function*() {
      const { client } = fakeClient((_, seen) => seen === 1 ? "die" : 200)
      const delivery = yield* deliver({ retryDelay: "1 second" }, client, [{ id: "evt_1" }])
      yield* settle(delivery)
      const attempts = yield* delivery.attempts
      assert.deepStrictEqual(attempts.map(({ error, ok }) => ({ error, ok })), [
        { error: "client bug", ok: false },
        { error: undefined, ok: true }
      ])
      assert.strictEqual((yield* delivery.deliveries)[0]!.state, "delivered")
    }))

  it.effect("delays each copy within the range, so deliveries arrive out of enqueue order", () =>
    Effect.gen(function*() {
      const { client, received } = fakeClient()
      const delivery = yield* deliver({ delay: { min: "1 second", max: "60 seconds" } }, client, payloads(50))
      yield* settle(delivery)
      assert.strictEqual(received.length, 50)
      assert.isTrue(received.every(({ at }) => at >= 1000 && at <= 61_000), "every delay is within the range")
      const order = received.map(({ body }) => (JSON.parse(body) as { n: number }).n)
      assert.notDeepEqual(order, [...order].sort((a, b) => a - b), "arrival order differs from enqueue order")
    }))

  it.effect("delivers the duplicate share twice, as separate copies", () =>
    Effect.gen(function*() {
      const run = (share: number) =>
        Effect.gen(function*() {
          const { client, received } = fakeClient()
          const delivery = yield* deliver({ duplicateShare: share }, client, payloads(400))
          yield* settle(delivery)
          return { received, deliveries: yield* delivery.deliveries }
        })
      assert.strictEqual((yield* run(0)).received.length, 400)
      assert.strictEqual((yield* run(1)).received.length, 800)
      const { deliveries, received } = yield* run(0.25)
      const twice = deliveries.filter((delivery) => delivery.duplicate)
      assert.isTrue(twice.length > 60 && twice.length < 140, `${twice.length} duplicated`)
      assert.strictEqual(received.length, 400 + twice.length)
      for (const copy of twice) {
        const original = deliveries.find((delivery) => delivery.payload === copy.payload && !delivery.duplicate)
        assert.strictEqual(original?.body, copy.body)
      }
    }))

  it.effect("the same seed gives the same delays and duplicates", () =>
    Effect.gen(function*() {
      const run = (seed: string) =>
        Effect.gen(function*() {
          const { client, received } = fakeClient()
          const start = yield* Clock.currentTimeMillis
          const delivery = yield* deliver(
            { delay: { min: 0, max: "30 seconds" }, duplicateShare: 0.3 },
            client,
            payloads(40)
          )
          yield* settle(delivery)
          return received.map(({ at, body }) => `${at - start}:${body}`)
        }).pipe(Random.withSeed(seed))
      const first = yield* run("alpha")
      assert.deepStrictEqual(yield* run("alpha"), first)
      assert.notDeepEqual(yield* run("beta"), first)
    }))

  it.effect("idle waits for copies enqueued while it waits, and returns at once when nothing is pending", () =>
    Effect.gen(function*() {
      const { client, received } = fakeClient()
      const delivery = yield* deliver({ delay: { min: "5 seconds", max: "5 seconds" } }, client, [])
      yield* delivery.idle
      yield* delivery.enqueue({ id: "evt_1" })
      const fiber = yield* Effect.forkChild(delivery.idle)
      yield* TestClock.adjust("3 seconds")
      yield* delivery.enqueue({ id: "evt_2" })
      yield* TestClock.adjust("3 seconds")
      assert.isUndefined(fiber.pollUnsafe(), "the second copy is still pending")
      yield* TestClock.adjust("3 seconds")
      yield* Fiber.join(fiber)
      assert.strictEqual(received.length, 2)
    }))

  it.effect("closing the scope interrupts what is still pending", () =>
    Effect.gen(function*() {
      const { client, received } = fakeClient()
      yield* Effect.scoped(deliver({ delay: { min: "1 minute", max: "1 minute" } }, client, payloads(3)))
      yield* TestClock.adjust("2 minutes")
      assert.strictEqual(received.length, 0)
    }))

  it.live("delivers over real HTTP to a local server, retrying its 500s", () =>
    Effect.gen(function*() {
      const hits: Array<{ body: string; signature: string | undefined }> = []
      const server = yield* NodeHttpServer.make(() => createServer(), { port: 0, host: "127.0.0.1" })
      yield* server.serve(Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const body = yield* request.text
        hits.push({ body, signature: request.headers["x-test-signature"] })
        // Every payload fails on its first arrival.
        const first = hits.filter((hit) => hit.body === body).length === 1
        return HttpServerResponse.empty({ status: first ? 500 : 200 })
      }))
      const delivery = yield* WebhookDelivery.make({
        url: `${HttpServer.formatAddress(server.address)}/hook`,
        sign,
        retryDelay: "20 millis",
        delay: { min: 0, max: "50 millis" }
      })
      for (const payload of payloads(20)) yield* delivery.enqueue(payload)
      yield* delivery.idle.pipe(Effect.timeout(Duration.seconds(20)))
      assert.strictEqual(hits.length, 40)
      assert.isTrue(hits.every((hit) => hit.signature === `len=${hit.body.length}`))
      const deliveries = yield* delivery.deliveries
      assert.isTrue(deliveries.every((copy) => copy.state === "delivered" && copy.attempts === 2))
    }).pipe(Effect.scoped, Effect.provide(NodeHttpClient.layerUndici)))
})
