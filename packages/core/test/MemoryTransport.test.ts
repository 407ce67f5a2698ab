import * as Address from "@crier/core/Address"
import * as Broadcast from "@crier/core/Broadcast"
import { BroadcastTransport, type ItemOutcome, type Outgoing } from "@crier/core/BroadcastTransport"
import * as MemoryTransport from "@crier/core/MemoryTransport"
import * as Recipient from "@crier/core/Recipient"
import type * as StatusEvent from "@crier/core/StatusEvent"
import * as TemplateParams from "@crier/core/TemplateParams"
import * as TemplateSpec from "@crier/core/TemplateSpec"
import * as TransportSuite from "@crier/core/testing/TransportSuite"
import * as TransportError from "@crier/core/TransportError"
import { assert, describe, it } from "@effect/vitest"
import { DateTime, Duration, Effect, Fiber, Option, Result, Stream } from "effect"
import { TestClock } from "effect/testing"

const webhooks = Stream.unwrap(MemoryTransport.MemoryTransport.useSync((memory) => memory.webhookEvents))

TransportSuite.suite("memory (meta profile)", {
  layer: MemoryTransport.layer({ profile: "meta" }),
  statusEvents: TransportSuite.collected(webhooks),
  providerMessageIds: true
})

TransportSuite.suite("memory (kapso profile)", {
  layer: MemoryTransport.layer({ profile: "kapso" }),
  statusEvents: TransportSuite.polled(),
  providerMessageIds: true
})

TransportSuite.suite("memory (keebai profile, polled)", {
  layer: MemoryTransport.layer({ profile: "keebai" }),
  statusEvents: TransportSuite.polled(),
  invalidAddress: { refuses: "call" }
})

TransportSuite.suite("memory (keebai profile, webhooks)", {
  layer: MemoryTransport.layer({ profile: "keebai" }),
  statusEvents: TransportSuite.collected(webhooks),
  invalidAddress: { refuses: "call" }
})

// ---------------------------------------------------------------------------------------------------------------

const phone = (n: number) => Address.PhoneNumber.make(`+55119${70_000_000 + n}`)

const template = new TemplateSpec.TemplateSpec({
  name: "promo",
  language: "en",
  body: { _tag: "positional", count: 1 },
  header: "none",
  buttons: []
})

const params = new TemplateParams.TemplateParams({ body: ["Ada"], buttons: [] })

/** A broadcast, opened on the transport (with its remote id where it has one). */
const opened = Effect.gen(function*() {
  const transport = yield* BroadcastTransport
  const made = new Broadcast.Broadcast({
    id: yield* Broadcast.makeId,
    name: "test",
    transport: transport.name,
    sender: "sender",
    template,
    policy: new Broadcast.Policy({}),
    status: "sending",
    createdAt: yield* DateTime.now
  })
  const remoteId = yield* transport.open(made)
  return Option.match(remoteId, {
    onNone: () => made,
    onSome: (id) => new Broadcast.Broadcast({ ...made, remoteId: id })
  })
})

const item = (broadcast: Broadcast.Broadcast, seq: number, address: Address.Address = phone(seq)): Outgoing => ({
  recipientId: Recipient.recipientId(broadcast.id, seq),
  seq,
  address,
  params
})

const batchOf = (broadcast: Broadcast.Broadcast, seqs: ReadonlyArray<number>) => {
  const [first, ...rest] = seqs.map((seq) => item(broadcast, seq))
  return [first!, ...rest] as const
}

const submit = (broadcast: Broadcast.Broadcast, ...seqs: ReadonlyArray<number>) =>
  BroadcastTransport.use((transport) => transport.submit(broadcast, batchOf(broadcast, seqs)))

const failure = (broadcast: Broadcast.Broadcast, ...seqs: ReadonlyArray<number>) =>
  Effect.flip(submit(broadcast, ...seqs))

const pollAll = (broadcast: Broadcast.Broadcast) =>
  BroadcastTransport.use((transport) => transport.poll(broadcast, Option.none()))

const error = (reason: TransportError.Reason) => new TransportError.TransportError({ provider: "memory", reason })
const paused = error(new TransportError.TemplateRejected({ message: "template paused", code: 132015 }))
const undeliverable = error(new TransportError.RecipientRejected({ message: "undeliverable", code: 131026 }))

const tags = (outcomes: ReadonlyArray<ItemOutcome>) => outcomes.map((outcome) => outcome._tag)

/** The outcomes' tags of a call that succeeded, or the reason of one that failed. */
const answered = (
  answer: Result.Result<{ readonly outcomes: ReadonlyArray<ItemOutcome> }, TransportError.TransportError>
) => Result.isSuccess(answer) ? tags(answer.success.outcomes) : answer.failure.reason._tag

const summary = (events: ReadonlyArray<StatusEvent.StatusEvent>) =>
  events.map((event) => {
    const ref = event.ref._tag === "ById" ? `#${event.ref.seq}` : event.ref.providerMessageId
    return `${ref} ${event.status._tag} @${DateTime.toEpochMillis(event.at)}`
  })

const provide = (options?: MemoryTransport.Options) => Effect.provide(MemoryTransport.layer(options))

/** The webhook events so far, read by a subscriber that starts now (it replays what was emitted before). */
const webhookEventsSoFar = (count: number) => Stream.runCollect(Stream.take(webhooks, count))

