/**
 * Pacing of a broadcast's hand-offs, on effect/persistence `RateLimiter`: its memory store paces one process, a
 * Redis store paces several workers on one sender together.
 *
 * | limit                        | key                        | algorithm                                          |
 * |------------------------------|----------------------------|----------------------------------------------------|
 * | `messagesPerSecond` R        | transport + sender         | token bucket of capacity 1 refilled every 1/R s    |
 * | `requestBudgets` L per W (*) | transport (the credential) | token bucket of capacity 1 refilled every W/L      |
 * | `batchPacing` N per T        | transport + sender         | fixed window: up to N together, then the next T    |
 *
 * (*) The transport's own (`Capabilities.requestBudgets`, e.g. Keebai's) and any the policy adds.
 *
 * A bucket of capacity 1 spaces hand-offs exactly: the k-th message of a sender goes at k/R s, so N messages take
 * N/R s (a full bucket of capacity R would let R go at once and R more within the same second). Budgets are spaced
 * the same way because a provider may count them in fixed or rolling windows; spacing satisfies both. Message limits are skipped when the provider paces itself
 * (`providerPaced`, Kapso's broadcasts); request budgets never are.
 *
 * A batch of n messages takes n tokens and goes when its last one is due, so a batch never runs ahead of the rate;
 * `batchLimit` keeps a batch within one second's worth (R) and within N, so no window sees a burst above either.
 *
 * The bucket hands out future slots: a fiber that wakes late for its slot (a GC pause, a busy CPU) goes late, and
 * every fiber overdue after a stall goes at once while the later slots stay put, so a one-second window could see
 * more than R. So each sender also keeps the instants of its last R hand-offs, and after every other wait a message
 * waits until the R-th latest is a second old: catching up is allowed, but no window of 1 s — aligned or rolling —
 * sees more than R. The check and the record are one synchronous step. The request then starts at once, and its
 * instant is the clock read once it has run up to its first wait (or its answer): no earlier than any instant the
 * transport takes for it before waiting on anything, which under load may already be the next millisecond. This log
 * lives in this process.
 *
 * A `RateLimited` answer holds the sender (or the whole credential) back until its `retryAfter`; the buckets do not
 * fill up meanwhile (capacity 1), so sending continues at the paced rate, not with a burst. Holds live in this
 * process.
 */
import { Clock, DateTime, Duration, Effect, Fiber, Option } from "effect"
import { RateLimiter } from "effect/persistence"
import type * as Broadcast from "./Broadcast.ts"
import type * as BroadcastTransport from "./BroadcastTransport.ts"
import type * as RetryPolicy from "./RetryPolicy.ts"

