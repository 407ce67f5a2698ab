/**
 * Webhook delivery the way providers do it, for the emulators: each payload goes out in its own fiber after a
 * random delay (so deliveries arrive out of order), a share of them twice, signed over the exact raw body by the
 * caller's function, and retried with a doubling backoff on a non-2xx answer, a network error or a timeout until
 * `maxAttempts`. Every attempt is recorded for assertions, and `idle` waits until every delivery enqueued so far
 * was delivered or given up.
 *
 * Randomness comes from the Effect `Random` in force when the delivery is made (seed it with `Random.withSeed`),
 * drawn when a payload is enqueued, so the same seed and the same payloads give the same delays and duplicates.
 * Waits run on the Effect `Clock`.
 */
import { Cause, Clock, Duration, Effect, Exit, FiberSet, Latch, Queue, Random } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"

export interface Options {
  readonly url: string
  /** Headers that sign one body, e.g. `{ "x-hub-signature-256": "sha256=…" }`. */
  readonly sign: (rawBody: string) => Readonly<Record<string, string>>
  /** Wait before the first attempt of each copy, drawn uniformly in [min, max]. Default none. */
  readonly delay?: { readonly min: Duration.Input; readonly max: Duration.Input } | undefined
  /** Share of payloads (0–1) delivered twice; each copy has its own delay and retries. Default 0. */
  readonly duplicateShare?: number | undefined
  /** Attempts per copy before it is given up. Default 5. */
  readonly maxAttempts?: number | undefined
  /** Wait before the second attempt; each later one doubles it, plus up to half of it in jitter. Default 1 s. */
  readonly retryDelay?: Duration.Input | undefined
  /** How long one attempt may take before it counts as failed. Default 10 s. */
  readonly timeout?: Duration.Input | undefined
  /** Attempts in flight at once. Default 64. */
  readonly concurrency?: number | undefined
}

/** One POST of one copy. */
export interface Attempt {
  /** The copy (see `Delivery.id`). */
  readonly delivery: number
  /** The enqueued payload, from 1 in enqueue order. */
  readonly payload: number
  /** From 1. */
  readonly attempt: number
  /** When the attempt started, in epoch millis on the Effect `Clock`. */
  readonly at: number
  /** The answer's status; none after a network error or a timeout. */
  readonly status: number | undefined
  /** What went wrong, when the attempt failed. */
  readonly error: string | undefined
  readonly ok: boolean
}

/** One copy of one payload. */
export interface Delivery {
  /** From 1 in the order copies were made. */
  readonly id: number
  readonly payload: number
  /** The JSON body as sent, byte for byte. */
  readonly body: string
  /** The second copy of a payload delivered twice. */
  readonly duplicate: boolean
  readonly state: "pending" | "delivered" | "failed"
  readonly attempts: number
}

export interface WebhookDelivery {
  /** Sends `payload` (as JSON) in the background; returns at once. */
  readonly enqueue: (payload: unknown) => Effect.Effect<void>
  readonly attempts: Effect.Effect<ReadonlyArray<Attempt>>
  readonly deliveries: Effect.Effect<ReadonlyArray<Delivery>>
  /** Waits until every copy enqueued so far (and any enqueued meanwhile) is delivered or given up. */
  readonly idle: Effect.Effect<void>
}

interface MutableDelivery {
  readonly id: number
  readonly payload: number
  readonly body: string
  readonly duplicate: boolean
  state: Delivery["state"]
  attempts: number
}

const messageOf = (error: unknown): string => error instanceof Error ? error.message : String(error)

/** The wait before attempt `attempt + 1`: `retryDelay` doubled per earlier retry, plus up to half in jitter. */
export const backoff = (retryDelay: Duration.Input, attempt: number, jitter: number): Duration.Duration =>
  Duration.millis(Duration.toMillis(retryDelay) * 2 ** (attempt - 1) * (1 + jitter / 2))