describe("MemoryTransport profiles", () => {
  it.effect("meta is the default: one per call, sends on submit, webhooks, no dedupe", () =>
    Effect.gen(function*() {
      const transport = yield* BroadcastTransport
      assert.strictEqual(transport.name, "memory")
      assert.deepStrictEqual(transport.capabilities, MemoryTransport.capabilities("meta"))
      assert.deepStrictEqual(transport.capabilities, {
        maxBatchSize: 1,
        remoteCampaign: false,
        startsOnSubmit: true,
        tracking: "webhook",
        providerDedupe: false,
        providerPaced: false,
        requestBudgets: []
      })
    }).pipe(provide()))

  it.effect("kapso and keebai declare what PROVIDERS.md says", () =>
    Effect.sync(() => {
      assert.deepStrictEqual(MemoryTransport.capabilities("kapso"), {
        maxBatchSize: 1000,
        remoteCampaign: true,
        startsOnSubmit: false,
        tracking: "poll",
        providerDedupe: true,
        providerPaced: true,
        requestBudgets: []
      })
      assert.deepStrictEqual(MemoryTransport.capabilities("keebai"), {
        maxBatchSize: 5000,
        remoteCampaign: false,
        startsOnSubmit: true,
        tracking: "both",
        providerDedupe: false,
        providerPaced: false,
        requestBudgets: []
      })
    }))

  it.effect("name and capabilities can be overridden, and the behaviour follows", () =>
    Effect.gen(function*() {
      const transport = yield* BroadcastTransport
      assert.strictEqual(transport.name, "fake-keebai")
      assert.strictEqual(transport.capabilities.maxBatchSize, 2)
      const broadcast = yield* opened
      const error = yield* failure(broadcast, 1, 2, 3)
      assert.strictEqual(error.reason._tag, "InvalidRequest")
      assert.strictEqual(error.provider, "fake-keebai")
    }).pipe(provide({ name: "fake-keebai", profile: "keebai", capabilities: { maxBatchSize: 2 } })))

  it.effect("open gives remote-<n> for kapso and none elsewhere", () =>
    Effect.gen(function*() {
      const kapso = yield* opened.pipe(provide({ profile: "kapso" }))
      assert.strictEqual(kapso.remoteId, "remote-1")
      const again = yield* Effect.gen(function*() {
        yield* opened
        return yield* opened
      }).pipe(provide({ profile: "kapso" }))
      assert.strictEqual(again.remoteId, "remote-2")
      assert.isUndefined((yield* opened.pipe(provide({ profile: "meta" }))).remoteId)
      assert.isUndefined((yield* opened.pipe(provide({ profile: "keebai" }))).remoteId)
    }))

  it.effect("provider message ids: wamid.<n> for meta, kapso-<n> for kapso, none in keebai receipts", () =>
    Effect.gen(function*() {
      const ids = (profile: MemoryTransport.Profile) =>
        Effect.gen(function*() {
          const broadcast = yield* opened
          const first = yield* submit(broadcast, 1)
          const second = yield* submit(broadcast, 2)
          return [...first.outcomes, ...second.outcomes].map((outcome) =>
            outcome._tag === "Accepted" ? Option.getOrElse(outcome.providerMessageId, () => "none") : "rejected"
          )
        }).pipe(provide({ profile }))
      assert.deepStrictEqual(yield* ids("meta"), ["wamid.1", "wamid.2"])
      assert.deepStrictEqual(yield* ids("kapso"), ["kapso-1", "kapso-2"])
      assert.deepStrictEqual(yield* ids("keebai"), ["none", "none"])
    }))

  it.effect("events name recipients by id for meta and keebai, by provider message id for kapso", () =>
    Effect.gen(function*() {
      const meta = yield* Effect.gen(function*() {
        const broadcast = yield* opened
        yield* submit(broadcast, 7)
        yield* TestClock.adjust("1 second")
        return { broadcast, events: yield* webhookEventsSoFar(1) }
      }).pipe(provide({ profile: "meta" }))
      assert.deepStrictEqual(meta.events[0]?.ref, { _tag: "ById", broadcastId: meta.broadcast.id, seq: 7 })
      assert.strictEqual(meta.events[0]?.providerMessageId, "wamid.1")

      const keebai = yield* Effect.gen(function*() {
        const broadcast = yield* opened
        yield* submit(broadcast, 3)
        yield* TestClock.adjust("1 second")
        return { broadcast, page: yield* pollAll(broadcast), hooks: yield* webhookEventsSoFar(1) }
      }).pipe(provide({ profile: "keebai" }))
      assert.deepStrictEqual(keebai.page.events[0]?.ref, { _tag: "ById", broadcastId: keebai.broadcast.id, seq: 3 })
      // Keebai's webhooks carry its message id, which the bulk call's receipt did not.
      assert.strictEqual(keebai.page.events[0]?.providerMessageId, "keebai-1")
      assert.deepStrictEqual(keebai.hooks, keebai.page.events)

      const kapso = yield* Effect.gen(function*() {
        const broadcast = yield* opened
        yield* submit(broadcast, 1)
        yield* BroadcastTransport.use((transport) => transport.start(broadcast))
        yield* TestClock.adjust("1 second")
        return yield* pollAll(broadcast)
      }).pipe(provide({ profile: "kapso" }))
      assert.deepStrictEqual(kapso.events[0]?.ref, { _tag: "ByProviderMessageId", providerMessageId: "kapso-1" })
    }))

  it.effect("unsupported: kapso refuses buttons, text headers and media headers on positional bodies", () =>
    Effect.gen(function*() {
      const shape = (fields: Partial<typeof TemplateSpec.TemplateSpec.Encoded>) =>
        new TemplateSpec.TemplateSpec({ ...template, ...fields } as typeof TemplateSpec.TemplateSpec.Type)
      const named = { _tag: "named", keys: ["first_name"] } as const
      const cases = [
        shape({}),
        shape({ buttons: [new TemplateSpec.Button({ index: 0, kind: "url" })] }),
        shape({ header: "text" }),
        shape({ header: "image" }),
        shape({ header: "image", body: named }),
        shape({ body: named })
      ]
      const answers = (profile: MemoryTransport.Profile) =>
        BroadcastTransport.useSync((transport) => cases.map((spec) => Option.isSome(transport.unsupported(spec))))
          .pipe(provide({ profile }))
      assert.deepStrictEqual(yield* answers("kapso"), [false, true, true, true, false, false])
      assert.deepStrictEqual(yield* answers("keebai"), [false, true, true, true, true, false])
      assert.deepStrictEqual(yield* answers("meta"), [false, false, false, false, false, false])
    }))
})

