/**
 * An in-memory `BroadcastTransport` that behaves like one of the real providers, for the engine's tests and for
 * users' own: it answers per item or per call the way the provider does, and plays each accepted message's status
 * lifecycle on the Effect `Clock`, so a test drives it with `TestClock.adjust`.
 *
 * | profile  | batch | remote campaign      | sends on      | statuses         | refs by              | duplicates |
 * |----------|-------|----------------------|---------------|------------------|----------------------|------------|
 * | `meta`   | 1     | no                   | `submit`      | webhooks         | our recipient id     | sent twice |
 * | `keebai` | 5,000 | no                   | `submit`      | poll and webhooks | our recipient id    | sent twice |
 * | `kapso`  | 1,000 | yes (`remote-<n>`)   | `start`       | poll             | Kapso's message id   | dropped    |
 *
 * `meta` is the default profile: the engine paces it, correlates its webhooks by our id and gets no help with
 * duplicates, so it exercises the most of the engine.
 *
 * Where the profiles differ beyond their capabilities, they follow PROVIDERS.md:
 * - an invalid address is refused per item by `meta` and `kapso`, and fails the whole call with `keebai` (HTTP 400);
 *   a BSUID is an address only `meta` accepts;
 * - `kapso` takes recipients only while its campaign is a draft, refuses an empty or second `start` (HTTP 422),
 *   and cannot `cancel` (`Unsupported`: Kapso v1 has no cancel); on the others `cancel` stops the lifecycles still
 *   running, and later `submit`s of that broadcast fail;
 * - `unsupported`: `kapso` refuses button parameters and text headers (its v1 recipients carry neither) and a media
 *   header on a positional body (`header_url` exists only in the named, object form); `keebai` takes body
 *   `variables` only, so it refuses any header or button parameter; `meta` takes every shape;
 * - accepted outcomes carry `wamid.<n>` (`meta`) or `kapso-<n>` (`kapso`); `keebai` answers a call with its own
 *   batch id only, so its outcomes carry none and its events carry `keebai-<n>`.
 *
 * `poll` pages through a campaign's events from a cursor (a position in its event log, "0" or none from the start)
 * and says `done` at the end of the log once the campaign is sent and every lifecycle has run its course, or it was
 * cancelled; a `kapso` draft is never done before `start`. A webhook-only profile polls as an empty page, done.
 *
 * Values a test sets with the `Options` are deterministic: shares of rejections and of lifecycle outcomes are
 * chosen by a hash of the address (the same address always gets the same fate) or of the call's number.
 */
import { Clock, Context, DateTime, Duration, Effect, Layer, Option, PubSub, Result, Stream } from "effect"
import * as Address from "./Address.ts"
import type * as Broadcast from "./Broadcast.ts"
import { BroadcastTransport, type Capabilities, type ItemOutcome, type Outgoing } from "./BroadcastTransport.ts"
import * as Recipient from "./Recipient.ts"
import * as RecipientStatus from "./RecipientStatus.ts"
import * as StatusEvent from "./StatusEvent.ts"
import * as TemplateParams from "./TemplateParams.ts"
import type * as TemplateSpec from "./TemplateSpec.ts"
import * as TransportError from "./TransportError.ts"

export type Profile = "kapso" | "keebai" | "meta"

/** What one message was handed over as, and what the transport answered. */
export interface Submitted {
  readonly broadcastId: Broadcast.BroadcastId
  readonly recipientId: string
  readonly seq: number
  readonly address: Address.Address
  readonly params: TemplateParams.TemplateParams
  /** When the transport answered (after its latency). */
  readonly at: DateTime.Utc
  /** How many times this recipient id has been handed over, this time included. */
  readonly attempt: number
  /** The item's outcome, or `Failed` when the whole call failed. */
  readonly outcome: ItemOutcome | { readonly _tag: "Failed"; readonly error: TransportError.TransportError }
}

/** A deterministic share of items (by address) or of calls (by call number) refused with `error`. */
export interface Fraction {
  /** Between 0 and 1. Shares of the same kind stack: 5% then 2% refuse 7% in all, disjointly. */
  readonly share: number
  readonly error: TransportError.TransportError
  readonly of: "items" | "requests"
}