export interface Pacer {
  /**
   * Makes `request`, one request carrying `messages` recipients of this broadcast, as soon as the broadcast's limits
   * let it go.
   */
  readonly acquire: <A, E, R>(
    broadcast: Broadcast.Broadcast,
    capabilities: BroadcastTransport.Capabilities,
    messages: number,
    request: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | RateLimiter.RateLimiterError, R>
  /** Holds back every hand-off of the broadcast's sender (or of its whole transport) until `until`. */
  readonly slowDown: (
    broadcast: Broadcast.Broadcast,
    scope: RetryPolicy.SlowDown,
    until: DateTime.Utc
  ) => Effect.Effect<void>
  /** The instant the broadcast's hand-offs are held until, when that is still ahead. */
  readonly heldUntil: (broadcast: Broadcast.Broadcast) => Effect.Effect<Option.Option<DateTime.Utc>>
  /** Sleeps through the broadcast's hold, if any. */
  readonly awaitRelease: (broadcast: Broadcast.Broadcast) => Effect.Effect<void>
}

const senderKey = (broadcast: Broadcast.Broadcast): string => `${broadcast.transport}:${broadcast.sender}`

/** A sender's latest hand-off instants, one per message, in order; those before `first` are no longer needed. */
interface Handoffs {
  times: Array<number>
  first: number
  /** Instants dropped from the front of `times`: `times[i]` is the sender's hand-off number `dropped + i`. */
  dropped: number
  /** How many instants to keep: the largest per-second limit seen on this sender. */
  keep: number
}

/** Appends `messages` hand-offs at `at`; returns the number of the first. */
const record = (handoffs: Handoffs, at: number, messages: number, limit: number): number => {
  const number = handoffs.dropped + handoffs.times.length
  for (let i = 0; i < messages; i++) handoffs.times.push(at)
  handoffs.keep = Math.max(handoffs.keep, limit)
  handoffs.first = Math.max(handoffs.first, handoffs.times.length - handoffs.keep)
  // Drop the stale prefix once it is most of the array, so a long run stays within `keep` instants, amortized.
  if (handoffs.first > 1024 && handoffs.first * 2 > handoffs.times.length) {
    handoffs.times = handoffs.times.slice(handoffs.first)
    handoffs.dropped += handoffs.first
    handoffs.first = 0
  }
  return number
}

/** Moves hand-off `number` and those after it to `at` at least, so the instants stay in order. */
const postpone = (handoffs: Handoffs, number: number, at: number): void => {
  for (let i = Math.max(handoffs.first, number - handoffs.dropped); i < handoffs.times.length; i++) {
    handoffs.times[i] = Math.max(handoffs.times[i]!, at)
  }
}

/** The most recipients one request may carry under the broadcast's pacing. */
export const batchLimit = (policy: Broadcast.Policy, capabilities: BroadcastTransport.Capabilities): number => {
  if (capabilities.providerPaced) return Number.POSITIVE_INFINITY
  const perSecond = policy.messagesPerSecond === undefined
    ? Number.POSITIVE_INFINITY
    : Math.max(1, Math.floor(policy.messagesPerSecond))
  return Math.min(perSecond, policy.batchPacing?.size ?? Number.POSITIVE_INFINITY)
}

/** The transport's request budgets and the policy's, each budget once (a policy may repeat the transport's). */
export const requestBudgets = (
  policy: Broadcast.Policy,
  capabilities: BroadcastTransport.Capabilities
): ReadonlyArray<Broadcast.RequestBudget> => {
  const all = new Map<string, Broadcast.RequestBudget>()
  for (const budget of [...capabilities.requestBudgets, ...(policy.requestBudgets ?? [])]) {
    all.set(`${budget.limit}/${budget.windowMillis}`, budget)
  }
  return [...all.values()]
}

/**
 * About how long the pacing of one claim of `messages` recipients takes, in millis, when nothing else shares its
 * limits: the engine's lease on a claim outlasts it.
 */
export const pacingMillis = (
  policy: Broadcast.Policy,
  capabilities: BroadcastTransport.Capabilities,
  messages: number
): number => {
  const requests = capabilities.maxBatchSize <= 1 ? messages : 1
  const paced = !capabilities.providerPaced
  const rate = paced && policy.messagesPerSecond !== undefined ? (messages * 1000) / policy.messagesPerSecond : 0
  const batches = paced && policy.batchPacing !== undefined
    ? Math.ceil(messages / policy.batchPacing.size) * policy.batchPacing.everyMillis
    : 0
  const budgets = requestBudgets(policy, capabilities).map((budget) => (requests * budget.windowMillis) / budget.limit)
  return rate + batches + Math.max(0, ...budgets)
}

export const make: Effect.Effect<Pacer, never, RateLimiter.RateLimiter> = Effect.gen(function*() {
  const limiter = yield* RateLimiter.RateLimiter
  const holds = new Map<string, number>()
  const handoffs = new Map<string, Handoffs>()

  const spaced = (key: string, perWindow: number, windowMillis: number, tokens: number) =>
    RateLimiter.sleep(limiter, {
      algorithm: "token-bucket",
      key,
      limit: 1,
      window: Duration.millis(windowMillis / perWindow),
      tokens
    })

  const logOf = (key: string): Handoffs => {
    const known = handoffs.get(key)
    if (known !== undefined) return known
    const log: Handoffs = { times: [], first: 0, dropped: 0, keep: 0 }
    handoffs.set(key, log)
    return log
  }

  // Makes `request` once `messages` more fit in the sender's last second (see the module's doc).
  const withinSecond = <A, E, R>(key: string, perSecond: number, messages: number, request: Effect.Effect<A, E, R>) => {
    const limit = Math.max(1, Math.floor(perSecond))
    // The n messages fit when the (limit - n + 1)-th latest hand-off is at least a second old.
    const back = Math.max(1, limit - messages + 1)
    const attempt: Effect.Effect<A, E, R> = Effect.clockWith((clock) =>
      Effect.suspend(() => {
        const log = logOf(key)
        const now = clock.currentTimeMillisUnsafe()
        const index = log.times.length - back
        const free = index >= log.first ? log.times[index]! + 1000 : now
        if (free > now) return Effect.andThen(Effect.sleep(free - now), attempt)
        // Recorded before the request starts, in case it lets other fibers run before its first wait.
        const number = record(log, now, messages, limit)
        return Effect.flatMap(Effect.forkChild(request, { startImmediately: true }), (fiber) => {
          postpone(log, number, clock.currentTimeMillisUnsafe())
          return Fiber.join(fiber)
        })
      })
    )
    return attempt
  }

  const acquire: Pacer["acquire"] = (broadcast, capabilities, messages, request) => {
    const budgets = requestBudgets(broadcast.policy, capabilities)
    const perSecond = capabilities.providerPaced ? undefined : broadcast.policy.messagesPerSecond
    const batchPacing = capabilities.providerPaced ? undefined : broadcast.policy.batchPacing
    // The per-message hot path of an unpaced broadcast: nothing to wait for.
    if (perSecond === undefined && batchPacing === undefined && budgets.length === 0) return request
    const waits = Effect.gen(function*() {
      if (perSecond !== undefined) {
        yield* spaced(`crier:messages:${senderKey(broadcast)}`, perSecond, 1000, messages)
      }
      if (batchPacing !== undefined) {
        yield* RateLimiter.sleep(limiter, {
          algorithm: "fixed-window",
          key: `crier:batches:${senderKey(broadcast)}`,
          limit: batchPacing.size,
          window: Duration.millis(batchPacing.everyMillis),
          tokens: messages
        })
      }
      for (const budget of budgets) {
        yield* spaced(
          `crier:requests:${broadcast.transport}:${budget.limit}/${budget.windowMillis}`,
          budget.limit,
          budget.windowMillis,
          1
        )
      }
    })
    // Last, so the instant recorded is the one the request starts at.
    return Effect.andThen(
      waits,
      perSecond === undefined ? request : withinSecond(senderKey(broadcast), perSecond, messages, request)
    )
  }

  const keys = (broadcast: Broadcast.Broadcast) => [senderKey(broadcast), broadcast.transport]

  const slowDown: Pacer["slowDown"] = (broadcast, scope, until) =>
    Effect.sync(() => {
      const key = scope === "sender" ? senderKey(broadcast) : broadcast.transport
      holds.set(key, Math.max(holds.get(key) ?? 0, DateTime.toEpochMillis(until)))
    })

  const notHeld = Effect.succeed(Option.none<DateTime.Utc>())

  // Asked before every message: with no hold ever made, no clock read either.
  const heldUntil: Pacer["heldUntil"] = (broadcast) =>
    holds.size === 0 ? notHeld : Effect.map(Clock.currentTimeMillis, (now) => {
      const until = Math.max(0, ...keys(broadcast).map((key) => holds.get(key) ?? 0))
      return until > now ? Option.some(DateTime.makeUnsafe(until)) : Option.none()
    })

  const awaitRelease: Pacer["awaitRelease"] = (broadcast) =>
    Effect.gen(function*() {
      // A hold may be extended while we sleep: check again until none is ahead.
      while (true) {
        const until = yield* heldUntil(broadcast)
        if (Option.isNone(until)) return
        yield* Effect.sleep(DateTime.toEpochMillis(until.value) - (yield* Clock.currentTimeMillis))
      }
    })

  return { acquire, slowDown, heldUntil, awaitRelease }
})