describe("MemoryTransport submit", () => {
  it.effect("records every message handed over, with attempts, times and outcomes", () =>
    Effect.gen(function*() {
      const memory = yield* MemoryTransport.MemoryTransport
      const broadcast = yield* opened
      yield* submit(broadcast, 1, 2)
      yield* TestClock.adjust("5 seconds")
      yield* submit(broadcast, 2, 3)
      const log = yield* memory.submitted
      assert.deepStrictEqual(
        log.map((entry) => [entry.seq, entry.attempt, DateTime.toEpochMillis(entry.at), entry.outcome._tag]),
        [[1, 1, 0, "Accepted"], [2, 1, 0, "Accepted"], [2, 2, 5000, "Accepted"], [3, 1, 5000, "Accepted"]]
      )
      assert.strictEqual(log[0]?.recipientId, Recipient.recipientId(broadcast.id, 1))
      assert.strictEqual(log[0]?.broadcastId, broadcast.id)
      assert.strictEqual(log[0]?.address, phone(1))
      assert.strictEqual(yield* memory.requests, 2)
      // Keebai does not deduplicate: the same number twice is sent twice.
      assert.strictEqual(yield* memory.sentCount(phone(2)), 2)
      assert.strictEqual(yield* memory.sentCount(phone(1)), 1)
      assert.strictEqual(yield* memory.sentCount(phone(99)), 0)
    }).pipe(provide({ profile: "keebai" })))

  it.effect("kapso drops a duplicate address within its campaign: same id, sent once", () =>
    Effect.gen(function*() {
      const memory = yield* MemoryTransport.MemoryTransport
      const transport = yield* BroadcastTransport
      const broadcast = yield* opened
      const { outcomes } = yield* transport.submit(broadcast, [item(broadcast, 1), item(broadcast, 2, phone(1))])
      assert.deepStrictEqual(outcomes.map((outcome) => outcome._tag === "Accepted" && outcome.providerMessageId), [
        Option.some("kapso-1"),
        Option.some("kapso-1")
      ])
      assert.strictEqual(yield* memory.sentCount(phone(1)), 1)
      // Another campaign is another send.
      const other = yield* opened
      yield* submit(other, 1)
      assert.strictEqual(yield* memory.sentCount(phone(1)), 2)
    }).pipe(provide({ profile: "kapso" })))

  it.effect("meta sends a duplicate twice", () =>
    Effect.gen(function*() {
      const memory = yield* MemoryTransport.MemoryTransport
      const broadcast = yield* opened
      yield* submit(broadcast, 1)
      yield* submit(broadcast, 1)
      assert.strictEqual(yield* memory.sentCount(phone(1)), 2)
    }).pipe(provide({ profile: "meta" })))

  it.effect("a batch over maxBatchSize fails with InvalidRequest and is recorded as failed", () =>
    Effect.gen(function*() {
      const memory = yield* MemoryTransport.MemoryTransport
      const broadcast = yield* opened
      const error = yield* failure(broadcast, 1, 2)
      assert.strictEqual(error.reason._tag, "InvalidRequest")
      assert.strictEqual(error.operation, "submit")
      assert.deepStrictEqual((yield* memory.submitted).map((entry) => entry.outcome._tag), ["Failed", "Failed"])
      assert.strictEqual(yield* memory.sentCount(phone(1)), 0)
      assert.strictEqual(yield* memory.requests, 1)
    }).pipe(provide({ profile: "meta" })))

  it.effect("a recipient id not made by Recipient.recipientId fails the call where events need it", () =>
    Effect.gen(function*() {
      const transport = yield* BroadcastTransport
      const broadcast = yield* opened
      const error = yield* Effect.flip(transport.submit(broadcast, [{ ...item(broadcast, 1), recipientId: "r-1" }]))
      assert.strictEqual(error.reason._tag, "InvalidRequest")
    }).pipe(provide({ profile: "meta" })))

  it.effect("malformed addresses: rejected per item by meta and kapso, the whole call fails with keebai", () =>
    Effect.gen(function*() {
      const bad = "+999" as Address.Address
      const run = Effect.gen(function*() {
        const transport = yield* BroadcastTransport
        const broadcast = yield* opened
        const batch = transport.capabilities.maxBatchSize === 1
          ? [item(broadcast, 1, bad)] as const
          : [item(broadcast, 1), item(broadcast, 2, bad), item(broadcast, 3)] as const
        return yield* Effect.result(transport.submit(broadcast, batch))
      })
      assert.deepStrictEqual(answered(yield* run.pipe(provide({ profile: "meta" }))), ["Rejected"])
      assert.deepStrictEqual(answered(yield* run.pipe(provide({ profile: "kapso" }))), [
        "Accepted",
        "Rejected",
        "Accepted"
      ])
      const keebai = yield* run.pipe(provide({ profile: "keebai" }))
      assert.isTrue(Result.isFailure(keebai))
      if (Result.isFailure(keebai)) {
        assert.strictEqual(keebai.failure.reason._tag, "InvalidRequest")
        assert.strictEqual(keebai.failure.reason.httpStatus, 400)
      }
    }))

  it.effect("a BSUID is an address for meta only", () =>
    Effect.gen(function*() {
      const bsuid = Address.Bsuid.make("US.13491208655302741918")
      const run = Effect.gen(function*() {
        const transport = yield* BroadcastTransport
        const broadcast = yield* opened
        return yield* Effect.result(transport.submit(broadcast, [item(broadcast, 1, bsuid)]))
      })
      assert.deepStrictEqual(answered(yield* run.pipe(provide({ profile: "meta" }))), ["Accepted"])
      assert.deepStrictEqual(answered(yield* run.pipe(provide({ profile: "kapso" }))), ["Rejected"])
      assert.deepStrictEqual(answered(yield* run.pipe(provide({ profile: "keebai" }))), "InvalidRequest")
    }))

  it.effect("values that do not fit the template are rejected for their recipient only", () =>
    Effect.gen(function*() {
      const transport = yield* BroadcastTransport
      const broadcast = yield* opened
      const wrong = new TemplateParams.TemplateParams({ body: [], buttons: [] })
      const { outcomes } = yield* transport.submit(broadcast, [item(broadcast, 1), {
        ...item(broadcast, 2),
        params: wrong
      }])
      assert.deepStrictEqual(tags(outcomes), ["Accepted", "Rejected"])
      const rejected = outcomes[1]
      if (rejected?._tag !== "Rejected") return assert.fail("expected a rejection")
      assert.strictEqual(rejected.error.reason._tag, "TemplateParamsMismatch")
      assert.strictEqual(rejected.error.scope, "message")
    }).pipe(provide({ profile: "keebai" })))

  it.effect("a held path answers Accepted with held", () =>
    Effect.gen(function*() {
      const broadcast = yield* opened
      const { outcomes } = yield* submit(broadcast, 1)
      assert.deepStrictEqual(outcomes, [{ _tag: "Accepted", providerMessageId: Option.some("wamid.1"), held: true }])
    }).pipe(provide({ profile: "meta", lifecycle: { path: { held: true, sent: "1 second" } } })))
})