export interface Reject {
  /** Items refused one by one: the call succeeds with a `Rejected` outcome for them (Meta 131026, Kapso rows). */
  readonly items?:
    | ReadonlyMap<Address.Address, TransportError.TransportError>
    | ((item: Outgoing, broadcast: Broadcast.Broadcast) => Option.Option<TransportError.TransportError>)
  /** Whole calls refused: `submit` fails and nothing is accepted (401, template paused, 130429). */
  readonly requests?:
    | TransportError.TransportError
    | ((batch: ReadonlyArray<Outgoing>, broadcast: Broadcast.Broadcast) => Option.Option<TransportError.TransportError>)
  readonly fractions?: ReadonlyArray<Fraction>
}

interface Steps {
  /** Meta's `held_for_quality_assessment`: accepted with `held: true`. */
  readonly held?: boolean
  /** From hand-over (or `start` where that sends) to `sent`. Every step counts from the one before it. */
  readonly sent?: Duration.Input
}

/**
 * How one accepted message lives. A missing step is skipped (Meta may report `read` without `delivered`); a path
 * with no step at all stays `accepted` and counts as finished at once.
 */
export type Path =
  | Steps & {
    readonly delivered?: Duration.Input
    readonly read?: Duration.Input
    readonly replied?: Duration.Input
    readonly failed?: never
  }
  | Steps & {
    readonly failed: { readonly after: Duration.Input; readonly code?: string; readonly reason: string }
    readonly delivered?: never
    readonly read?: never
    readonly replied?: never
  }

export interface Lifecycle {
  /** What every message not matched below does. Default: sent after 1 s, delivered 1 s later. */
  readonly path?: Path
  /** Deterministic shares by address hash, e.g. 5% failed 131026; the rest follow `path`. */
  readonly mix?: ReadonlyArray<{ readonly share: number; readonly path: Path }>
  /** Per-address paths, ahead of `mix`. */
  readonly byAddress?: ReadonlyMap<Address.Address, Path>
}

/** The transport's own limit, counted on the Effect `Clock` in fixed windows (aligned to the epoch). */
export interface Rate {
  readonly limit: number
  readonly windowMillis: number
  /** What counts against `limit`: messages (a sender's throughput, default) or calls (a token's request budget). */
  readonly count?: "messages" | "requests"
}

export interface Options {
  /** The transport's `name`. Default "memory". */
  readonly name?: string
  /** Default "meta". */
  readonly profile?: Profile
  /** Overrides the profile's capabilities; the transport's behaviour follows the result. */
  readonly capabilities?: Partial<Capabilities>
  /** How long each `submit` takes. */
  readonly latency?: Duration.Input
  readonly reject?: Reject
  readonly rate?: Rate
  readonly lifecycle?: Lifecycle
  /** Events per `poll` page. Default 100 (Kapso's largest page). */
  readonly pageSize?: number
}

/** What `setBehaviour` can change mid-run. A field given replaces the current one; `{ reject: {} }` clears it. */
export type Behaviour = Pick<Options, "latency" | "reject" | "lifecycle">

export class MemoryTransport extends Context.Service<MemoryTransport, {
  /** Every message handed over, in order, whatever the answer. */
  readonly submitted: Effect.Effect<ReadonlyArray<Submitted>>
  /** `submit` calls so far. */
  readonly requests: Effect.Effect<number>
  /** How many times a message to this address was accepted for sending (a deduplicated one counts once). */
  readonly sentCount: (address: Address.Address) => Effect.Effect<number>
  /**
   * Status events of webhook-tracked profiles, from the first one ever emitted, then live: a late subscriber misses
   * nothing, and every subscriber gets every event.
   */
  readonly webhookEvents: Stream.Stream<StatusEvent.StatusEvent>
  readonly setBehaviour: (behaviour: Behaviour) => Effect.Effect<void>
}>()("@crier/core/MemoryTransport") {}

