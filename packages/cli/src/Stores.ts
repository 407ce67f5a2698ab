/**
 * Where the durable record lives, from `--store` or `CRIER_STORE`: `sqlite:PATH` (embedded; the default is
 * `sqlite:./.crier/crier.db`, relative paths from the current folder) or `postgres://…` / `postgresql://…`.
 *
 * The store's folder (the SQLite file's, or `./.crier` for PostgreSQL) also holds what the CLI keeps beside it:
 * the logs of background workers and the files saying which process runs which broadcast (`Workers`).
 */
import * as Broadcast from "@crier/core/Broadcast"
import * as ProgressStore from "@crier/core/ProgressStore"
import * as SqliteStore from "@crier/store-sql/SqliteStore"
import { Effect, Layer, Option, Redacted, Result } from "effect"
import { Flag } from "effect/cli"
import { existsSync } from "node:fs"
import { dirname, resolve } from "node:path"
import { UsageError } from "./CliFailure.ts"
import * as Settings from "./Settings.ts"

export type Location =
  | { readonly _tag: "Sqlite"; readonly filename: string }
  | { readonly _tag: "Postgres"; readonly url: Redacted.Redacted<string> }

// Never echo a password, even of a URL we refuse.
const masked = (url: string): string => url.replace(/:[^:@/]*@/, ":***@")

/** Reads a store URL; a SQLite path becomes absolute (from the current folder). */
export const parse = (url: string): Result.Result<Location, UsageError> => {
  const trimmed = url.trim()
  if (trimmed.startsWith("sqlite:")) {
    // `sqlite:///abs/path` and `sqlite:/abs/path` both name /abs/path.
    const path = trimmed.slice("sqlite:".length).replace(/^\/\/(?=\/)/, "")
    return path === ""
      ? Result.fail(new UsageError({ message: "the store URL sqlite: names no file: use sqlite:./.crier/crier.db" }))
      : Result.succeed({ _tag: "Sqlite", filename: resolve(path) })
  }
  if (/^postgres(?:ql)?:\/\//.test(trimmed) && URL.canParse(trimmed)) {
    return Result.succeed({ _tag: "Postgres", url: Redacted.make(trimmed, { label: "CRIER_STORE" }) })
  }
  return Result.fail(
    new UsageError({
      message: `the store URL ${
        masked(trimmed)
      } is not one crier knows: use sqlite:PATH (e.g. sqlite:./.crier/crier.db) or postgres://user:password@host:5432/database (--store or CRIER_STORE)`
    })
  )
}

export const flag = Flag.String("store").pipe(
  Flag.withDescription(
    `Where the record lives: sqlite:PATH or postgres://… (default: CRIER_STORE, else ${Settings.defaultStore})`
  ),
  Flag.optional
)

/** The store `--store` names, else `CRIER_STORE`, else the default. */
export const locate = (flag: Option.Option<string>): Effect.Effect<Location, UsageError> =>
  Effect.flatMap(Settings.store(flag), (url) => Effect.fromResult(parse(url)))

/** The location as a person may see it: a PostgreSQL password is masked. */
export const describe = (location: Location): string =>
  location._tag === "Sqlite" ? `sqlite:${location.filename}` : masked(Redacted.value(location.url))

/** The URL a child process finds the same store with (an absolute SQLite path). */
export const url = (location: Location): Redacted.Redacted<string> =>
  location._tag === "Sqlite" ? Redacted.make(`sqlite:${location.filename}`) : location.url

/** Where worker logs and run files go. */
export const folder = (location: Location): string =>
  location._tag === "Sqlite" ? dirname(location.filename) : resolve(".crier")

export const layer = (location: Location): Layer.Layer<ProgressStore.ProgressStore, ProgressStore.StoreError> =>
  location._tag === "Sqlite"
    ? SqliteStore.layer({ filename: location.filename })
    // Loaded only when used: the PostgreSQL driver is a good part of a command's start-up time.
    : Layer.unwrap(
      Effect.map(
        Effect.promise(() => import("@crier/store-sql/PostgresStore")),
        (PostgresStore) => PostgresStore.layer({ url: location.url })
      )
    )

/** For commands about broadcasts already sent: a SQLite store must exist (opening one would create it empty). */
export const existing = (location: Location): Effect.Effect<Location, UsageError> =>
  Effect.suspend(() =>
    location._tag === "Postgres" || existsSync(location.filename)
      ? Effect.succeed(location)
      : Effect.fail(
        new UsageError({
          message:
            `there is no crier store at ${location.filename}: nothing was sent from here yet; point --store or CRIER_STORE at your store`
        })
      )
  )

/**
 * The store as seen by an engine that runs one broadcast: `listBroadcasts` shows that broadcast only. The engine's
 * `recover` walks `listBroadcasts`, and must not start the send loops of broadcasts other processes (with other
 * transports) run. The price: an account-wide breaker in this engine pauses only this broadcast; the others stop
 * on their own when they meet the same refusal.
 */
export const focus = (
  id: Broadcast.BroadcastId
): Layer.Layer<ProgressStore.ProgressStore, never, ProgressStore.ProgressStore> =>
  Layer.effect(
    ProgressStore.ProgressStore,
    Effect.map(ProgressStore.ProgressStore, (store) =>
      ProgressStore.ProgressStore.of({
        ...store,
        listBroadcasts: () =>
          store.getBroadcast(id).pipe(
            Effect.map((broadcast): ReadonlyArray<Broadcast.Broadcast> => [broadcast]),
            Effect.catchTag("BroadcastNotFound", () => Effect.succeed([]))
          )
      }))
  )