describe("MemoryTransport latency", () => {
  it.effect("each submit takes the latency on the Effect Clock", () =>
    Effect.gen(function*() {
      const broadcast = yield* opened
      const fiber = yield* Effect.forkChild(submit(broadcast, 1))
      yield* TestClock.adjust(499)
      assert.isUndefined(fiber.pollUnsafe())
      yield* TestClock.adjust(1)
      const { outcomes } = yield* Fiber.join(fiber)
      assert.deepStrictEqual(tags(outcomes), ["Accepted"])
      const memory = yield* MemoryTransport.MemoryTransport
      assert.strictEqual(DateTime.toEpochMillis((yield* memory.submitted)[0]!.at), 500)
    }).pipe(provide({ latency: "500 millis" })))
})

describe("MemoryTransport rejection", () => {
  it.effect("by address, from a map: those items are rejected, the rest accepted", () =>
    Effect.gen(function*() {
      const broadcast = yield* opened
      const { outcomes } = yield* submit(broadcast, 1, 2, 3)
      assert.deepStrictEqual(tags(outcomes), ["Accepted", "Rejected", "Accepted"])
      assert.deepStrictEqual(outcomes[1], { _tag: "Rejected", error: undeliverable })
    }).pipe(provide({ profile: "kapso", reject: { items: new Map([[phone(2), undeliverable]]) } })))

  it.effect("by a function of the item", () =>
    Effect.gen(function*() {
      const broadcast = yield* opened
      const { outcomes } = yield* submit(broadcast, 1, 2, 3, 4)
      assert.deepStrictEqual(tags(outcomes), ["Accepted", "Rejected", "Accepted", "Rejected"])
    }).pipe(provide({
      profile: "keebai",
      reject: { items: (item) => item.seq % 2 === 0 ? Option.some(undeliverable) : Option.none() }
    })))

  it.effect("a fraction of items: deterministic by address, stacked, and about the share asked", () =>
    Effect.gen(function*() {
      const declined = error(new TransportError.RecipientDeclined({ message: "declined", code: 131049 }))
      const options: MemoryTransport.Options = {
        profile: "keebai",
        reject: {
          fractions: [
            { share: 0.1, error: undeliverable, of: "items" },
            { share: 0.05, error: declined, of: "items" }
          ]
        }
      }
      const seqs = Array.from({ length: 2000 }, (_, i) => i + 1)
      const run = Effect.gen(function*() {
        const broadcast = yield* opened
        const { outcomes } = yield* submit(broadcast, ...seqs)
        return outcomes.map((outcome) => outcome._tag === "Rejected" ? outcome.error.reason._tag : "Accepted")
      }).pipe(provide(options))
      const first = yield* run
      const count = (tag: string) => first.filter((found) => found === tag).length
      assert.isTrue(
        count("RecipientRejected") > 140 && count("RecipientRejected") < 260,
        `${count("RecipientRejected")}`
      )
      assert.isTrue(
        count("RecipientDeclined") > 60 && count("RecipientDeclined") < 140,
        `${count("RecipientDeclined")}`
      )
      // The same addresses get the same fate in another run.
      assert.deepStrictEqual(yield* run, first)
    }))

  it.effect("whole calls: a constant error fails every submit", () =>
    Effect.gen(function*() {
      const memory = yield* MemoryTransport.MemoryTransport
      const broadcast = yield* opened
      assert.deepStrictEqual(yield* failure(broadcast, 1, 2), paused)
      assert.strictEqual(yield* memory.sentCount(phone(1)), 0)
    }).pipe(provide({ profile: "keebai", reject: { requests: paused } })))

  it.effect("whole calls: a function of the batch", () =>
    Effect.gen(function*() {
      const broadcast = yield* opened
      yield* submit(broadcast, 1, 2)
      assert.deepStrictEqual(yield* failure(broadcast, 3, 4, 5), paused)
    }).pipe(provide({
      profile: "keebai",
      reject: { requests: (batch) => batch.length > 2 ? Option.some(paused) : Option.none() }
    })))

  it.effect("a fraction of calls, by call number", () =>
    Effect.gen(function*() {
      const throttled = error(new TransportError.RateLimited({ message: "130429", limit: "sender", code: 130429 }))
      const run = Effect.gen(function*() {
        const broadcast = yield* opened
        return yield* Effect.forEach(
          Array.from({ length: 400 }, (_, i) => i + 1),
          (seq) => Effect.map(Effect.result(submit(broadcast, seq)), Result.isFailure)
        )
      }).pipe(provide({ reject: { fractions: [{ share: 0.25, error: throttled, of: "requests" }] } }))
      const first = yield* run
      const failed = first.filter(Boolean).length
      assert.isTrue(failed > 70 && failed < 130, `${failed} of 400 calls failed`)
      assert.deepStrictEqual(yield* run, first)
    }))

  it.effect("setBehaviour: the template is paused from now on, then resumed", () =>
    Effect.gen(function*() {
      const memory = yield* MemoryTransport.MemoryTransport
      const broadcast = yield* opened
      yield* submit(broadcast, 1)
      yield* memory.setBehaviour({ reject: { requests: paused } })
      assert.deepStrictEqual(yield* failure(broadcast, 2), paused)
      yield* memory.setBehaviour({ reject: {} })
      const { outcomes } = yield* submit(broadcast, 2)
      assert.deepStrictEqual(tags(outcomes), ["Accepted"])
    }).pipe(provide()))

  it.effect("setBehaviour keeps what it is not given", () =>
    Effect.gen(function*() {
      const memory = yield* MemoryTransport.MemoryTransport
      const broadcast = yield* opened
      yield* memory.setBehaviour({ latency: "2 seconds" })
      const fiber = yield* Effect.forkChild(submit(broadcast, 1))
      yield* TestClock.adjust("2 seconds")
      const { outcomes } = yield* Fiber.join(fiber)
      assert.deepStrictEqual(outcomes[0], { _tag: "Rejected", error: undeliverable })
    }).pipe(provide({ reject: { items: new Map([[phone(1), undeliverable]]) } })))
})