interface Dialect {
  readonly capabilities: Capabilities
  /** Events name recipients by our id (echoed opaque data) or by the provider's message id. */
  readonly refs: "ById" | "ByProviderMessageId"
  readonly messageIdPrefix: string
  /** The receipt carries the message id (otherwise only events do). */
  readonly idsInReceipt: boolean
  /** An invalid address fails the whole call instead of its item. */
  readonly invalidAddressFailsCall: boolean
  readonly acceptsBsuid: boolean
  readonly canCancel: boolean
  readonly unsupported: (template: TemplateSpec.TemplateSpec) => Option.Option<string>
}

const dialects: Record<Profile, Dialect> = {
  kapso: {
    capabilities: {
      maxBatchSize: 1000,
      remoteCampaign: true,
      startsOnSubmit: false,
      tracking: "poll",
      providerDedupe: true,
      providerPaced: true,
      requestBudgets: []
    },
    refs: "ByProviderMessageId",
    messageIdPrefix: "kapso-",
    idsInReceipt: true,
    invalidAddressFailsCall: false,
    acceptsBsuid: false,
    canCancel: false,
    unsupported: (template) =>
      template.buttons.length > 0
        ? Option.some("Kapso's v1 broadcast recipients carry no button parameters")
        : template.header === "text"
        ? Option.some("Kapso's v1 broadcast recipients carry no text header parameter")
        : template.header !== "none" && template.body._tag === "positional"
        ? Option.some("Kapso's v1 broadcasts take a media header only with named parameters (header_url)")
        : Option.none()
  },
  keebai: {
    capabilities: {
      maxBatchSize: 5000,
      remoteCampaign: false,
      startsOnSubmit: true,
      tracking: "both",
      providerDedupe: false,
      providerPaced: false,
      requestBudgets: []
    },
    refs: "ById",
    messageIdPrefix: "keebai-",
    idsInReceipt: false,
    invalidAddressFailsCall: true,
    acceptsBsuid: false,
    canCancel: true,
    unsupported: (template) =>
      template.header !== "none" || template.buttons.length > 0
        ? Option.some("Keebai's bulk API takes body variables only: no header or button parameters")
        : Option.none()
  },
  meta: {
    capabilities: {
      maxBatchSize: 1,
      remoteCampaign: false,
      startsOnSubmit: true,
      tracking: "webhook",
      providerDedupe: false,
      providerPaced: false,
      requestBudgets: []
    },
    refs: "ById",
    messageIdPrefix: "wamid.",
    idsInReceipt: true,
    invalidAddressFailsCall: false,
    acceptsBsuid: true,
    canCancel: true,
    unsupported: () => Option.none()
  }
}

/** The capabilities a profile declares. */
export const capabilities = (profile: Profile): Capabilities => dialects[profile].capabilities

const defaultPath: Path = { sent: Duration.seconds(1), delivered: Duration.seconds(1) }

// FNV-1a then murmur3's finaliser: a stable, even spread of keys over [0, 1), so shares are deterministic without
// Math.random (FNV alone spreads keys that differ in their last characters, "request:1", "request:2", poorly).
const unitHash = (key: string): number => {
  let hash = 0x811c9dc5
  for (let i = 0; i < key.length; i++) hash = Math.imul(hash ^ key.charCodeAt(i), 0x01000193)
  hash = Math.imul(hash ^ (hash >>> 16), 0x85ebca6b)
  hash = Math.imul(hash ^ (hash >>> 13), 0xc2b2ae35)
  return ((hash ^ (hash >>> 16)) >>> 0) / 0x1_0000_0000
}

const pick = <A>(
  shares: ReadonlyArray<{ readonly share: number; readonly value: A }>,
  key: string
): Option.Option<A> => {
  // Most runs set no shares: no hash then.
  if (shares.length === 0) return Option.none()
  const x = unitHash(key)
  let upTo = 0
  for (const { share, value } of shares) {
    upTo += share
    if (x < upTo) return Option.some(value)
  }
  return Option.none()
}

interface Message {
  readonly item: Outgoing
  readonly providerMessageId: string
  readonly path: Path
}

interface Timed {
  readonly at: number
  readonly event: StatusEvent.StatusEvent
}

