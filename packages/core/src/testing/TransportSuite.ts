/**
 * The conformance suite every `BroadcastTransport` passes: the in-memory profiles here, the HTTP adapters against
 * the testkit's emulators on 127.0.0.1. It checks what the engine relies on, whatever the provider:
 *
 * - the capabilities are coherent, and `open` gives a remote id exactly when `remoteCampaign`;
 * - a full batch (up to 1,000 items, for speed) gets one outcome per item, in order, with distinct provider ids
 *   where the transport promises them;
 * - after `start` (a no-op where `submit` sends), every accepted message's status events arrive and name the right
 *   recipient; a transport that sends on `start` reports nothing before it;
 * - an invalid address is refused per item (or, where the provider refuses the whole call, as an `InvalidRequest`),
 *   never as a defect; a batch over `maxBatchSize` fails with `InvalidRequest`;
 * - `cancel` works or fails with the `Unsupported` reason; `unsupported(template)` depends on the template's shape only.
 *
 * How statuses are observed is the caller's: `polled()` follows `poll` until it reports done; `collected(stream)`
 * reads a stream of events (webhooks, however the adapter receives them) until every accepted message was named.
 * A stream must hold events that arrived before it was read: the suite reads it after `submit` and `start`.
 *
 * Without `live` the tests run on `TestClock`, which the suite advances while it waits for statuses; with `live`
 * they run on the real clock (HTTP emulators).
 */
