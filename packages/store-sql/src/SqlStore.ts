/**
 * `ProgressStore` over any effect/sql `SqlClient` (SQLite or PostgreSQL): the durable store, and what the docs call
 * `ProgressStore.layerSql` (core knows no SQL, so it lives here). It owns its schema (applied when the layer starts,
 * see `internal/migrations.ts`) and maps every `SqlError` to `StoreError`. Use `SqliteStore` or `PostgresStore` for
 * a ready client with the settings the store relies on; bring your own client to `layer` otherwise (for SQLite, set
 * WAL and a busy timeout yourself).
 *
 * How the port's promises are kept:
 * - Every write is one transaction; a batch (insert, receipts, status events) is one statement per table for its rows
 *   whatever its size, the batch travelling as one JSON parameter. The status counts live in `crier_counts`, changed
 *   in the same transaction as the rows, so `counts` reads one row.
 * - Status events read their rows under lock, merge each item in order with the rules every store shares
 *   (`RecipientUpdate`) and write the changed rows back. Receipts do the same for rows that are no longer
 *   `submitting`; for the others (nearly all) the outcome is the merge, so it is written without reading the row
 *   (`receiveSubmitting`).
 * - Claims take the lowest seqs among rows never claimed (`crier_recipients_fresh`) and rows back in `pending` whose
 *   time has come (`crier_recipients_ready`), so a claim's cost does not grow with the rows already sent (on
 *   PostgreSQL, whose index keeps the entries of claimed rows until a vacuum, by reading on from the last seq it
 *   claimed). On PostgreSQL each candidate is locked with `FOR UPDATE SKIP LOCKED`, so concurrent claimers
 *   (processes, machines) never take the same row, and a claim is one statement, counts included; on SQLite the
 *   writer lock does that.
 * - Row locks are taken in (broadcast, seq) order and the counts row last, so concurrent writers do not deadlock;
 *   PostgreSQL transactions that still lose a deadlock or a serialization conflict run again.
 */
import type * as Address from "@crier/core/Address"
import type * as Broadcast from "@crier/core/Broadcast"
import * as BroadcastStatus from "@crier/core/BroadcastStatus"
import * as ProgressStore from "@crier/core/ProgressStore"
import * as RecipientStatus from "@crier/core/RecipientStatus"
import * as RecipientUpdate from "@crier/core/RecipientUpdate"
import type * as StatusEvent from "@crier/core/StatusEvent"
import { DateTime, Effect, Layer, Option, Result } from "effect"
import { SqlClient, SqlError } from "effect/sql"
import * as Dialect from "./internal/dialect.ts"
import * as Migrations from "./internal/migrations.ts"
import * as Progress from "./internal/progress.ts"
import * as Rows from "./internal/rows.ts"
import { toStoreError } from "./internal/sqlError.ts"

type Store = (typeof ProgressStore.ProgressStore)["Service"]

interface RowKey {
  readonly broadcast_id: string
  readonly seq: number
}

const key = (broadcastId: string, seq: number): string => `${broadcastId}:${seq}`

const compare = (a: string, b: string): number => a < b ? -1 : a > b ? 1 : 0

/** Maps the `SqlError`s of a store method to `StoreError`s naming the method. */
const sqlFailures = (operation: string) =>
<A, E, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, Exclude<E, SqlError.SqlError> | ProgressStore.StoreError, R> =>
  Effect.mapError(
    effect,
    (error) => SqlError.isSqlError(error) ? toStoreError(operation)(error) : error as Exclude<E, SqlError.SqlError>
  )

const decoded = <A>(result: Result.Result<A, ProgressStore.StoreError>) => Effect.fromResult(result)

/**
 * Builds the store on the `SqlClient` in context, after bringing its schema up to date. Fails with
 * `StoreError { reason: "Unavailable" }` when the database cannot be reached, and `Unknown` on a dialect other than
 * SQLite or PostgreSQL.
 */
