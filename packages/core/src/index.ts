/**
 * @crier/core: the domain model, recipient import, ports and engine. Each concept is its own module, exported here
 * as a namespace (`import { Broadcaster, Address } from "@crier/core"`) and as a subpath
 * (`import * as Address from "@crier/core/Address"`). Conformance suites are in `@crier/core/testing`.
 */
export * as Address from "./Address.ts"
export * as Broadcast from "./Broadcast.ts"
export * as Broadcaster from "./Broadcaster.ts"
export * as BroadcastStatus from "./BroadcastStatus.ts"
export * as BroadcastTransport from "./BroadcastTransport.ts"
export * as CsvImport from "./CsvImport.ts"
export * as MemoryTransport from "./MemoryTransport.ts"
export * as Pacer from "./Pacer.ts"
export * as ProgressStore from "./ProgressStore.ts"
export * as Recipient from "./Recipient.ts"
export * as RecipientStatus from "./RecipientStatus.ts"
export * as RetryPolicy from "./RetryPolicy.ts"
export * as StatusEvent from "./StatusEvent.ts"
export * as TemplateParams from "./TemplateParams.ts"
export * as TemplateSpec from "./TemplateSpec.ts"
export * as TransportError from "./TransportError.ts"
