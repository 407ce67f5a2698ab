/**
 * One phone number's send slots. Slots are spaced 1/rate apart on an absolute schedule, so N sends take N/rate
 * seconds whatever the timer's precision. A slot missed by at most `catchUpMillis` — the process was busy (a
 * synchronous database write), or the engine was between two batches — is still taken, at once: a short stall
 * does not lower the rate, and no second sees more than `rate × (1 + catchUpMillis / 1000)` sends. After a longer
 * pause the schedule starts afresh: idle time is never made up with a burst.
 *
 * A throughput answer from Meta (130429) halves the rate, which then climbs back linearly to the full rate over
 * `recoveryMillis`: a number whose real limit is below the configured rate settles near it instead of hitting the
 * limit over and over. Answers arriving together (the sends in flight all hit the same wall) halve it once.
 */
import { Clock, Effect } from "effect"

export interface Options {
  readonly messagesPerSecond: number
  readonly recoveryMillis: number
  readonly catchUpMillis: number
  /** The rate never drops below this. */
  readonly floor: number
}

export interface Throughput {
  /** Waits for this number's next send slot. */
  readonly acquire: Effect.Effect<void>
  /** Meta said the number is over its throughput: slow down. */
  readonly slowDown: Effect.Effect<void>
}

export const make = (options: Options): Throughput => {
  const full = options.messagesPerSecond
  let next = Number.NEGATIVE_INFINITY
  let reduced: { readonly to: number; readonly at: number } | undefined

  const rateAt = (now: number): number => {
    if (reduced === undefined) return full
    const climbed = reduced.to + ((full - reduced.to) * (now - reduced.at)) / options.recoveryMillis
    if (climbed < full) return climbed
    reduced = undefined
    return full
  }

  const acquire = Effect.flatMap(Clock.currentTimeMillis, (now) => {
    const at = next >= now - options.catchUpMillis ? next : now
    next = at + 1000 / rateAt(Math.max(at, now))
    return at > now ? Effect.sleep(at - now) : Effect.void
  })

  const slowDown = Effect.map(Clock.currentTimeMillis, (now) => {
    const current = rateAt(now)
    // One halving per burst of answers: the ones already in flight carry no news.
    if (reduced !== undefined && now - reduced.at < 1000) return
    reduced = { to: Math.max(options.floor, current / 2), at: now }
    // Meta just said too many: no making up for missed slots now.
    next = Math.max(next, now)
  })

  return { acquire, slowDown }
}
