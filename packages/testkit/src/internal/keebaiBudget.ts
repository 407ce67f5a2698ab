/**
 * A token's request budget, counted in sliding windows: the strictest reading of "60 requests per minute and 1,000
 * per hour", so a client that passes here passes a provider counting in fixed windows too.
 */

export interface Budget {
  readonly limit: number
  readonly windowMillis: number
}

export const keebaiBudgets: ReadonlyArray<Budget> = [
  { limit: 60, windowMillis: 60_000 },
  { limit: 1000, windowMillis: 3_600_000 }
]

export type Admission = { readonly ok: true } | { readonly ok: false; readonly retryAfterMillis: number }

/**
 * Admits a request at `now` when every budget has room, and then records it in `log` (the sorted instants of the
 * requests admitted so far, pruned here). Otherwise answers how long until every budget has room again.
 */
export const admit = (log: Array<number>, budgets: ReadonlyArray<Budget>, now: number): Admission => {
  const longest = Math.max(0, ...budgets.map((budget) => budget.windowMillis))
  let stale = 0
  while (stale < log.length && log[stale]! <= now - longest) stale++
  if (stale > 0) log.splice(0, stale)
  let wait = 0
  for (const { limit, windowMillis } of budgets) {
    let first = log.length
    while (first > 0 && log[first - 1]! > now - windowMillis) first--
    const inWindow = log.length - first
    // Room comes back when the oldest requests that make the window full leave it.
    if (inWindow >= limit) wait = Math.max(wait, log[first + inWindow - limit]! + windowMillis - now)
  }
  if (wait > 0) return { ok: false, retryAfterMillis: wait }
  log.push(now)
  return { ok: true }
}