/** One remote campaign (`kapso`) or one broadcast's messages (the others). */
interface Campaign {
  readonly broadcastId: Broadcast.BroadcastId
  started: boolean
  cancelled: boolean
  /** Accepted before `start`, where `start` sends. */
  readonly waiting: Array<Message>
  /** Every message accepted, by address, for providers that drop duplicates. */
  readonly byAddress: Map<Address.Address, string>
  /** Poll-tracked events, in emission order: a cursor is an index into it. */
  readonly log: Array<StatusEvent.StatusEvent>
  /** Events scheduled and not yet emitted. */
  scheduled: number
}

const stepsOf = (path: Path): ReadonlyArray<readonly [Duration.Input, RecipientStatus.RecipientStatus]> => {
  const steps: Array<readonly [Duration.Input | undefined, RecipientStatus.RecipientStatus]> = [
    [path.sent, RecipientStatus.sent],
    [path.delivered, RecipientStatus.delivered],
    [path.read, RecipientStatus.read],
    [path.replied, RecipientStatus.replied],
    [path.failed?.after, RecipientStatus.failed(path.failed?.reason ?? "", path.failed?.code)]
  ]
  return steps.filter((step): step is readonly [Duration.Input, RecipientStatus.RecipientStatus] =>
    step[0] !== undefined
  )
}

const CURSOR = /^(?:0|[1-9][0-9]*)$/