/** Deliveries live in the scope: closing it interrupts whatever is still pending. */
export const make = Effect.fn("WebhookDelivery.make")(function*(options: Options) {
  const client = yield* HttpClient.HttpClient
  const random = yield* Random.Random
  // Copies waiting out a delay or a backoff; ready copies wait in `ready` for one of `concurrency` workers (a
  // semaphore would wake every waiter on each release: quadratic with tens of thousands queued).
  const waiting = yield* FiberSet.make<void, never>()
  const ready = yield* Queue.unbounded<MutableDelivery>()
  const settled = yield* Latch.make(true)
  const maxAttempts = options.maxAttempts ?? 5
  const retryDelay = options.retryDelay ?? Duration.seconds(1)
  const timeout = options.timeout ?? Duration.seconds(10)
  const delayRange = options.delay === undefined ? undefined : {
    min: Duration.toMillis(options.delay.min),
    max: Duration.toMillis(options.delay.max)
  }
  const attempts: Array<Attempt> = []
  const deliveries: Array<MutableDelivery> = []
  // Jitters drawn at enqueue time, one per possible retry, so a seed fixes every wait.
  const jitters = new Map<number, ReadonlyArray<number>>()
  let payloads = 0
  let outstanding = 0

  const post = (body: string) =>
    HttpClientRequest.post(options.url).pipe(
      HttpClientRequest.setHeaders(options.sign(body)),
      HttpClientRequest.bodyText(body, "application/json"),
      client.execute,
      // Reading the body frees the connection for the next attempt.
      Effect.flatMap((response) => Effect.as(Effect.ignore(response.text), response.status)),
      Effect.timeout(timeout)
    )

  const after = (wait: number, delivery: MutableDelivery) =>
    wait > 0
      ? Effect.asVoid(FiberSet.run(waiting, Effect.andThen(Effect.sleep(wait), Queue.offer(ready, delivery))))
      : Effect.asVoid(Queue.offer(ready, delivery))

  const finish = (delivery: MutableDelivery, state: "delivered" | "failed") =>
    Effect.sync(() => {
      delivery.state = state
      jitters.delete(delivery.id)
      if (--outstanding === 0) settled.openUnsafe()
    })

  const attempt = (delivery: MutableDelivery) =>
    Effect.gen(function*() {
      const number = delivery.attempts + 1
      const at = yield* Clock.currentTimeMillis
      // A defect counts as a failed attempt too: a delivery never stays pending silently.
      const answer = yield* Effect.exit(post(delivery.body))
      const status = Exit.isSuccess(answer) ? answer.value : undefined
      const ok = status !== undefined && status >= 200 && status < 300
      const error = ok
        ? undefined
        : Exit.isFailure(answer)
        ? messageOf(Cause.squash(answer.cause))
        : `answered HTTP ${status}`
      delivery.attempts = number
      attempts.push({ delivery: delivery.id, payload: delivery.payload, attempt: number, at, status, error, ok })
      if (ok) return yield* finish(delivery, "delivered")
      if (number >= maxAttempts) return yield* finish(delivery, "failed")
      const jitter = jitters.get(delivery.id)?.[number - 1] ?? 0
      yield* after(Duration.toMillis(backoff(retryDelay, number, jitter)), delivery)
    })

  const worker = Effect.forever(Effect.flatMap(Queue.take(ready), attempt))
  for (let i = 0; i < (options.concurrency ?? 64); i++) yield* Effect.forkScoped(worker)

  const enqueue = (payload: unknown) =>
    Effect.gen(function*() {
      const body = JSON.stringify(payload)
      const id = ++payloads
      const twice = (yield* Random.next) < (options.duplicateShare ?? 0)
      for (const duplicate of twice ? [false, true] : [false]) {
        const delay = delayRange === undefined
          ? 0
          : Math.round(delayRange.min + (yield* Random.next) * (delayRange.max - delayRange.min))
        const drawn: Array<number> = []
        for (let i = 1; i < maxAttempts; i++) drawn.push(yield* Random.next)
        const delivery: MutableDelivery = {
          id: deliveries.length + 1,
          payload: id,
          body,
          duplicate,
          state: "pending",
          attempts: 0
        }
        deliveries.push(delivery)
        jitters.set(delivery.id, drawn)
        if (outstanding++ === 0) settled.closeUnsafe()
        yield* after(delay, delivery)
      }
    }).pipe(Effect.provideService(Random.Random, random))

  return {
    enqueue,
    attempts: Effect.sync(() => attempts.slice()),
    deliveries: Effect.sync(() => deliveries.map((delivery) => ({ ...delivery }))),
    idle: settled.await
  } satisfies WebhookDelivery
})