import { assert, describe, it } from "@effect/vitest"
import { Array as Arr, DateTime, Duration, Effect, Fiber, type Layer, Option, Result, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as Address from "../Address.ts"
import * as Broadcast from "../Broadcast.ts"
import { BroadcastTransport, type ItemOutcome, type Outgoing } from "../BroadcastTransport.ts"
import * as Recipient from "../Recipient.ts"
import type * as StatusEvent from "../StatusEvent.ts"
import * as TemplateParams from "../TemplateParams.ts"
import * as TemplateSpec from "../TemplateSpec.ts"

export interface Accepted {
  readonly item: Outgoing
  readonly providerMessageId: Option.Option<string>
}

/** What the suite handed over and was accepted, for a `statusEvents` implementation to wait on. */
export interface Observation {
  readonly broadcast: Broadcast.Broadcast
  readonly accepted: ReadonlyArray<Accepted>
  /** The position in `accepted` of the message an event names, if it names one of them. */
  readonly indexOf: (event: StatusEvent.StatusEvent) => Option.Option<number>
}

export type StatusEvents<R> = (
  observation: Observation
) => Effect.Effect<ReadonlyArray<StatusEvent.StatusEvent>, unknown, BroadcastTransport | R>

export interface Options<R> {
  /** A fresh transport (and whatever `statusEvents` needs) for each test. */
  readonly layer: Layer.Layer<BroadcastTransport | R, unknown>
  /** A new broadcast the transport accepts (sender, template); default: a one-parameter body-only template. */
  readonly makeBroadcast?: Effect.Effect<Broadcast.Broadcast, unknown, BroadcastTransport | R>
  /** Values for the recipient at `seq` that fit the broadcast's template; default: one positional value. */
  readonly params?: (seq: number) => TemplateParams.TemplateParams
  /** `count` distinct addresses the backend accepts, starting at the `from`-th; default: Brazilian mobiles. */
  readonly addresses?: (count: number, from: number) => ReadonlyArray<Address.Address>
  /** How statuses are observed: `polled()`, `collected(stream)`, or the adapter's own. */
  readonly statusEvents: StatusEvents<R>
  /** Every accepted item carries a provider message id (distinct within a batch). Default false: not required. */
  readonly providerMessageIds?: boolean
  /**
   * How the provider refuses a malformed address: its item only (default), or the whole call (Keebai's 400).
   * `address` is the malformed input; default "+999".
   */
  readonly invalidAddress?: { readonly address?: string; readonly refuses?: "item" | "call" }
  /** Real clock (HTTP emulators) instead of `TestClock`. */
  readonly live?: boolean
  /** How long statuses may take: real time when `live` (default 20 s), virtual otherwise (default 10 minutes). */
  readonly within?: Duration.Input
}

const batchCap = 1000
const providerStatuses = new Set(["accepted", "sent", "delivered", "read", "replied", "failed"])

const defaultTemplate = new TemplateSpec.TemplateSpec({
  name: "crier_conformance",
  language: "en",
  body: { _tag: "positional", count: 1 },
  header: "none",
  buttons: [],
  bodyText: "Hello {{1}}"
})

const defaultBroadcast = Effect.gen(function*() {
  const transport = yield* BroadcastTransport
  return new Broadcast.Broadcast({
    id: yield* Broadcast.makeId,
    name: "conformance",
    transport: transport.name,
    sender: "conformance-sender",
    template: defaultTemplate,
    policy: new Broadcast.Policy({}),
    status: "sending",
    createdAt: yield* DateTime.now
  })
})

const defaultParams = (seq: number) => new TemplateParams.TemplateParams({ body: [`Ada ${seq}`], buttons: [] })

const defaultAddresses = (count: number, from: number): ReadonlyArray<Address.Address> =>
  Array.from({ length: count }, (_, i) => Address.PhoneNumber.make(`+55119${60_000_000 + from + i}`))

/** Follows `poll` from the start until the transport reports done; waits `interval` after an empty page. */
export const polled = (options?: { readonly interval?: Duration.Input }): StatusEvents<never> =>
  Effect.fnUntraced(function*(observation: Observation) {
    const transport = yield* BroadcastTransport
    const events: Array<StatusEvent.StatusEvent> = []
    let cursor = Option.none<string>()
    while (true) {
      const page = yield* transport.poll(observation.broadcast, cursor)
      events.push(...page.events)
      if (page.done) return events
      cursor = page.cursor
      if (page.events.length === 0) yield* Effect.sleep(options?.interval ?? Duration.seconds(1))
    }
  })

/**
 * Reads `events` until every accepted message was named at least once. Events of other broadcasts are skipped;
 * an event of this broadcast naming an unknown recipient is kept, for the suite to flag.
 */
export const collected =
  <E, R>(events: Stream.Stream<StatusEvent.StatusEvent, E, R>): StatusEvents<R> => (observation) =>
    Effect.suspend(() => {
      const waiting = new Set(observation.accepted.keys())
      if (waiting.size === 0) return Effect.succeed([])
      const ours = (event: StatusEvent.StatusEvent) =>
        event.ref._tag === "ById"
          ? event.ref.broadcastId === observation.broadcast.id
          : Option.isSome(observation.indexOf(event))
      return events.pipe(
        Stream.filter(ours),
        Stream.takeUntil((event) => {
          Option.map(observation.indexOf(event), (index) => waiting.delete(index))
          return waiting.size === 0
        }),
        Stream.runCollect
      )
    })

const isAccepted = (outcome: ItemOutcome | undefined): outcome is Extract<ItemOutcome, { _tag: "Accepted" }> =>
  outcome?._tag === "Accepted"

const observe = (accepted: ReadonlyArray<Accepted>, broadcast: Broadcast.Broadcast): Observation => {
  const bySeq = new Map(accepted.map(({ item }, index) => [item.seq, index]))
  const byId = new Map(
    accepted.flatMap(({ providerMessageId }, index) =>
      Option.match(providerMessageId, { onNone: () => [], onSome: (id) => [[id, index] as const] })
    )
  )
  return {
    broadcast,
    accepted,
    indexOf: (event) =>
      Option.fromUndefinedOr(
        event.ref._tag === "ById"
          ? event.ref.broadcastId === broadcast.id ? bySeq.get(event.ref.seq) : undefined
          : byId.get(event.ref.providerMessageId)
      )
  }
}

export const suite = <R>(name: string, options: Options<R>): void => {
  const test = options.live === true ? it.live : it.effect
  const makeBroadcast = options.makeBroadcast ?? defaultBroadcast
  const params = options.params ?? defaultParams
  const addresses = options.addresses ?? defaultAddresses
  const invalidAddress = options.invalidAddress?.address ?? "+999"
  const refuses = options.invalidAddress?.refuses ?? "item"
  const within = Duration.toMillis(options.within ?? (options.live === true ? Duration.seconds(20) : "10 minutes"))

  const run = <A>(effect: Effect.Effect<A, unknown, BroadcastTransport | R>) => Effect.provide(effect, options.layer)

  /** A new broadcast, opened, carrying its remote id as the engine stores it. */
  const opened = Effect.gen(function*() {
    const transport = yield* BroadcastTransport
    const made = yield* makeBroadcast
    const remoteId = yield* transport.open(made)
    const broadcast = Option.match(remoteId, {
      onNone: () => made,
      onSome: (id) => new Broadcast.Broadcast({ ...made, remoteId: id })
    })
    return { transport, broadcast, remoteId }
  })

  const outgoing = (broadcast: Broadcast.Broadcast, list: ReadonlyArray<Address.Address>, from = 1) =>
    list.map((address, i): Outgoing => ({
      recipientId: Recipient.recipientId(broadcast.id, from + i),
      seq: from + i,
      address,
      params: params(from + i)
    }))

  // The suite's own clock: on TestClock it advances virtual time one second at a time until `effect` is done.
  const awaitStatuses = <A>(effect: Effect.Effect<A, unknown, BroadcastTransport | R>) =>
    options.live === true
      ? Effect.timeoutOrElse(effect, {
        duration: within,
        orElse: () => Effect.sync(() => assert.fail(`status events did not arrive within ${within} ms`))
      })
      : Effect.gen(function*() {
        const fiber = yield* Effect.forkChild(effect)
        for (let waited = 0; fiber.pollUnsafe() === undefined && waited < within; waited += 1000) {
          yield* TestClock.adjust(Duration.seconds(1))
        }
        if (fiber.pollUnsafe() === undefined) {
          yield* Fiber.interrupt(fiber)
          assert.fail(`status events did not arrive within ${within} ms of virtual time`)
        }
        return yield* Fiber.join(fiber)
      })

  describe(`BroadcastTransport conformance: ${name}`, () => {
    test("its capabilities are coherent", () =>
      run(Effect.gen(function*() {
        const { capabilities, name } = yield* BroadcastTransport
        assert.isTrue(name.length > 0, "the transport has a name")
        assert.isTrue(Number.isInteger(capabilities.maxBatchSize), "maxBatchSize is an integer")
        assert.isAtLeast(capabilities.maxBatchSize, 1)
        assert.notStrictEqual(
          capabilities.startsOnSubmit,
          capabilities.remoteCampaign,
          "either submit sends, or a remote campaign is sent by start"
        )
        assert.include(["poll", "webhook", "both"], capabilities.tracking)
      })))

    test("open gives a remote id exactly when the transport has remote campaigns", () =>
      run(Effect.gen(function*() {
        const { remoteId, transport } = yield* opened
        assert.strictEqual(Option.isSome(remoteId), transport.capabilities.remoteCampaign)
        Option.map(remoteId, (id) => assert.isTrue(id.length > 0, "the remote id is not empty"))
      })))

    test("a full batch gets one outcome per item, in order", () =>
      run(Effect.gen(function*() {
        const { broadcast, transport } = yield* opened
        const size = Math.min(transport.capabilities.maxBatchSize, batchCap)
        const [first, ...rest] = outgoing(broadcast, addresses(size, 0))
        const { outcomes } = yield* transport.submit(broadcast, [first!, ...rest])
        assert.strictEqual(outcomes.length, size)
        const ids = outcomes.flatMap((outcome, i) => {
          assert.isTrue(isAccepted(outcome), `item ${i} is accepted`)
          return isAccepted(outcome) ? Option.toArray(outcome.providerMessageId) : []
        })
        if (options.providerMessageIds === true) assert.strictEqual(ids.length, size, "every item has a message id")
        assert.strictEqual(new Set(ids).size, ids.length, "message ids are distinct")
      })))

    test("every accepted message's status events arrive after start and name the right recipient", () =>
      run(Effect.gen(function*() {
        const { broadcast, transport } = yield* opened
        const { maxBatchSize, startsOnSubmit, tracking } = transport.capabilities
        const items = outgoing(broadcast, addresses(10, 0))
        const outcomes = yield* Effect.forEach(
          Arr.chunksOf(items, maxBatchSize),
          (batch) => Effect.map(transport.submit(broadcast, batch), ({ outcomes }) => outcomes)
        ).pipe(Effect.map(Arr.flatten))
        assert.strictEqual(outcomes.length, items.length)
        const accepted = items.flatMap((item, i) => {
          const outcome = outcomes[i]
          return isAccepted(outcome) ? [{ item, providerMessageId: outcome.providerMessageId }] : []
        })
        assert.strictEqual(accepted.length, items.length, "valid items are accepted")
        if (!startsOnSubmit && tracking !== "webhook") {
          const early = yield* transport.poll(broadcast, Option.none())
          assert.deepStrictEqual(early.events, [], "nothing is reported before start")
        }
        yield* transport.start(broadcast)
        const observation = observe(accepted, broadcast)
        const events = yield* awaitStatuses(options.statusEvents(observation))
        const named = new Set<number>()
        for (const event of events) {
          const index = observation.indexOf(event)
          assert.isTrue(Option.isSome(index), `event ${JSON.stringify(event.ref)} names a recipient that was sent`)
          assert.isTrue(providerStatuses.has(event.status._tag), `${event.status._tag} is a provider's status`)
          if (Option.isNone(index)) continue
          named.add(index.value)
          // Outcomes are in the batch's order: the id an event carries is the one its recipient's outcome gave.
          const given = accepted[index.value]!.providerMessageId
          if (event.providerMessageId !== undefined && Option.isSome(given)) {
            assert.strictEqual(event.providerMessageId, given.value, `message id of seq ${index.value + 1}`)
          }
        }
        assert.strictEqual(named.size, accepted.length, "every accepted message has a status event")
      })))

    test(`a malformed address is refused ${refuses === "item" ? "per item" : "with the whole call"}, not as a defect`, () =>
      run(Effect.gen(function*() {
        const { broadcast, transport } = yield* opened
        const { maxBatchSize } = transport.capabilities
        const [good, later, fresh] = addresses(3, 0)
        // A value no parser produced, as a bug or a hand-built Outgoing could pass.
        const bad = invalidAddress as Address.Address
        const items = outgoing(broadcast, maxBatchSize === 1 ? [bad] : [good!, bad, later!].slice(0, maxBatchSize))
        const badIndex = items.findIndex((item) => item.address === bad)
        const answer = yield* Effect.result(transport.submit(broadcast, [items[0]!, ...items.slice(1)]))
        if (refuses === "call") {
          assert.isTrue(Result.isFailure(answer), "the call fails")
          if (Result.isFailure(answer)) assert.strictEqual(answer.failure.reason._tag, "InvalidRequest")
        } else {
          assert.isTrue(Result.isSuccess(answer), "the call succeeds")
          const outcomes = Result.isSuccess(answer) ? answer.success.outcomes : []
          assert.strictEqual(outcomes.length, items.length)
          outcomes.forEach((outcome, i) => {
            if (i !== badIndex) return assert.strictEqual(outcome._tag, "Accepted", `item ${i} is accepted`)
            assert.strictEqual(outcome._tag, "Rejected", "the malformed address is rejected")
            if (outcome._tag !== "Rejected") return
            assert.strictEqual(outcome.error.scope, "message")
            assert.isFalse(outcome.error.isRetryable)
          })
        }
        // The transport still works for the next call.
        const [next] = outgoing(broadcast, [fresh!], 10)
        const { outcomes } = yield* transport.submit(broadcast, [next!])
        assert.strictEqual(outcomes[0]?._tag, "Accepted")
      })))

    test("a batch over maxBatchSize fails with InvalidRequest", () =>
      run(Effect.gen(function*() {
        const { broadcast, transport } = yield* opened
        const [first, ...rest] = outgoing(broadcast, addresses(transport.capabilities.maxBatchSize + 1, 0))
        const error = yield* Effect.flip(transport.submit(broadcast, [first!, ...rest]))
        assert.strictEqual(error.reason._tag, "InvalidRequest")
      })))

    test("cancel works or fails with the Unsupported reason", () =>
      run(Effect.gen(function*() {
        const { broadcast, transport } = yield* opened
        const [item] = outgoing(broadcast, addresses(1, 0))
        yield* transport.submit(broadcast, [item!])
        const answer = yield* Effect.result(transport.cancel(broadcast))
        if (answer._tag === "Failure") assert.strictEqual(answer.failure.reason._tag, "Unsupported")
      })))

    test("unsupported depends on the template's shape only, and accepts the suite's template", () =>
      run(Effect.gen(function*() {
        const transport = yield* BroadcastTransport
        const broadcast = yield* makeBroadcast
        assert.deepStrictEqual(transport.unsupported(broadcast.template), Option.none())
        const shapes = [
          { body: { _tag: "positional", count: 2 }, header: "none", buttons: [] },
          { body: { _tag: "named", keys: ["first_name"] }, header: "none", buttons: [] },
          { body: { _tag: "positional", count: 1 }, header: "text", buttons: [] },
          { body: { _tag: "named", keys: ["first_name"] }, header: "image", buttons: [] },
          { body: { _tag: "positional", count: 1 }, header: "document", buttons: [] },
          { body: { _tag: "positional", count: 1 }, header: "none", buttons: [{ index: 0, kind: "url" }] },
          { body: { _tag: "named", keys: ["code"] }, header: "none", buttons: [{ index: 1, kind: "copy_code" }] }
        ] as const
        for (const shape of shapes) {
          const spec = (name: string, language: string) =>
            new TemplateSpec.TemplateSpec({
              ...shape,
              body: shape.body._tag === "positional" ? shape.body : { _tag: "named", keys: [...shape.body.keys] },
              buttons: shape.buttons.map((button) => new TemplateSpec.Button(button)),
              name,
              language
            })
          const answer = transport.unsupported(spec("offer", "en"))
          assert.deepStrictEqual(transport.unsupported(spec("reminder", "pt_BR")), answer, JSON.stringify(shape))
          Option.map(answer, (why) => assert.isTrue(why.trim().length > 0, "the reason is explained"))
        }
      })))
  })
}
