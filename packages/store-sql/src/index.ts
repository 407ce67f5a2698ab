/**
 * crier's durable `ProgressStore` over effect/sql: `SqliteStore` (embedded, the default), `PostgresStore` (several
 * workers, several machines), and `SqlStore` over any `SqlClient` you bring (`layerSql` is `SqlStore.layer`).
 */
export * as PostgresStore from "./PostgresStore.ts"
export * as SqliteStore from "./SqliteStore.ts"
export * as SqlStore from "./SqlStore.ts"
export { layer as layerSql } from "./SqlStore.ts"
