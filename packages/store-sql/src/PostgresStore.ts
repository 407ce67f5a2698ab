/**
 * The store in PostgreSQL (`@effect/sql-pg`), for several workers on several machines: claims lock their rows with
 * `FOR UPDATE SKIP LOCKED`, so workers claiming from one broadcast never take the same recipient, and each claim
 * carries a lease (owner and expiry) for recovery.
 *
 * The password is `Redacted` wherever it travels (in the URL or on its own) and never appears in errors.
 */
import * as ProgressStore from "@crier/core/ProgressStore"
import { PgClient } from "@effect/sql-pg"
import { Config, Effect, Layer, type Redacted } from "effect"
import { Reactivity } from "effect/reactivity"
import { SqlClient } from "effect/sql"
import { toStoreError } from "./internal/sqlError.ts"
import * as SqlStore from "./SqlStore.ts"

/** A connection URL (`postgres://user:password@host:5432/db`) or the client's own settings. */
export type Options = PgClient.PgPoolConfig

const make = Effect.fnUntraced(function*(options: Options) {
  const client = yield* PgClient.make({ applicationName: "crier", ...options }).pipe(
    Effect.mapError(toStoreError("connect to PostgreSQL"))
  )
  return yield* Effect.provideService(SqlStore.make, SqlClient.SqlClient, client)
})

/** The store in the PostgreSQL database `options` name; the pool closes when the layer's scope ends. */
export const layer = (options: Options): Layer.Layer<ProgressStore.ProgressStore, ProgressStore.StoreError> =>
  Layer.effect(ProgressStore.ProgressStore, make(options)).pipe(Layer.provide(Reactivity.layer))

/** The store in the PostgreSQL database at the URL `url` reads (default: the `CRIER_STORE` variable). */
export const layerConfig = (
  url: Config.Config<Redacted.Redacted> = Config.Redacted("CRIER_STORE")
): Layer.Layer<ProgressStore.ProgressStore, ProgressStore.StoreError | Config.ConfigError> =>
  Layer.unwrap(Effect.map(url, (url) => layer({ url })))