export const layer = (options: Options = {}): Layer.Layer<BroadcastTransport | MemoryTransport> =>
  Layer.effectContext(Effect.gen(function*() {
    const name = options.name ?? "memory"
    const dialect = dialects[options.profile ?? "meta"]
    const caps: Capabilities = { ...dialect.capabilities, ...options.capabilities }
    const polled = caps.tracking !== "webhook"
    const hooked = caps.tracking !== "poll"
    const pageSize = options.pageSize ?? 100
    const scope = yield* Effect.scope
    const pubsub = yield* PubSub.unbounded<{ readonly index: number; readonly event: StatusEvent.StatusEvent }>()
    // Ends the subscribers' streams with the layer.
    yield* Effect.addFinalizer(() => PubSub.shutdown(pubsub))

    let behaviour: Behaviour = options
    let requests = 0
    let remotes = 0
    let messageIds = 0
    let window = { index: -1, used: 0 }
    const campaigns = new Map<string, Campaign>()
    const submitted: Array<Submitted> = []
    const attempts = new Map<string, number>()
    const sent = new Map<Address.Address, number>()
    const webhookLog: Array<StatusEvent.StatusEvent> = []

    const fail = (operation: string, reason: TransportError.Reason) =>
      new TransportError.TransportError({ provider: name, operation, reason })
    const invalid = (operation: string, message: string, httpStatus?: number) =>
      fail(
        operation,
        new TransportError.InvalidRequest(httpStatus === undefined ? { message } : { message, httpStatus })
      )

    const newCampaign = (broadcastId: Broadcast.BroadcastId): Campaign => ({
      broadcastId,
      started: caps.startsOnSubmit,
      cancelled: false,
      waiting: [],
      byAddress: new Map(),
      log: [],
      scheduled: 0
    })

    /** The campaign a call is about: the remote one named by `remoteId`, or the broadcast's own if it has one. */
    const lookup = (
      operation: string,
      broadcast: Broadcast.Broadcast
    ): Result.Result<Campaign | undefined, TransportError.TransportError> => {
      if (!caps.remoteCampaign) return Result.succeed(campaigns.get(broadcast.id))
      if (broadcast.remoteId === undefined) {
        return Result.fail(invalid(operation, "the broadcast has no remoteId: call open and store the id it returns"))
      }
      const remote = campaigns.get(broadcast.remoteId)
      if (remote === undefined) return Result.fail(invalid(operation, `no remote campaign ${broadcast.remoteId}`, 404))
      return remote.broadcastId === broadcast.id
        ? Result.succeed(remote)
        : Result.fail(invalid(operation, `remote campaign ${broadcast.remoteId} was opened for another broadcast`))
    }

    const campaignFor = (operation: string, broadcast: Broadcast.Broadcast) =>
      Result.map(lookup(operation, broadcast), (found) => {
        if (found !== undefined) return found
        const campaign = newCampaign(broadcast.id)
        campaigns.set(broadcast.id, campaign)
        return campaign
      })

    const emit = (campaign: Campaign, event: StatusEvent.StatusEvent) =>
      Effect.suspend(() => {
        if (campaign.cancelled) return Effect.void
        campaign.scheduled--
        if (polled) campaign.log.push(event)
        if (!hooked) return Effect.void
        webhookLog.push(event)
        return PubSub.publish(pubsub, { index: webhookLog.length - 1, event })
      })

    // One fiber per hand-over walks the merged timeline of its messages, so a test's `TestClock.adjust` plays every
    // step that falls due, in time order.
    const play = (campaign: Campaign, messages: ReadonlyArray<Message>, from: number) => {
      const timeline: Array<Timed> = []
      for (const message of messages) {
        let at = from
        for (const [after, status] of stepsOf(message.path)) {
          at += Duration.toMillis(after)
          timeline.push({ at, event: eventOf(message, status, at) })
        }
      }
      if (timeline.length === 0) return Effect.void
      timeline.sort((a, b) => a.at - b.at)
      campaign.scheduled += timeline.length
      return Effect.forkIn(
        Effect.forEach(timeline, ({ at, event }) =>
          Clock.currentTimeMillis.pipe(
            Effect.flatMap((now) => at > now ? Effect.sleep(at - now) : Effect.void),
            Effect.andThen(emit(campaign, event))
          ), { discard: true }),
        scope
      )
    }

    const eventOf = (message: Message, status: RecipientStatus.RecipientStatus, at: number) => {
      const parsed = Recipient.parseRecipientId(message.item.recipientId)
      const ref: StatusEvent.RecipientRef = dialect.refs === "ById" && Option.isSome(parsed)
        ? { _tag: "ById", broadcastId: parsed.value.broadcastId, seq: parsed.value.seq }
        : { _tag: "ByProviderMessageId", providerMessageId: message.providerMessageId }
      return new StatusEvent.StatusEvent({
        ref,
        status,
        at: DateTime.makeUnsafe(at),
        providerMessageId: message.providerMessageId
      })
    }

    const pathOf = (address: Address.Address): Path => {
      const lifecycle = behaviour.lifecycle ?? {}
      const mix = (lifecycle.mix ?? []).map(({ path, share }) => ({ share, value: path }))
      return lifecycle.byAddress?.get(address) ??
        Option.getOrElse(pick(mix, `lifecycle:${address}`), () => lifecycle.path ?? defaultPath)
    }

    const fractions = (of: Fraction["of"]) =>
      (behaviour.reject?.fractions ?? []).filter((fraction) => fraction.of === of).map(({ error, share }) => ({
        share,
        value: error
      }))

    const validAddress = (address: Address.Address): boolean => {
      const parsed = Address.parse(address)
      return Result.isSuccess(parsed) && parsed.success === address &&
        (dialect.acceptsBsuid || Address.kind(address) === "phone")
    }

    /** Why the provider refuses the whole call, if it does. */
    const refuseCall = (
      broadcast: Broadcast.Broadcast,
      batch: ReadonlyArray<Outgoing>,
      call: number,
      now: number
    ): Result.Result<Campaign, TransportError.TransportError> => {
      if (batch.length > caps.maxBatchSize) {
        return Result.fail(
          invalid("submit", `${batch.length} recipients in one call; at most ${caps.maxBatchSize} are accepted`)
        )
      }
      const found = campaignFor("submit", broadcast)
      if (Result.isFailure(found)) return found
      const campaign = found.success
      if (campaign.cancelled) return Result.fail(invalid("submit", `broadcast ${broadcast.id} was cancelled`))
      if (!caps.startsOnSubmit && campaign.started) {
        return Result.fail(invalid("submit", "cannot add recipients to a campaign that is already sending", 422))
      }
      if (dialect.refs === "ById") {
        const unreadable = batch.find((item) => Option.isNone(Recipient.parseRecipientId(item.recipientId)))
        if (unreadable !== undefined) {
          return Result.fail(
            invalid("submit", `recipient id ${unreadable.recipientId} is not one made by Recipient.recipientId`)
          )
        }
      }
      if (options.rate !== undefined) {
        const { count = "messages", limit, windowMillis } = options.rate
        const index = Math.floor(now / windowMillis)
        if (index !== window.index) window = { index, used: 0 }
        const cost = count === "messages" ? batch.length : 1
        if (window.used + cost > limit) {
          return Result.fail(fail(
            "submit",
            new TransportError.RateLimited({
              message: `more than ${limit} ${count} per ${windowMillis} ms`,
              limit: count === "messages" ? "sender" : "credential",
              retryAfter: Duration.millis((index + 1) * windowMillis - now)
            })
          ))
        }
        window.used += cost
      }
      const rule = behaviour.reject?.requests
      const refused = rule === undefined
        ? Option.none()
        : typeof rule === "function"
        ? rule(batch, broadcast)
        : Option.some(rule)
      if (Option.isSome(refused)) return Result.fail(refused.value)
      const drawn = pick(fractions("requests"), `request:${call}`)
      if (Option.isSome(drawn)) return Result.fail(drawn.value)
      if (dialect.invalidAddressFailsCall) {
        const index = batch.findIndex((item) => !validAddress(item.address))
        if (index !== -1) return Result.fail(invalid("submit", `recipients[${index}].to is not a valid number`, 400))
      }
      return Result.succeed(campaign)
    }

    /** Why the provider refuses one item, if it does. */
    const refuseItem = (
      broadcast: Broadcast.Broadcast,
      item: Outgoing
    ): Option.Option<TransportError.TransportError> => {
      if (!validAddress(item.address)) {
        return Option.some(
          fail("submit", new TransportError.RecipientRejected({ message: "invalid phone number format" }))
        )
      }
      const checked = TemplateParams.validate(broadcast.template, item.params)
      if (Result.isFailure(checked)) {
        const message = checked.failure.map((issue) => `${issue.field}: ${issue.reason}`).join("; ")
        return Option.some(
          fail("submit", new TransportError.TemplateParamsMismatch({ message, perRecipient: true }))
        )
      }
      const rule = behaviour.reject?.items
      const refused = rule === undefined
        ? Option.none()
        : typeof rule === "function"
        ? rule(item, broadcast)
        : Option.fromUndefinedOr(rule.get(item.address))
      return Option.isSome(refused) ? refused : pick(fractions("items"), `reject:${item.address}`)
    }

    const accept = (campaign: Campaign, item: Outgoing, fresh: Array<Message>): ItemOutcome => {
      const known = caps.providerDedupe ? campaign.byAddress.get(item.address) : undefined
      const path = pathOf(item.address)
      const held = path.held === true
      if (known !== undefined) {
        return { _tag: "Accepted", providerMessageId: Option.some(known), held }
      }
      const providerMessageId = `${dialect.messageIdPrefix}${++messageIds}`
      campaign.byAddress.set(item.address, providerMessageId)
      sent.set(item.address, (sent.get(item.address) ?? 0) + 1)
      fresh.push({ item, providerMessageId, path })
      return {
        _tag: "Accepted",
        providerMessageId: dialect.idsInReceipt ? Option.some(providerMessageId) : Option.none(),
        held
      }
    }

    // Untraced: the per-message hot path of the engine's benchmark, where a span and a stack capture per call cost
    // more than the rest of the call.
    const submit = Effect.fnUntraced(
      function*(broadcast: Broadcast.Broadcast, batch: readonly [Outgoing, ...Array<Outgoing>]) {
        const call = ++requests
        if (behaviour.latency !== undefined) yield* Effect.sleep(behaviour.latency)
        const now = yield* Clock.currentTimeMillis
        const at = DateTime.makeUnsafe(now)
        const record = (item: Outgoing, outcome: Submitted["outcome"]) => {
          const attempt = (attempts.get(item.recipientId) ?? 0) + 1
          attempts.set(item.recipientId, attempt)
          submitted.push({
            broadcastId: broadcast.id,
            recipientId: item.recipientId,
            seq: item.seq,
            address: item.address,
            params: item.params,
            at,
            attempt,
            outcome
          })
        }
        const allowed = refuseCall(broadcast, batch, call, now)
        if (Result.isFailure(allowed)) {
          for (const item of batch) record(item, { _tag: "Failed", error: allowed.failure })
          return yield* allowed.failure
        }
        const campaign = allowed.success
        const fresh: Array<Message> = []
        const outcomes = batch.map((item): ItemOutcome => {
          const refused = refuseItem(broadcast, item)
          const outcome: ItemOutcome = Option.isSome(refused)
            ? { _tag: "Rejected", error: refused.value }
            : accept(campaign, item, fresh)
          record(item, outcome)
          return outcome
        })
        if (campaign.started) yield* play(campaign, fresh, now)
        else campaign.waiting.push(...fresh)
        return { outcomes }
      }
    )

    const open = Effect.fn("MemoryTransport.open")(function*(broadcast: Broadcast.Broadcast) {
      if (!caps.remoteCampaign) return Option.none<string>()
      const remoteId = `remote-${++remotes}`
      campaigns.set(remoteId, newCampaign(broadcast.id))
      return Option.some(remoteId)
    })

    const start = Effect.fn("MemoryTransport.start")(function*(broadcast: Broadcast.Broadcast) {
      if (caps.startsOnSubmit) return
      const found = campaignFor("start", broadcast)
      if (Result.isFailure(found)) return yield* found.failure
      const campaign = found.success
      if (campaign.started || campaign.cancelled) {
        return yield* invalid("start", "the campaign is already sending or over", 422)
      }
      if (campaign.byAddress.size === 0) {
        return yield* invalid("start", "the campaign has no recipients", 422)
      }
      campaign.started = true
      const waiting = campaign.waiting.splice(0)
      yield* play(campaign, waiting, yield* Clock.currentTimeMillis)
    })

    const poll = Effect.fn("MemoryTransport.poll")(
      function*(broadcast: Broadcast.Broadcast, cursor: Option.Option<string>) {
        if (!polled) return { events: [], cursor: Option.none(), done: true }
        const found = lookup("poll", broadcast)
        if (Result.isFailure(found)) return yield* found.failure
        const campaign = found.success
        const log = campaign?.log ?? []
        const from = Option.getOrElse(cursor, () => "0")
        if (!CURSOR.test(from) || Number(from) > log.length) {
          return yield* invalid("poll", `cursor ${from} is not a position in this campaign's events`)
        }
        const events = log.slice(Number(from), Number(from) + pageSize)
        const next = Number(from) + events.length
        const finished = campaign === undefined || campaign.cancelled ||
          (campaign.started && campaign.scheduled === 0)
        return { events, cursor: Option.some(String(next)), done: finished && next === log.length }
      }
    )

    const cancel = Effect.fn("MemoryTransport.cancel")(function*(broadcast: Broadcast.Broadcast) {
      if (!dialect.canCancel) {
        return yield* fail("cancel", new TransportError.Unsupported({ message: `${name} cannot cancel a broadcast` }))
      }
      const found = campaignFor("cancel", broadcast)
      if (Result.isFailure(found)) return yield* found.failure
      const campaign = found.success
      campaign.cancelled = true
      campaign.scheduled = 0
      campaign.waiting.length = 0
    })

    const webhookEvents = Stream.unwrap(Effect.gen(function*() {
      // Subscribe before reading the log: an event emitted in between is then in both, and dropped once by index.
      const subscription = yield* PubSub.subscribe(pubsub)
      const seen = webhookLog.length
      return Stream.fromIterable(webhookLog.slice(0, seen)).pipe(
        Stream.concat(
          Stream.fromSubscription(subscription).pipe(
            Stream.filter((entry) => entry.index >= seen),
            Stream.map((entry) => entry.event)
          )
        )
      )
    }))

    const transport = BroadcastTransport.of({
      name,
      capabilities: caps,
      unsupported: dialect.unsupported,
      open,
      submit,
      start,
      poll,
      cancel
    })
    const control = MemoryTransport.of({
      submitted: Effect.sync(() => submitted.slice()),
      requests: Effect.sync(() => requests),
      sentCount: (address) => Effect.sync(() => sent.get(address) ?? 0),
      webhookEvents,
      setBehaviour: (next) =>
        Effect.sync(() => {
          behaviour = { ...behaviour, ...next }
        })
    })
    return Context.make(BroadcastTransport, transport).pipe(Context.add(MemoryTransport, control))
  }))
