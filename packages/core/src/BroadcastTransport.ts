/**
 * The port a provider implements. Adapters stay thin: pacing, retry, the breaker and bookkeeping live in the
 * engine (`Broadcaster`). Every implementation passes the conformance suite in `@crier/core/testing`.
 */
import { Context, type Effect, type Option } from "effect"
import type * as Address from "./Address.ts"
import type * as Broadcast from "./Broadcast.ts"
import type * as StatusEvent from "./StatusEvent.ts"
import type * as TemplateParams from "./TemplateParams.ts"
import type * as TemplateSpec from "./TemplateSpec.ts"
import type * as TransportError from "./TransportError.ts"

export interface Capabilities {
  /** Recipients per `submit`: 1,000 (Kapso), 5,000 (Keebai), 1 (Meta, Kapso send_template). */
  readonly maxBatchSize: number
  /** A remote campaign must be created by `open` before `submit` (Kapso broadcasts). */
  readonly remoteCampaign: boolean
  /** `submit` sends (Keebai, Meta); otherwise nothing goes out before `start` (Kapso). */
  readonly startsOnSubmit: boolean
  /** Where recipient statuses come from after acceptance. */
  readonly tracking: "poll" | "webhook" | "both"
  /** The provider drops duplicate addresses itself, so re-adding after a crash is safe. */
  readonly providerDedupe: boolean
  /** The provider paces its own sending; the engine must not add its own message rate on top. */
  readonly providerPaced: boolean
  /**
   * The provider's request budgets per credential (Keebai: 60 a minute and 1,000 an hour). The pacer always spends
   * them, and any a broadcast's policy adds.
   */
  readonly requestBudgets: ReadonlyArray<Broadcast.RequestBudget>
}

/** One message to hand over. `recipientId` is echoed back by providers that carry opaque data. */
export interface Outgoing {
  readonly recipientId: string
  readonly seq: number
  readonly address: Address.Address
  readonly params: TemplateParams.TemplateParams
}

export type ItemOutcome =
  | {
    readonly _tag: "Accepted"
    /** Provider message id (wamid, provider recipient id) or remote batch id, when the provider gives one. */
    readonly providerMessageId: Option.Option<string>
    /** Accepted but held for review (Meta `held_for_quality_assessment`): still pending on the provider side. */
    readonly held: boolean
  }
  | { readonly _tag: "Rejected"; readonly error: TransportError.TransportError }

/** One outcome per item of the batch, in the batch's order. */
export interface BatchReceipt {
  readonly outcomes: ReadonlyArray<ItemOutcome>
}

export interface StatusPage {
  readonly events: ReadonlyArray<StatusEvent.StatusEvent>
  /** Where the next poll continues; none = start over on the next round. */
  readonly cursor: Option.Option<string>
  /** The remote side has finished: nothing further will change by polling. */
  readonly done: boolean
}

export class BroadcastTransport extends Context.Service<BroadcastTransport, {
  readonly name: string
  readonly capabilities: Capabilities
  /** Why this transport cannot carry a template of this shape, if it cannot. */
  readonly unsupported: (template: TemplateSpec.TemplateSpec) => Option.Option<string>
  /** Prepares the remote side; returns the remote campaign id for transports that have one. */
  readonly open: (broadcast: Broadcast.Broadcast) => Effect.Effect<Option.Option<string>, TransportError.TransportError>
  readonly submit: (
    broadcast: Broadcast.Broadcast,
    batch: readonly [Outgoing, ...Array<Outgoing>]
  ) => Effect.Effect<BatchReceipt, TransportError.TransportError>
  /** Sends a remote campaign (no-op where `submit` already sends). */
  readonly start: (broadcast: Broadcast.Broadcast) => Effect.Effect<void, TransportError.TransportError>
  readonly poll: (
    broadcast: Broadcast.Broadcast,
    cursor: Option.Option<string>
  ) => Effect.Effect<StatusPage, TransportError.TransportError>
  readonly cancel: (broadcast: Broadcast.Broadcast) => Effect.Effect<void, TransportError.TransportError>
}>()("@crier/core/BroadcastTransport") {}