export const make: Effect.Effect<Store, ProgressStore.StoreError, SqlClient.SqlClient> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const dialect = yield* Dialect.make(sql)
  yield* Migrations.run(sql, dialect).pipe(sqlFailures("migrate"))

  const broadcastSelect = sql.literal(Rows.broadcastColumns.join(", "))
  const recipientSelect = sql.literal(Rows.recipientColumns.join(", "))
  const stateSelect = sql.literal(Rows.stateColumns.map((column) => `r.${column}`).join(", "))
  // Every state column but the key.
  const stateAssignments = sql.literal(
    Rows.stateWriteColumns.slice(2).map(([column]) => `${column} = v.${column}`).join(", ")
  )
  const countAssignments = sql.literal(
    RecipientStatus.tags.map((tag) => `${tag} = c.${tag} + v.${tag}`).join(", ")
  )

  const now = Effect.map(DateTime.now, DateTime.toEpochMillis)

  // Per broadcast, the highest seq this store claimed among rows never claimed before: PostgreSQL claims read on from
  // there (SQLite's partial index drops a row as soon as it is claimed).
  const claimedThrough = new Map<string, number>()

  // Applies count changes, broadcast by broadcast in id order: the counts row is the last lock a write takes.
  const applyDeltas = (deltas: ReadonlyMap<string, Progress.Deltas>) =>
    Effect.forEach(
      Array.from(deltas).filter(([, d]) => RecipientStatus.tags.some((tag) => d[tag] !== 0)).sort(([a], [b]) =>
        compare(a, b)
      ),
      ([broadcastId, d]) =>
        sql`UPDATE crier_counts AS c SET ${countAssignments}
          FROM ${dialect.recordset([{ broadcast_id: broadcastId, ...d }], Rows.countColumns)}
          WHERE c.broadcast_id = v.broadcast_id`,
      { discard: true }
    )

  const deltasOf = (deltas: Map<string, Progress.Deltas>, broadcastId: string): Progress.Deltas => {
    let found = deltas.get(broadcastId)
    if (found === undefined) {
      found = Progress.noDeltas()
      deltas.set(broadcastId, found)
    }
    return found
  }

  // Reads the state of these rows and locks them until the transaction ends, in (broadcast, seq) order.
  const lockRows = (keys: ReadonlyArray<RowKey>) =>
    keys.length === 0 ? Effect.succeed(new Map<string, Progress.State>()) : Effect.flatMap(
      sql`SELECT ${stateSelect}
        FROM ${dialect.recordset(keys, [["broadcast_id", "text"], ["seq", "int"]])}
        JOIN crier_recipients AS r ON r.broadcast_id = v.broadcast_id AND r.seq = v.seq
        ORDER BY r.broadcast_id, r.seq ${dialect.forUpdate("r")}`,
      (rows) =>
        Effect.map(decoded(Rows.decodeAll(rows, Rows.decodeState)), (states) => {
          const byKey = new Map<string, Progress.State>()
          for (const state of states) byKey.set(key(state.broadcastId, state.seq), state)
          return byKey
        })
    )

  const writeBack = (changed: ReadonlyArray<Progress.State>) =>
    changed.length === 0 ? Effect.void : Effect.asVoid(
      sql`UPDATE crier_recipients AS r SET ${stateAssignments}
        FROM ${dialect.recordset(changed.map(Rows.stateJson), Rows.stateWriteColumns)}
        WHERE r.broadcast_id = v.broadcast_id AND r.seq = v.seq`
    )

  /**
   * Applies a batch to its locked rows in order, then writes the rows that changed, adding their count changes to
   * `deltas`. `apply` makes each change through `change(row, mutate)`, where `mutate` says whether it changed the row.
   */
  const changeRows = (
    keys: ReadonlyArray<RowKey>,
    deltas: Map<string, Progress.Deltas>,
    apply: (
      rows: ReadonlyMap<string, Progress.State>,
      change: (row: Progress.State, mutate: () => boolean) => boolean
    ) => void
  ) =>
    Effect.gen(function*() {
      const rows = yield* lockRows(keys)
      // Each changed row and its status before the batch.
      const before = new Map<Progress.State, RecipientStatus.Tag>()
      const change = (row: Progress.State, mutate: () => boolean): boolean => {
        const from = row.status._tag
        const changed = mutate()
        if (changed && !before.has(row)) before.set(row, from)
        return changed
      }
      apply(rows, change)
      for (const [row, from] of before) Progress.move(deltasOf(deltas, row.broadcastId), from, row.status._tag)
      yield* writeBack(Array.from(before.keys()))
    })

  /**
   * Records the outcomes of rows still `submitting` (the normal case: the receipt of the batch just claimed) in one
   * statement, without reading them first. Such a row was never accepted, failed or delivered (no status returns to
   * `submitting`), so it has no timestamp, provider id or failure to merge with: the outcome's values are the merge
   * `RecipientUpdate.receive` would compute. Returns the seqs it recorded.
   */
  const receiveSubmitting = (
    id: Broadcast.BroadcastId,
    outcomes: ReadonlyArray<ProgressStore.ReceiptOutcome>,
    now: number
  ) =>
    Effect.flatMap(
      sql`UPDATE crier_recipients AS r SET
          status = v.status,
          failure_code = v.failure_code,
          failure_reason = v.failure_reason,
          attempts = r.attempts + v.attempts_delta,
          provider_message_id = COALESCE(r.provider_message_id, v.provider_message_id),
          last_error = COALESCE(v.last_error, r.last_error),
          not_before = COALESCE(v.not_before, r.not_before),
          ready_at = CASE WHEN v.status = 'pending' THEN COALESCE(v.not_before, r.not_before, 0) ELSE r.ready_at END,
          accepted_at = COALESCE(r.accepted_at, v.accepted_at),
          failed_at = COALESCE(r.failed_at, v.failed_at),
          updated_at = ${now}
        FROM ${dialect.recordset(outcomes.map((outcome) => Rows.receiptJson(id, outcome, now)), Rows.receiptColumns)}
        WHERE r.broadcast_id = v.outcome_broadcast AND r.seq = v.outcome_seq AND r.status = 'submitting'
        RETURNING seq`,
      (rows) => Effect.map(decoded(Rows.decodeAll(rows, Rows.decodeSeq)), (seqs) => new Set(seqs))
    )

  // A move of many rows by one statement returning their seqs (recovery, cancel), with the count change it implies.
  const moveAll = (
    id: Broadcast.BroadcastId,
    from: RecipientStatus.Tag,
    to: RecipientStatus.Tag,
    statement: Effect.Effect<ReadonlyArray<unknown>, SqlError.SqlError>
  ) =>
    dialect.write(Effect.gen(function*() {
      const moved = (yield* statement).length
      const deltas = Progress.noDeltas()
      Progress.move(deltas, from, to, moved)
      yield* applyDeltas(new Map([[id, deltas]]))
      return moved
    }))

  const readBroadcast = (
    id: Broadcast.BroadcastId,
    lock: boolean
  ): Effect.Effect<
    Broadcast.Broadcast,
    ProgressStore.BroadcastNotFound | ProgressStore.StoreError | SqlError.SqlError
  > =>
    Effect.flatMap(
      sql`SELECT ${broadcastSelect} FROM crier_broadcasts WHERE id = ${id} ${
        lock ? dialect.forUpdate("crier_broadcasts") : sql.literal("")
      }`,
      (rows): Effect.Effect<Broadcast.Broadcast, ProgressStore.BroadcastNotFound | ProgressStore.StoreError> =>
        rows.length === 0
          ? Effect.fail(new ProgressStore.BroadcastNotFound({ broadcastId: id }))
          : decoded(Rows.decodeBroadcast(rows[0]))
    )

  const store: Store = {
    createBroadcast: Effect.fn("ProgressStore.createBroadcast")(
      function*(broadcast) {
        yield* dialect.write(Effect.gen(function*() {
          yield* sql`INSERT INTO crier_broadcasts ${sql.insert(Rows.broadcastRow(broadcast))}`
          yield* sql`INSERT INTO crier_counts (broadcast_id) VALUES (${broadcast.id})`
        })).pipe(
          Effect.catchIf(
            (error) => error.reason._tag === "UniqueViolation",
            () =>
              Effect.fail(
                new ProgressStore.StoreError({
                  reason: "Conflict",
                  message: `broadcast ${broadcast.id} already exists`
                })
              )
          )
        )
      },
      sqlFailures("createBroadcast")
    ),

    getBroadcast: Effect.fn("ProgressStore.getBroadcast")(
      function*(id) {
        return yield* readBroadcast(id, false)
      },
      sqlFailures("getBroadcast")
    ),

    listBroadcasts: Effect.fn("ProgressStore.listBroadcasts")(
      function*(options) {
        const rows = yield* sql`SELECT ${broadcastSelect} FROM crier_broadcasts ORDER BY created_at DESC, id DESC ${
          options?.limit === undefined ? sql.literal("") : sql`LIMIT ${options.limit}`
        }`
        return yield* decoded(Rows.decodeAll(rows, Rows.decodeBroadcast))
      },
      sqlFailures("listBroadcasts")
    ),

    transitionBroadcast: Effect.fn("ProgressStore.transitionBroadcast")(
      function*(id, request) {
        return yield* dialect.write(Effect.gen(function*() {
          const current = yield* readBroadcast(id, true)
          if (!request.from.includes(current.status)) {
            return yield* ProgressStore.refusedTransition(current.status, request)
          }
          yield* Effect.fromResult(BroadcastStatus.transition(current.status, request.to))
          const patch = request.patch ?? {}
          const set: Record<string, unknown> = { status: request.to }
          if (patch.statusReason !== undefined) set.status_reason = patch.statusReason
          if (patch.remoteId !== undefined) set.remote_id = patch.remoteId
          if (patch.scheduledAt !== undefined) {
            set.scheduled_at = patch.scheduledAt === null ? null : DateTime.toEpochMillis(patch.scheduledAt)
          }
          if (patch.startedAt !== undefined) set.started_at = DateTime.toEpochMillis(patch.startedAt)
          if (patch.completedAt !== undefined) set.completed_at = DateTime.toEpochMillis(patch.completedAt)
          yield* sql`UPDATE crier_broadcasts SET ${sql.update(set)} WHERE id = ${id}`
          return yield* readBroadcast(id, false)
        }))
      },
      sqlFailures("transitionBroadcast")
    ),

    setRemoteId: Effect.fn("ProgressStore.setRemoteId")(
      function*(id, remoteId) {
        const rows = yield* sql`UPDATE crier_broadcasts SET remote_id = ${remoteId} WHERE id = ${id} RETURNING id`
        if (rows.length === 0) return yield* new ProgressStore.BroadcastNotFound({ broadcastId: id })
      },
      sqlFailures("setRemoteId")
    ),

    insertRecipients: Effect.fn("ProgressStore.insertRecipients")(
      function*(id, recipients) {
        const updatedAt = yield* now
        return yield* dialect.write(Effect.gen(function*() {
          const [head] = yield* sql`SELECT status, last_seq FROM crier_broadcasts WHERE id = ${id} ${
            dialect.forUpdate("crier_broadcasts")
          }`
          if (head === undefined) return yield* new ProgressStore.BroadcastNotFound({ broadcastId: id })
          const { lastSeq, status } = yield* decoded(Rows.decodeHead(head))
          if (!BroadcastStatus.acceptsRecipients(status)) {
            return yield* new ProgressStore.BroadcastNotEditable({ broadcastId: id, status })
          }
          // The first index of each address in this call, then the seqs the broadcast already has for them.
          const firstIndex = new Map<string, number>()
          recipients.forEach((recipient, index) => {
            if (!firstIndex.has(recipient.address)) firstIndex.set(recipient.address, index)
          })
          const existing = new Map<string, number>()
          if (lastSeq > 0 && firstIndex.size > 0) {
            // One probe of the (broadcast, address) key per address, whatever the plan: as a join, PostgreSQL's plan
            // for the prepared statement, made while the table was small and kept as it grows (without a vacuum to
            // refresh the statistics), hashes the whole table on every batch.
            const rows = yield* sql`SELECT address, seq FROM (
                SELECT v.address, (
                  SELECT a.seq FROM crier_addresses AS a WHERE a.broadcast_id = ${id} AND a.address = v.address
                ) AS seq
                FROM ${
              dialect.recordset(Array.from(firstIndex.keys(), (address) => ({ address })), [["address", "text"]])
            }
              ) AS found
              WHERE seq IS NOT NULL`
            for (const row of yield* decoded(Rows.decodeAll(rows, Rows.decodeAddressSeq))) {
              existing.set(row.address, row.seq)
            }
          }
          const duplicates: Array<{ readonly index: number; readonly firstSeq: number }> = []
          const fresh: Array<Record<string, string | number>> = []
          const assigned = new Map<string, number>()
          recipients.forEach((recipient, index) => {
            const firstSeq = existing.get(recipient.address) ?? assigned.get(recipient.address)
            if (firstSeq !== undefined) {
              duplicates.push({ index, firstSeq })
              return
            }
            const seq = lastSeq + fresh.length + 1
            assigned.set(recipient.address, seq)
            fresh.push({
              seq,
              address: recipient.address,
              params: Rows.encodeParams(recipient.params),
              metadata: Rows.encodeMetadata(recipient.metadata)
            })
          })
          if (fresh.length > 0) {
            yield* sql`INSERT INTO crier_addresses (broadcast_id, address, seq)
              SELECT ${id}, v.address, v.seq FROM ${dialect.recordset(fresh, [["seq", "int"], ["address", "text"]])}`
            yield* sql`INSERT INTO crier_recipients
              (broadcast_id, seq, address, params, metadata, status, attempts, updated_at)
              SELECT ${id}, v.seq, v.address, v.params, v.metadata, 'pending', 0, ${updatedAt}
              FROM ${
              dialect.recordset(fresh, [["seq", "int"], ["address", "text"], ["params", "text"], ["metadata", "text"]])
            }`
            yield* sql`UPDATE crier_broadcasts SET last_seq = ${lastSeq + fresh.length} WHERE id = ${id}`
            const deltas = Progress.noDeltas()
            deltas.pending = fresh.length
            yield* applyDeltas(new Map([[id, deltas]]))
          }
          return { inserted: fresh.length, duplicates }
        }))
      },
      sqlFailures("insertRecipients")
    ),

    claim: Effect.fn("ProgressStore.claim")(
      function*(id, request) {
        if (request.limit <= 0) return []
        const at = DateTime.toEpochMillis(request.now)
        const leaseUntil = Math.ceil(at + request.leaseMillis)
        const after = claimedThrough.get(id) ?? 0
        const rows = yield* dialect.write(
          dialect.name === "pg"
            // The rows are updated by their `ctid` (each locked, so it cannot move): joining on the key instead lets
            // the planner hash the whole broadcast once it guesses that most of a table is one broadcast. Rows never
            // claimed are read from above the last one this store claimed (`after`): below it, the index holds the
            // entries of claimed rows until a vacuum, and a claim walking them would slow down as the broadcast goes.
            // Fresh rows can remain below it (another claimer skipped them, then rolled back), so they are read too
            // when the rows above do not fill the claim. The counts change in the same statement, after the rows are
            // locked.
            ? sql`WITH above AS (
                SELECT ctid, seq FROM crier_recipients
                WHERE broadcast_id = ${id} AND status = 'pending' AND ready_at IS NULL AND seq > ${after}
                ORDER BY seq LIMIT ${request.limit} FOR UPDATE SKIP LOCKED
              ), below AS (
                SELECT ctid, seq FROM crier_recipients
                WHERE broadcast_id = ${id} AND status = 'pending' AND ready_at IS NULL AND seq <= ${after}
                  AND (SELECT COUNT(*) FROM above) < ${request.limit}
                ORDER BY seq LIMIT ${request.limit} FOR UPDATE SKIP LOCKED
              ), due AS (
                SELECT ctid, seq FROM crier_recipients
                WHERE broadcast_id = ${id} AND status = 'pending' AND ready_at IS NOT NULL AND ready_at <= ${at}
                ORDER BY seq LIMIT ${request.limit} FOR UPDATE SKIP LOCKED
              ), claimed AS (
                UPDATE crier_recipients
                SET status = 'submitting', attempts = attempts + 1, lease_owner = ${request.owner},
                  lease_until = ${leaseUntil}, updated_at = ${at}
                WHERE ctid = ANY(ARRAY(
                  SELECT ctid FROM (
                    SELECT ctid, seq FROM above UNION ALL SELECT ctid, seq FROM below UNION ALL SELECT ctid, seq FROM due
                  ) AS candidates
                  ORDER BY seq LIMIT ${request.limit}
                ))
                RETURNING ${recipientSelect}
              ), counted AS (
                UPDATE crier_counts
                SET pending = pending - (SELECT COUNT(*) FROM claimed),
                  submitting = submitting + (SELECT COUNT(*) FROM claimed)
                WHERE broadcast_id = ${id} AND EXISTS (SELECT 1 FROM claimed)
              )
              SELECT * FROM claimed`
            : Effect.gen(function*() {
              const claimed = yield* sql`UPDATE crier_recipients
                SET status = 'submitting', attempts = attempts + 1, lease_owner = ${request.owner},
                  lease_until = ${leaseUntil}, updated_at = ${at}
                WHERE broadcast_id = ${id} AND seq IN (
                  SELECT seq FROM (
                    SELECT seq FROM crier_recipients
                    WHERE broadcast_id = ${id} AND status = 'pending' AND ready_at IS NULL
                    ORDER BY seq LIMIT ${request.limit}
                  )
                  UNION ALL
                  SELECT seq FROM (
                    SELECT seq FROM crier_recipients
                    WHERE broadcast_id = ${id} AND status = 'pending' AND ready_at IS NOT NULL AND ready_at <= ${at}
                    ORDER BY seq LIMIT ${request.limit}
                  )
                  ORDER BY seq LIMIT ${request.limit}
                )
                RETURNING ${recipientSelect}`
              const deltas = Progress.noDeltas()
              Progress.move(deltas, "pending", "submitting", claimed.length)
              yield* applyDeltas(new Map([[id, deltas]]))
              return claimed
            })
        )
        const recipients = yield* decoded(Rows.decodeAll(rows, Rows.decodeRecipient))
        let through = claimedThrough.get(id) ?? after
        rows.forEach((row, i) => {
          if (Rows.neverClaimed(row)) through = Math.max(through, recipients[i]!.seq)
        })
        claimedThrough.set(id, through)
        return [...recipients].sort((a, b) => a.seq - b.seq)
      },
      sqlFailures("claim")
    ),

    recordReceipts: Effect.fn("ProgressStore.recordReceipts")(
      function*(id, outcomes, at) {
        if (outcomes.length === 0) return
        const now = DateTime.toEpochMillis(at)
        const times = new Map<number, number>()
        for (const outcome of outcomes) times.set(outcome.seq, (times.get(outcome.seq) ?? 0) + 1)
        // A seq named once is independent of the rest of the batch; one named several times is applied in order.
        // In seq order, so the rows are locked in the order every write locks them.
        const single = outcomes.filter((outcome) => times.get(outcome.seq) === 1).sort((a, b) => a.seq - b.seq)
        yield* dialect.write(Effect.gen(function*() {
          const deltas = new Map<string, Progress.Deltas>()
          const recorded = single.length === 0 ? new Set<number>() : yield* receiveSubmitting(id, single, now)
          for (const outcome of single) {
            if (recorded.has(outcome.seq)) {
              Progress.move(deltasOf(deltas, id), "submitting", Progress.outcomeStatus(outcome))
            }
          }
          const rest = outcomes.filter((outcome) => !recorded.has(outcome.seq))
          const keys = Array.from(new Set(rest.map((outcome) => outcome.seq)), (seq) => ({ broadcast_id: id, seq }))
          yield* changeRows(keys, deltas, (rows, change) => {
            for (const outcome of rest) {
              const row = rows.get(key(id, outcome.seq))
              if (row !== undefined) change(row, () => RecipientUpdate.receive(Progress.hooks, row, outcome, now))
            }
          })
          yield* applyDeltas(deltas)
        }))
      },
      sqlFailures("recordReceipts")
    ),

    applyStatusEvents: Effect.fn("ProgressStore.applyStatusEvents")(
      function*(events) {
        const updatedAt = yield* now
        return yield* dialect.write(Effect.gen(function*() {
          // Provider message ids to rows; an id recorded on several rows names the newest broadcast's last row.
          const providerIds = Array.from(
            new Set(
              events.flatMap((event) => event.ref._tag === "ByProviderMessageId" ? [event.ref.providerMessageId] : [])
            )
          )
          const byProviderId = new Map<string, RowKey>()
          if (providerIds.length > 0) {
            const found = yield* sql`SELECT broadcast_id, seq, provider_message_id FROM crier_recipients
              WHERE ${dialect.oneOf("provider_message_id", providerIds)}
              ORDER BY broadcast_id, seq`
            for (const row of yield* decoded(Rows.decodeAll(found, Rows.decodeProviderRef))) {
              byProviderId.set(row.providerMessageId, row)
            }
          }
          const keys = new Map<string, RowKey>()
          const want = (ref: RowKey) => keys.set(key(ref.broadcast_id, ref.seq), ref)
          for (const event of events) {
            if (event.ref._tag === "ById") want({ broadcast_id: event.ref.broadcastId, seq: event.ref.seq })
          }
          byProviderId.forEach(want)
          const result = { applied: 0, unchanged: 0, unknown: 0 }
          const deltas = new Map<string, Progress.Deltas>()
          yield* changeRows(Array.from(keys.values()), deltas, (rows, change) => {
            const rowOf = (ref: StatusEvent.RecipientRef): Progress.State | undefined => {
              if (ref._tag === "ById") return rows.get(key(ref.broadcastId, ref.seq))
              const found = byProviderId.get(ref.providerMessageId)
              return found === undefined ? undefined : rows.get(key(found.broadcast_id, found.seq))
            }
            for (const event of events) {
              const row = rowOf(event.ref)
              if (row === undefined) {
                result.unknown++
                continue
              }
              const hadProviderId = row.providerMessageId !== undefined
              const at = DateTime.toEpochMillis(event.at)
              if (
                RecipientUpdate.isObservable(event.status) &&
                change(
                  row,
                  () =>
                    RecipientUpdate.observe(Progress.hooks, row, event.status, at, event.providerMessageId, updatedAt)
                )
              ) result.applied++
              else result.unchanged++
              // An id recorded now finds this row for the rest of the batch too.
              if (!hadProviderId && row.providerMessageId !== undefined) {
                byProviderId.set(row.providerMessageId, { broadcast_id: row.broadcastId, seq: row.seq })
              }
            }
          })
          yield* applyDeltas(deltas)
          return result
        }))
      },
      sqlFailures("applyStatusEvents")
    ),

    counts: Effect.fn("ProgressStore.counts")(
      function*(id) {
        const [row] = yield* sql`SELECT ${sql.literal(RecipientStatus.tags.join(", "))}
          FROM crier_counts WHERE broadcast_id = ${id}`
        return row === undefined ? ProgressStore.emptyCounts : yield* decoded(Rows.decodeCounts(row))
      },
      sqlFailures("counts")
    ),

    nextRetryAt: Effect.fn("ProgressStore.nextRetryAt")(
      function*(id) {
        const [row] = yield* sql`SELECT MIN(not_before) AS at FROM crier_recipients
          WHERE broadcast_id = ${id} AND status = 'pending' AND ready_at IS NOT NULL AND not_before IS NOT NULL`
        return row === undefined ? Option.none() : Option.fromUndefinedOr(yield* decoded(Rows.decodeInstant(row)))
      },
      sqlFailures("nextRetryAt")
    ),

    recipients: Effect.fn("ProgressStore.recipients")(
      function*(id, query) {
        const rows = yield* sql`SELECT ${recipientSelect} FROM crier_recipients
          WHERE broadcast_id = ${id} AND seq > ${Math.max(0, query.afterSeq ?? 0)} ${
          query.status === undefined ? sql.literal("") : sql`AND status = ${query.status}`
        }
          ORDER BY seq LIMIT ${query.limit + 1}`
        const all = yield* decoded(Rows.decodeAll(rows, Rows.decodeRecipient))
        const items = all.slice(0, query.limit)
        const last = items[items.length - 1]
        return {
          items,
          nextAfterSeq: all.length > query.limit && last !== undefined ? Option.some(last.seq) : Option.none()
        }
      },
      sqlFailures("recipients")
    ),

    latestForAddress: Effect.fn("ProgressStore.latestForAddress")(
      function*(address: Address.Address) {
        const [row] = yield* sql`SELECT ${recipientSelect} FROM crier_recipients
          WHERE address = ${address} AND accepted_at IS NOT NULL
          ORDER BY accepted_at DESC, broadcast_id DESC, seq DESC LIMIT 1`
        return row === undefined ? Option.none() : Option.some(yield* decoded(Rows.decodeRecipient(row)))
      },
      sqlFailures("latestForAddress")
    ),

    releaseLeases: Effect.fn("ProgressStore.releaseLeases")(
      function*(id, request) {
        const updatedAt = yield* now
        const expired = request.expiredBy === undefined
          ? sql.literal("")
          : sql`AND lease_until <= ${DateTime.toEpochMillis(request.expiredBy)}`
        return yield* moveAll(
          id,
          "submitting",
          request.to,
          request.to === "pending"
            ? sql`UPDATE crier_recipients SET status = 'pending', ready_at = COALESCE(not_before, 0),
                updated_at = ${updatedAt}
              WHERE broadcast_id = ${id} AND status = 'submitting' ${expired} RETURNING seq`
            : sql`UPDATE crier_recipients SET status = 'in_doubt', updated_at = ${updatedAt}
              WHERE broadcast_id = ${id} AND status = 'submitting' ${expired} RETURNING seq`
        )
      },
      sqlFailures("releaseLeases")
    ),

    requeueInDoubt: Effect.fn("ProgressStore.requeueInDoubt")(
      function*(id) {
        const updatedAt = yield* now
        return yield* moveAll(
          id,
          "in_doubt",
          "pending",
          sql`UPDATE crier_recipients SET status = 'pending', ready_at = COALESCE(not_before, 0),
              updated_at = ${updatedAt}
            WHERE broadcast_id = ${id} AND status = 'in_doubt' RETURNING seq`
        )
      },
      sqlFailures("requeueInDoubt")
    ),

    cancelPending: Effect.fn("ProgressStore.cancelPending")(
      function*(id) {
        const updatedAt = yield* now
        return yield* moveAll(
          id,
          "pending",
          "skipped",
          sql`UPDATE crier_recipients SET status = 'skipped', skip_reason = 'cancelled', updated_at = ${updatedAt}
            WHERE broadcast_id = ${id} AND status = 'pending' RETURNING seq`
        )
      },
      sqlFailures("cancelPending")
    ),

    failures: Effect.fn("ProgressStore.failures")(
      function*(id) {
        const rows = yield* sql`SELECT failure_reason AS reason, failure_code AS code, COUNT(*) AS n
          FROM crier_recipients WHERE broadcast_id = ${id} AND status = 'failed'
          GROUP BY failure_reason, failure_code`
        const failures = yield* decoded(Rows.decodeAll(rows, Rows.decodeFailure))
        return [...failures].sort((a, b) =>
          b.count - a.count || compare(a.reason, b.reason) || compare(a.code ?? "", b.code ?? "")
        )
      },
      sqlFailures("failures")
    )
  }

  return store
})

/** `ProgressStore` over the `SqlClient` in context; starting it applies the pending migrations. */
export const layer: Layer.Layer<ProgressStore.ProgressStore, ProgressStore.StoreError, SqlClient.SqlClient> = Layer
  .effect(ProgressStore.ProgressStore, make)