describe("MemoryTransport rate", () => {
  it.effect("messages over the limit in a window fail with RateLimited until the window ends", () =>
    Effect.gen(function*() {
      const broadcast = yield* opened
      yield* submit(broadcast, 1, 2, 3, 4, 5, 6)
      yield* TestClock.adjust(300)
      yield* submit(broadcast, 7, 8, 9, 10)
      const error = yield* failure(broadcast, 11)
      assert.strictEqual(error.reason._tag, "RateLimited")
      assert.isTrue(error.isRetryable)
      assert.deepStrictEqual(error.retryAfter, Option.some(Duration.millis(700)))
      if (error.reason._tag === "RateLimited") assert.strictEqual(error.reason.limit, "sender")
      // A refused call does not use the budget: the next window has room for the whole limit.
      yield* TestClock.adjust(700)
      yield* submit(broadcast, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20)
      yield* TestClock.adjust(999)
      assert.deepStrictEqual((yield* failure(broadcast, 21)).retryAfter, Option.some(Duration.millis(1)))
    }).pipe(provide({ profile: "keebai", rate: { limit: 10, windowMillis: 1000 } })))

  it.effect("a batch bigger than the limit never fits", () =>
    Effect.gen(function*() {
      const broadcast = yield* opened
      assert.strictEqual((yield* failure(broadcast, 1, 2, 3)).reason._tag, "RateLimited")
    }).pipe(provide({ profile: "keebai", rate: { limit: 2, windowMillis: 1000 } })))

  it.effect("counting calls: Keebai's 60 requests per minute", () =>
    Effect.gen(function*() {
      const broadcast = yield* opened
      for (let call = 1; call <= 60; call++) yield* submit(broadcast, call, call + 1000)
      yield* TestClock.adjust("15 seconds")
      const error = yield* failure(broadcast, 61)
      assert.deepStrictEqual(error.retryAfter, Option.some(Duration.seconds(45)))
      if (error.reason._tag === "RateLimited") assert.strictEqual(error.reason.limit, "credential")
    }).pipe(provide({ profile: "keebai", rate: { limit: 60, windowMillis: 60_000, count: "requests" } })))
})

