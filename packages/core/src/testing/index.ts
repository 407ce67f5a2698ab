/**
 * Conformance suites, run by every implementation of a port (and by users who write their own):
 * `ProgressStoreSuite.suite(name, layer)` and `TransportSuite.suite(name, options)`. They need `@effect/vitest`.
 */
export * as ProgressStoreSuite from "./ProgressStoreSuite.ts"
export * as TransportSuite from "./TransportSuite.ts"
