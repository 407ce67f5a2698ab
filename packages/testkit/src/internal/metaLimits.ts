/**
 * Meta's two send limits, as the emulator counts them on its clock (epoch millis):
 *
 * - throughput: messages per phone number in any 1-second window, inbound ones included (130429);
 * - pair rate: one message per `everyMillis` to the same user, with bursts of up to `burst` borrowing ahead
 *   (131056): a token bucket per business number and user.
 */

/** The last `limit` instants a number sent or received a message, in a ring. */
export interface Throughput {
  /** Counts a send at `now` if the window has room; false (nothing counted) otherwise. */
  readonly admit: (now: number) => boolean
  /** Counts an inbound message: it takes room, and is never refused. */
  readonly record: (now: number) => void
}

export const throughput = (limit: number, windowMillis = 1000): Throughput => {
  const times = new Array<number>(limit).fill(Number.NEGATIVE_INFINITY)
  let oldest = 0
  const record = (now: number) => {
    times[oldest] = now
    oldest = (oldest + 1) % limit
  }
  return {
    admit: (now) => {
      if (now - times[oldest]! < windowMillis) return false
      record(now)
      return true
    },
    record
  }
}

export interface PairRate {
  /** Takes one message's quota for this pair at `now`; false when the pair has none left. */
  readonly take: (pair: string, now: number) => boolean
}

export const pairRate = (options: { readonly everyMillis: number; readonly burst: number }): PairRate => {
  const buckets = new Map<string, { tokens: number; at: number }>()
  return {
    take: (pair, now) => {
      const bucket = buckets.get(pair) ?? { tokens: options.burst, at: now }
      const tokens = Math.min(options.burst, bucket.tokens + (now - bucket.at) / options.everyMillis)
      if (tokens < 1) return false
      buckets.set(pair, { tokens: tokens - 1, at: now })
      return true
    }
  }
}