describe("MemoryTransport lifecycle", () => {
  it.effect("default path: sent after 1 s, delivered 1 s later, then nothing", () =>
    Effect.gen(function*() {
      const broadcast = yield* opened
      yield* submit(broadcast, 1, 2)
      yield* TestClock.adjust(999)
      assert.deepStrictEqual((yield* pollAll(broadcast)).events, [])
      yield* TestClock.adjust(1)
      assert.deepStrictEqual(summary((yield* pollAll(broadcast)).events), ["#1 sent @1000", "#2 sent @1000"])
      yield* TestClock.adjust("1 second")
      const page = yield* pollAll(broadcast)
      assert.deepStrictEqual(summary(page.events), [
        "#1 sent @1000",
        "#2 sent @1000",
        "#1 delivered @2000",
        "#2 delivered @2000"
      ])
      assert.isTrue(page.done)
      yield* TestClock.adjust("1 hour")
      assert.strictEqual((yield* pollAll(broadcast)).events.length, 4)
    }).pipe(provide({ profile: "keebai" })))

  it.effect("a custom path: each step counts from the one before, a missing step is skipped", () =>
    Effect.gen(function*() {
      const broadcast = yield* opened
      yield* TestClock.adjust(100)
      yield* submit(broadcast, 1)
      yield* TestClock.adjust("1 hour")
      assert.deepStrictEqual(summary((yield* pollAll(broadcast)).events), [
        "#1 sent @600",
        "#1 read @2600",
        "#1 replied @62600"
      ])
    }).pipe(provide({ profile: "keebai", lifecycle: { path: { sent: 500, read: "2 seconds", replied: "1 minute" } } })))

  it.effect("a failing path ends in failed with its code", () =>
    Effect.gen(function*() {
      const broadcast = yield* opened
      yield* submit(broadcast, 1)
      yield* TestClock.adjust("10 seconds")
      const events = (yield* pollAll(broadcast)).events
      assert.deepStrictEqual(events.map((event) => event.status), [
        { _tag: "sent" },
        { _tag: "failed", code: "131026", reason: "undeliverable" }
      ])
    }).pipe(provide({
      profile: "keebai",
      lifecycle: { path: { sent: "1 second", failed: { after: "2 seconds", code: "131026", reason: "undeliverable" } } }
    })))

  it.effect("per-address paths and a deterministic mix", () =>
    Effect.gen(function*() {
      const seqs = Array.from({ length: 1000 }, (_, i) => i + 1)
      const run = Effect.gen(function*() {
        const broadcast = yield* opened
        yield* submit(broadcast, ...seqs)
        yield* TestClock.adjust("1 hour")
        const events = (yield* pollAll(broadcast)).events
        const last = new Map(events.map((event) => [event.ref._tag === "ById" ? event.ref.seq : 0, event.status._tag]))
        return seqs.map((seq) => last.get(seq) ?? "accepted")
      }).pipe(provide({
        profile: "keebai",
        pageSize: 10_000,
        lifecycle: {
          path: { sent: "1 second", delivered: "1 second", read: "1 minute" },
          mix: [
            { share: 0.1, path: { sent: "1 second", delivered: "1 second" } },
            { share: 0.05, path: { sent: "1 second", failed: { after: "1 second", code: "131026", reason: "x" } } },
            { share: 0.05, path: { sent: "1 second", replied: "5 minutes" } }
          ],
          byAddress: new Map([[phone(1), {}], [phone(2), { failed: { after: 0, reason: "blocked" } }]])
        }
      }))
      const first = yield* run
      assert.strictEqual(first[0], "accepted")
      assert.strictEqual(first[1], "failed")
      const count = (tag: string) => first.filter((found) => found === tag).length
      assert.isTrue(count("read") > 720 && count("read") < 880, `${count("read")} read`)
      assert.isTrue(count("delivered") > 60 && count("delivered") < 140, `${count("delivered")} delivered`)
      assert.isTrue(count("failed") > 25 && count("failed") < 80, `${count("failed")} failed`)
      assert.isTrue(count("replied") > 25 && count("replied") < 80, `${count("replied")} replied`)
      assert.deepStrictEqual(yield* run, first)
    }))

  it.effect("setBehaviour changes the path of messages handed over afterwards", () =>
    Effect.gen(function*() {
      const memory = yield* MemoryTransport.MemoryTransport
      const broadcast = yield* opened
      yield* submit(broadcast, 1)
      yield* memory.setBehaviour({ lifecycle: { path: { failed: { after: "1 second", reason: "paused" } } } })
      yield* submit(broadcast, 2)
      yield* TestClock.adjust("1 minute")
      assert.deepStrictEqual(summary((yield* pollAll(broadcast)).events), [
        "#1 sent @1000",
        "#2 failed @1000",
        "#1 delivered @2000"
      ])
    }).pipe(provide({ profile: "keebai" })))
})

describe("MemoryTransport webhookEvents", () => {
  it.effect("meta publishes each step as it happens, and poll says nothing", () =>
    Effect.gen(function*() {
      const memory = yield* MemoryTransport.MemoryTransport
      const broadcast = yield* opened
      const live = yield* Effect.forkChild(Stream.runCollect(Stream.take(memory.webhookEvents, 4)))
      yield* submit(broadcast, 1)
      yield* TestClock.adjust(500)
      yield* submit(broadcast, 2)
      yield* TestClock.adjust("1 second")
      assert.isUndefined(live.pollUnsafe())
      yield* TestClock.adjust("1 second")
      const expected = ["#1 sent @1000", "#2 sent @1500", "#1 delivered @2000", "#2 delivered @2500"]
      assert.deepStrictEqual(summary(yield* Fiber.join(live)), expected)
      // A subscriber that comes late gets every event from the first.
      assert.deepStrictEqual(summary(yield* Stream.runCollect(Stream.take(memory.webhookEvents, 4))), expected)
      assert.deepStrictEqual(yield* pollAll(broadcast), { events: [], cursor: Option.none(), done: true })
    }).pipe(provide({ profile: "meta" })))

  it.effect("kapso publishes no webhooks", () =>
    Effect.gen(function*() {
      const memory = yield* MemoryTransport.MemoryTransport
      const transport = yield* BroadcastTransport
      const broadcast = yield* opened
      yield* submit(broadcast, 1)
      yield* transport.start(broadcast)
      const hooks = yield* Effect.forkChild(Stream.runCollect(memory.webhookEvents))
      yield* TestClock.adjust("1 minute")
      assert.isUndefined(hooks.pollUnsafe())
      assert.strictEqual((yield* pollAll(broadcast)).events.length, 2)
      yield* Fiber.interrupt(hooks)
    }).pipe(provide({ profile: "kapso" })))
})

describe("MemoryTransport poll", () => {
  it.effect("pages from a cursor; done only at the end once every message is final", () =>
    Effect.gen(function*() {
      const transport = yield* BroadcastTransport
      const broadcast = yield* opened
      yield* submit(broadcast, 1, 2, 3)
      yield* transport.start(broadcast)
      yield* TestClock.adjust("1 second")
      const first = yield* transport.poll(broadcast, Option.none())
      assert.deepStrictEqual(summary(first.events), ["kapso-1 sent @1000", "kapso-2 sent @1000"])
      assert.deepStrictEqual(first.cursor, Option.some("2"))
      assert.isFalse(first.done)
      const second = yield* transport.poll(broadcast, first.cursor)
      assert.deepStrictEqual(summary(second.events), ["kapso-3 sent @1000"])
      assert.deepStrictEqual(second.cursor, Option.some("3"))
      assert.isFalse(second.done, "deliveries are still to come")
      const empty = yield* transport.poll(broadcast, second.cursor)
      assert.deepStrictEqual(empty, { events: [], cursor: Option.some("3"), done: false })
      yield* TestClock.adjust("1 second")
      const third = yield* transport.poll(broadcast, second.cursor)
      assert.strictEqual(third.events.length, 2)
      assert.isFalse(third.done, "one event is left beyond this page")
      const last = yield* transport.poll(broadcast, third.cursor)
      assert.deepStrictEqual(summary(last.events), ["kapso-3 delivered @2000"])
      assert.isTrue(last.done)
      // Polling again from the start replays everything.
      assert.strictEqual((yield* transport.poll(broadcast, Option.none())).events.length, 2)
    }).pipe(provide({ profile: "kapso", pageSize: 2 })))

  it.effect("a cursor that is not a position fails with InvalidRequest", () =>
    Effect.gen(function*() {
      const transport = yield* BroadcastTransport
      const broadcast = yield* opened
      yield* submit(broadcast, 1)
      for (const cursor of ["x", "-1", "01", "1.5", "2"]) {
        const error = yield* Effect.flip(transport.poll(broadcast, Option.some(cursor)))
        assert.strictEqual(error.reason._tag, "InvalidRequest", cursor)
      }
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* transport.poll(broadcast, Option.some("1"))).events.length, 0)
    }).pipe(provide({ profile: "keebai" })))

  it.effect("a broadcast never submitted is done; an unknown remote campaign is an error", () =>
    Effect.gen(function*() {
      const keebai = yield* Effect.gen(function*() {
        return yield* pollAll(yield* opened)
      }).pipe(provide({ profile: "keebai" }))
      assert.deepStrictEqual(keebai, { events: [], cursor: Option.some("0"), done: true })
      const kapso = yield* Effect.gen(function*() {
        const broadcast = yield* opened
        return yield* Effect.flip(pollAll(new Broadcast.Broadcast({ ...broadcast, remoteId: "remote-99" })))
      }).pipe(provide({ profile: "kapso" }))
      assert.strictEqual(kapso.reason._tag, "InvalidRequest")
      assert.strictEqual(kapso.reason.httpStatus, 404)
    }))
})

describe("MemoryTransport start (kapso)", () => {
  it.effect("nothing is sent before start; the lifecycle runs from start", () =>
    Effect.gen(function*() {
      const transport = yield* BroadcastTransport
      const broadcast = yield* opened
      yield* submit(broadcast, 1)
      yield* TestClock.adjust("1 hour")
      const before = yield* pollAll(broadcast)
      assert.deepStrictEqual(before.events, [])
      assert.isFalse(before.done, "a draft is not done")
      yield* transport.start(broadcast)
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(summary((yield* pollAll(broadcast)).events), ["kapso-1 sent @3601000"])
    }).pipe(provide({ profile: "kapso" })))

  it.effect("start twice, start of an empty campaign, and adding after start fail like Kapso's 422", () =>
    Effect.gen(function*() {
      const transport = yield* BroadcastTransport
      const empty = yield* opened
      const nothing = yield* Effect.flip(transport.start(empty))
      assert.strictEqual(nothing.reason._tag, "InvalidRequest")
      assert.strictEqual(nothing.reason.httpStatus, 422)
      const broadcast = yield* opened
      yield* submit(broadcast, 1)
      yield* transport.start(broadcast)
      const twice = yield* Effect.flip(transport.start(broadcast))
      assert.strictEqual(twice.reason._tag, "InvalidRequest")
      assert.strictEqual(twice.reason.httpStatus, 422)
      const late = yield* failure(broadcast, 2)
      assert.strictEqual(late.reason.httpStatus, 422)
    }).pipe(provide({ profile: "kapso" })))

  it.effect("submit needs the remote id that open gave, for this broadcast", () =>
    Effect.gen(function*() {
      const broadcast = yield* opened
      const missing = yield* failure(new Broadcast.Broadcast({ ...broadcast, remoteId: undefined }), 1)
      assert.strictEqual(missing.reason._tag, "InvalidRequest")
      const unknown = yield* failure(new Broadcast.Broadcast({ ...broadcast, remoteId: "remote-42" }), 1)
      assert.strictEqual(unknown.reason.httpStatus, 404)
      const other = yield* opened
      const crossed = yield* failure(new Broadcast.Broadcast({ ...other, remoteId: broadcast.remoteId }), 1)
      assert.strictEqual(crossed.reason._tag, "InvalidRequest")
    }).pipe(provide({ profile: "kapso" })))

  it.effect("start is a no-op where submit sends", () =>
    Effect.gen(function*() {
      const transport = yield* BroadcastTransport
      const broadcast = yield* opened
      yield* transport.start(broadcast)
      yield* submit(broadcast, 1)
      yield* transport.start(broadcast)
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* pollAll(broadcast)).events.length, 1)
    }).pipe(provide({ profile: "keebai" })))
})

describe("MemoryTransport cancel", () => {
  it.effect("kapso cannot cancel: Unsupported", () =>
    Effect.gen(function*() {
      const transport = yield* BroadcastTransport
      const broadcast = yield* opened
      const error = yield* Effect.flip(transport.cancel(broadcast))
      assert.strictEqual(error.reason._tag, "Unsupported")
      assert.strictEqual(error.operation, "cancel")
    }).pipe(provide({ profile: "kapso" })))

  it.effect("elsewhere cancel stops the lifecycles still running and refuses later submits", () =>
    Effect.gen(function*() {
      const memory = yield* MemoryTransport.MemoryTransport
      const transport = yield* BroadcastTransport
      const broadcast = yield* opened
      const other = yield* opened
      yield* submit(broadcast, 1)
      yield* submit(other, 1)
      yield* TestClock.adjust("1 second")
      yield* transport.cancel(broadcast)
      yield* transport.cancel(broadcast)
      yield* TestClock.adjust("1 hour")
      const events = yield* Stream.runCollect(Stream.take(memory.webhookEvents, 3))
      assert.deepStrictEqual(
        events.map((event) => [event.ref._tag === "ById" && event.ref.broadcastId === broadcast.id, event.status._tag]),
        [[true, "sent"], [false, "sent"], [false, "delivered"]]
      )
      assert.strictEqual((yield* failure(broadcast, 2)).reason._tag, "InvalidRequest")
    }).pipe(provide({ profile: "meta" })))

  it.effect("a cancelled broadcast polls as done", () =>
    Effect.gen(function*() {
      const transport = yield* BroadcastTransport
      const broadcast = yield* opened
      yield* submit(broadcast, 1, 2)
      yield* TestClock.adjust("1 second")
      assert.isFalse((yield* pollAll(broadcast)).done)
      yield* transport.cancel(broadcast)
      const page = yield* pollAll(broadcast)
      assert.strictEqual(page.events.length, 2)
      assert.isTrue(page.done)
    }).pipe(provide({ profile: "keebai" })))
})

describe("TransportSuite observers", () => {
  it.effect("collected skips other broadcasts' events and stops once every message was named", () =>
    Effect.gen(function*() {
      const broadcast = yield* opened
      const other = yield* opened
      yield* submit(other, 1)
      const { outcomes } = yield* submit(broadcast, 2)
      const accepted = [{
        item: item(broadcast, 2),
        providerMessageId: outcomes[0]?._tag === "Accepted" ? outcomes[0].providerMessageId : Option.none()
      }]
      const observation: TransportSuite.Observation = {
        broadcast,
        accepted,
        indexOf: (event) =>
          event.ref._tag === "ById" && event.ref.broadcastId === broadcast.id && event.ref.seq === 2
            ? Option.some(0)
            : Option.none()
      }
      const fiber = yield* Effect.forkChild(TransportSuite.collected(webhooks)(observation))
      yield* TestClock.adjust("1 second")
      const events = yield* Fiber.join(fiber)
      assert.deepStrictEqual(summary(events), ["#2 sent @1000"])
    }).pipe(provide({ profile: "meta" })))

  it.effect("polled follows the cursor until done", () =>
    Effect.gen(function*() {
      const broadcast = yield* opened
      yield* submit(broadcast, 1, 2, 3)
      const observation: TransportSuite.Observation = { broadcast, accepted: [], indexOf: () => Option.none() }
      const fiber = yield* Effect.forkChild(TransportSuite.polled({ interval: "5 seconds" })(observation))
      yield* TestClock.adjust("10 seconds")
      assert.deepStrictEqual(summary(yield* Fiber.join(fiber)), [
        "#1 sent @1000",
        "#2 sent @1000",
        "#3 sent @1000",
        "#1 delivered @2000",
        "#2 delivered @2000",
        "#3 delivered @2000"
      ])
    }).pipe(provide({ profile: "keebai", pageSize: 2 })))
})

// The suite's live mode (real clock, as against HTTP emulators), with a lifecycle short enough to wait for.
TransportSuite.suite("memory (keebai profile, live clock)", {
  layer: MemoryTransport.layer({ profile: "keebai", lifecycle: { path: { sent: 5, delivered: 5 } } }),
  statusEvents: TransportSuite.polled({ interval: "10 millis" }),
  invalidAddress: { refuses: "call" },
  live: true
})
