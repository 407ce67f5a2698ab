// KapsoBroadcasts against a recording fake HttpClient: every answer shape, read the way the transport must.
import * as Address from "@crier/core/Address"
import type * as Broadcast from "@crier/core/Broadcast"
import { BroadcastTransport } from "@crier/core/BroadcastTransport"
import * as StatusEvent from "@crier/core/StatusEvent"
import * as TemplateParams from "@crier/core/TemplateParams"
import * as KapsoBroadcasts from "@crier/kapso/KapsoBroadcasts"
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, DateTime, Duration, Effect, Option } from "effect"
import { TestClock } from "effect/testing"
import {
  apiKey,
  baseUrl,
  fakeClient,
  item,
  items,
  makeBroadcast,
  namedTemplate,
  phone,
  type Reply,
  reply,
  type Seen,
  sequence,
  template
} from "./fixtures.ts"

const remoteId = "b-1"

const withTransport = <A, E>(
  answer: (seen: Seen, index: number) => Reply,
  use: (
    transport: BroadcastTransport["Service"],
    seen: ReadonlyArray<Seen>,
    broadcast: Broadcast.Broadcast
  ) => Effect.Effect<A, E>,
  options: Partial<KapsoBroadcasts.Options> = {}
) => {
  const fake = fakeClient(answer)
  return Effect.gen(function*() {
    const transport = yield* KapsoBroadcasts.make({ apiKey, baseUrl, templateIds: { spring_sale: "t-1" }, ...options })
    const broadcast = yield* makeBroadcast({ remoteId })
    return yield* use(transport, fake.seen, broadcast)
  }).pipe(Effect.provide(fake.layer))
}

const added = (added: number, duplicates: number, errors: ReadonlyArray<string> = []) =>
  reply(201, { data: { added, duplicates, errors } })

const broadcastJson = (fields: Record<string, unknown>) => ({
  id: remoteId,
  name: "spring sale",
  status: "sending",
  started_at: "2025-07-15T10:00:00Z",
  completed_at: null,
  total_recipients: 3,
  sent_count: 0,
  failed_count: 0,
  delivered_count: 0,
  read_count: 0,
  responded_count: 0,
  pending_count: 3,
  ...fields
})

describe("KapsoBroadcasts.submit", () => {
  it.effect("adds the batch as +E.164 numbers with positional parameters, and names each by its number", () =>
    withTransport(() => added(3, 0), (transport, seen, broadcast) =>
      Effect.gen(function*() {
        const { outcomes } = yield* transport.submit(broadcast, items(broadcast, 3))
        assert.strictEqual(seen[0]!.url, `/api/v1/whatsapp_broadcasts/${remoteId}/recipients`)
        assert.deepStrictEqual(seen[0]!.body, {
          recipients: [1, 2, 3].map((n) => ({ phone_number: phone(n), template_parameters: [`Ada ${n}`] }))
        })
        assert.deepStrictEqual(
          outcomes.map((outcome) => outcome._tag === "Accepted" ? Option.getOrNull(outcome.providerMessageId) : null),
          [1, 2, 3].map((n) => KapsoBroadcasts.messageId(remoteId, phone(n)))
        )
      })))

  it.effect("sends named parameters with the media header as header_url and header_filename", () =>
    withTransport(() => added(1, 0), (transport, seen) =>
      Effect.gen(function*() {
        const broadcast = yield* makeBroadcast({ remoteId, template: namedTemplate })
        const outgoing = {
          ...item(broadcast, 1),
          params: new TemplateParams.TemplateParams({
            body: { first_name: "Ada" },
            header: { _tag: "media", kind: "image", link: "https://example.com/a.jpg", filename: "a.jpg" },
            buttons: []
          })
        }
        yield* transport.submit(broadcast, [outgoing])
        assert.deepStrictEqual(seen[0]!.body, {
          recipients: [{
            phone_number: phone(1),
            template_parameters: {
              first_name: "Ada",
              header_url: "https://example.com/a.jpg",
              header_filename: "a.jpg"
            }
          }]
        })
      })))

  it.effect("counts from 1: 'Recipient 3' is the third item", () =>
    withTransport(
      () => added(4, 0, ["Recipient 3: invalid phone number format"]),
      (transport, _, broadcast) =>
        Effect.gen(function*() {
          const batch = items(broadcast, 5)
          const bad = [...batch]
          bad[2] = item(broadcast, 3, "+999" as Address.Address)
          const { outcomes } = yield* transport.submit(broadcast, [bad[0]!, ...bad.slice(1)])
          assert.deepStrictEqual(outcomes.map((o) => o._tag), [
            "Accepted",
            "Accepted",
            "Rejected",
            "Accepted",
            "Accepted"
          ])
          const rejected = outcomes[2]!
          if (rejected._tag === "Rejected") {
            assert.strictEqual(rejected.error.reason._tag, "RecipientRejected")
            assert.strictEqual(rejected.error.scope, "message")
            assert.include(rejected.error.message, "invalid phone number format")
          }
        })
    ))

  it.effect("counts from 0: 'Recipient 2' is the third item when that reading fits the error", () =>
    withTransport(
      () => added(4, 0, ["Recipient 2: invalid phone number format"]),
      (transport, _, broadcast) =>
        Effect.gen(function*() {
          const batch = [...items(broadcast, 5)]
          batch[2] = item(broadcast, 3, "+999" as Address.Address)
          const { outcomes } = yield* transport.submit(broadcast, [batch[0]!, ...batch.slice(1)])
          assert.deepStrictEqual(outcomes.map((o) => o._tag), [
            "Accepted",
            "Accepted",
            "Rejected",
            "Accepted",
            "Accepted"
          ])
        })
    ))

  it.effect("'Recipient 0' settles counting from 0; a parameter error fails that recipient only", () =>
    withTransport(
      () => added(2, 0, ["Recipient 0: template parameters invalid - Template requires 1 parameters but 0 provided"]),
      (transport, _, broadcast) =>
        Effect.gen(function*() {
          const { outcomes } = yield* transport.submit(broadcast, items(broadcast, 3))
          assert.deepStrictEqual(outcomes.map((o) => o._tag), ["Rejected", "Accepted", "Accepted"])
          const rejected = outcomes[0]!
          if (rejected._tag === "Rejected") {
            assert.strictEqual(rejected.error.reason._tag, "TemplateParamsMismatch")
            assert.strictEqual(rejected.error.scope, "message")
          }
        })
    ))

  it.effect("'Recipient N' for a batch of N settles counting from 1", () =>
    withTransport(
      () => added(2, 0, ["Recipient 3: blocked by Kapso"]),
      (transport, _, broadcast) =>
        Effect.gen(function*() {
          const { outcomes } = yield* transport.submit(broadcast, items(broadcast, 3))
          assert.deepStrictEqual(outcomes.map((o) => o._tag), ["Accepted", "Accepted", "Rejected"])
        })
    ))

  it.effect("an error both readings fit and nothing can tell apart fails the call loudly", () =>
    withTransport(
      () => added(2, 0, ["Recipient 2: blocked by Kapso"]),
      (transport, _, broadcast) =>
        Effect.gen(function*() {
          const error = yield* Effect.flip(transport.submit(broadcast, items(broadcast, 3)))
          assert.strictEqual(error.reason._tag, "InvalidRequest")
          assert.strictEqual(error.scope, "broadcast")
          assert.include(error.message, "from 0 or from 1")
          assert.include(error.message, "errorIndexBase")
        })
    ))

  it.effect("errorIndexBase settles what the answer cannot", () =>
    withTransport(
      () => added(2, 0, ["Recipient 2: blocked by Kapso"]),
      (transport, _, broadcast) =>
        Effect.gen(function*() {
          const { outcomes } = yield* transport.submit(broadcast, items(broadcast, 3))
          assert.deepStrictEqual(outcomes.map((o) => o._tag), ["Accepted", "Rejected", "Accepted"])
        }),
      { errorIndexBase: 1 }
    ))

  it.effect("a reading settled by one answer is kept for the next ambiguous one", () =>
    withTransport(
      sequence(() => added(2, 0, ["Recipient 0: blocked"]), () => added(2, 0, ["Recipient 1: blocked"])),
      (transport, _, broadcast) =>
        Effect.gen(function*() {
          yield* transport.submit(broadcast, items(broadcast, 3))
          const { outcomes } = yield* transport.submit(broadcast, items(broadcast, 3))
          assert.deepStrictEqual(outcomes.map((o) => o._tag), ["Accepted", "Rejected", "Accepted"])
        })
    ))

  it.effect("an error that names no recipient fails the call, never silently", () =>
    withTransport(() => added(2, 0, ["Something went wrong"]), (transport, _, broadcast) =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(transport.submit(broadcast, items(broadcast, 3)))
        assert.strictEqual(error.reason._tag, "InvalidRequest")
        assert.include(error.message, "Something went wrong")
        assert.include(error.message, "unknown")
      })))

  it.effect("an error naming a recipient outside the batch fails the call", () =>
    withTransport(
      () => added(2, 0, ["Recipient 9: invalid phone number format"]),
      (transport, _, broadcast) =>
        Effect.gen(function*() {
          const error = yield* Effect.flip(transport.submit(broadcast, items(broadcast, 3)))
          assert.strictEqual(error.reason._tag, "InvalidRequest")
          assert.include(error.message, "outside a batch of 3")
        })
    ))

  it.effect("counts that do not add up fail the call", () =>
    withTransport(() => added(2, 0), (transport, _, broadcast) =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(transport.submit(broadcast, items(broadcast, 3)))
        assert.strictEqual(error.reason._tag, "InvalidRequest")
        assert.include(error.message, "does not add up")
      })))

  it.effect("duplicates Kapso skipped are in the broadcast: accepted", () =>
    withTransport(() => added(1, 2), (transport, _, broadcast) =>
      Effect.gen(function*() {
        const { outcomes } = yield* transport.submit(broadcast, items(broadcast, 3))
        assert.deepStrictEqual(outcomes.map((o) => o._tag), ["Accepted", "Accepted", "Accepted"])
      })))

  it.effect("a BSUID is refused without a request; the rest go, and errors count within what was sent", () =>
    withTransport(
      () => added(1, 0, ["Recipient 2: invalid phone number format"]),
      (transport, seen, broadcast) =>
        Effect.gen(function*() {
          const bsuid = Address.Bsuid.make("US.13491208655302741918")
          const batch = [item(broadcast, 1, bsuid), item(broadcast, 2), item(broadcast, 3, "+999" as Address.Address)]
          const { outcomes } = yield* transport.submit(broadcast, [batch[0]!, ...batch.slice(1)])
          assert.deepStrictEqual(outcomes.map((o) => o._tag), ["Rejected", "Accepted", "Rejected"])
          assert.strictEqual((seen[0]!.body as { recipients: Array<unknown> }).recipients.length, 2)
        })
    ))

  it.effect("only BSUIDs: no request at all", () =>
    withTransport(() => added(0, 0), (transport, seen, broadcast) =>
      Effect.gen(function*() {
        const { outcomes } = yield* transport.submit(broadcast, [item(broadcast, 1, Address.Bsuid.make("US.1"))])
        assert.strictEqual(outcomes[0]!._tag, "Rejected")
        assert.strictEqual(seen.length, 0)
      })))

  it.effect("more than 1,000 is refused before any request", () =>
    withTransport(() => added(0, 0), (transport, seen, broadcast) =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(transport.submit(broadcast, items(broadcast, 1001)))
        assert.strictEqual(error.reason._tag, "InvalidRequest")
        assert.strictEqual(seen.length, 0)
      })))

  it.effect("a broadcast without a remote id is refused", () =>
    withTransport(() => added(0, 0), (transport) =>
      Effect.gen(function*() {
        const broadcast = yield* makeBroadcast()
        const error = yield* Effect.flip(transport.submit(broadcast, items(broadcast, 1)))
        assert.strictEqual(error.reason._tag, "InvalidRequest")
        assert.include(error.message, "remoteId")
      })))
})

describe("KapsoBroadcasts.open", () => {
  it.effect("creates the draft for the broadcast's sender with the resolved template", () =>
    withTransport(
      () => reply(201, { data: broadcastJson({ id: "new-1", status: "draft" }) }),
      (transport, seen) =>
        Effect.gen(function*() {
          const broadcast = yield* makeBroadcast({ sender: "config-7" })
          assert.deepStrictEqual(yield* transport.open(broadcast), Option.some("new-1"))
          assert.deepStrictEqual(seen[0]!.body, {
            whatsapp_broadcast: { name: "spring sale", whatsapp_config_id: "config-7", whatsapp_template_id: "t-1" }
          })
        })
    ))

  it.effect("falls back to whatsappConfigId when the broadcast names no sender, and refuses when neither does", () =>
    Effect.gen(function*() {
      yield* withTransport(
        () => reply(201, { data: broadcastJson({ id: "new-1" }) }),
        (transport, seen) =>
          Effect.gen(function*() {
            yield* transport.open(yield* makeBroadcast({ sender: "" }))
            assert.strictEqual(
              (seen[0]!.body as { whatsapp_broadcast: { whatsapp_config_id: string } }).whatsapp_broadcast
                .whatsapp_config_id,
              "default-config"
            )
          }),
        { whatsappConfigId: "default-config" }
      )
      yield* withTransport(() => reply(201, {}), (transport, seen) =>
        Effect.gen(function*() {
          const error = yield* Effect.flip(transport.open(yield* makeBroadcast({ sender: " " })))
          assert.strictEqual(error.reason._tag, "InvalidRequest")
          assert.strictEqual(seen.length, 0)
        }))
    }))
})

describe("KapsoBroadcasts.start", () => {
  it.effect("sends", () =>
    withTransport(
      () => reply(202, { data: { id: remoteId, status: "sending" } }),
      (transport, seen, broadcast) =>
        Effect.gen(function*() {
          yield* transport.start(broadcast)
          assert.strictEqual(seen[0]!.url, `/api/v1/whatsapp_broadcasts/${remoteId}/send`)
        })
    ))

  for (
    const [status, message] of [["sending", "Broadcast is already sending"], [
      "completed",
      "Broadcast already completed"
    ]]
  ) {
    it.effect(`is idempotent: 422 '${message}' then a ${status} broadcast is success`, () =>
      withTransport(
        sequence(() => reply(422, { error: message }), () => reply(200, { data: broadcastJson({ status }) })),
        (transport, seen, broadcast) =>
          Effect.gen(function*() {
            yield* transport.start(broadcast)
            assert.deepStrictEqual(seen.map((s) => s.method), ["POST", "GET"])
          })
      ))
  }

  it.effect("a 422 on a draft (no recipients) is the error it is", () =>
    withTransport(
      sequence(
        () => reply(422, { error: "Broadcast has no recipients" }),
        () => reply(200, { data: broadcastJson({ status: "draft" }) })
      ),
      (transport, _, broadcast) =>
        Effect.gen(function*() {
          const error = yield* Effect.flip(transport.start(broadcast))
          assert.strictEqual(error.reason._tag, "InvalidRequest")
          assert.include(error.message, "Broadcast has no recipients")
        })
    ))

  it.effect("other failures are not second-guessed", () =>
    withTransport(
      () => reply(401, { error: "Invalid API key" }),
      (transport, seen, broadcast) =>
        Effect.gen(function*() {
          const error = yield* Effect.flip(transport.start(broadcast))
          assert.strictEqual(error.reason._tag, "Unauthorized")
          assert.strictEqual(seen.length, 1)
        })
    ))
})

describe("KapsoBroadcasts.poll", () => {
  const row = (n: number, fields: Record<string, unknown>) => ({
    id: `r-${n}`,
    phone_number: phone(n).slice(1),
    status: "pending",
    sent_at: null,
    failed_at: null,
    delivered_at: null,
    read_at: null,
    responded_at: null,
    error_message: null,
    error_details: null,
    ...fields
  })

  /** Answers the broadcast with `counters()` and page `p` of `pages()`. */
  const kapso =
    (counters: () => Record<string, unknown>, pages: () => ReadonlyArray<ReadonlyArray<unknown>>) =>
    (seen: Seen): Reply => {
      const match = /recipients\?page=(\d+)/.exec(seen.url)
      if (match === null) return reply(200, { data: broadcastJson(counters()) })
      const all = pages()
      const page = Number(match[1])
      return reply(200, {
        data: all[page - 1] ?? [],
        meta: { page, per_page: 100, total_pages: all.length, total_count: all.flat().length }
      })
    }

  const at = (iso: string) => DateTime.makeUnsafe(iso)
  const ref = (n: number) => ({
    _tag: "ByProviderMessageId",
    providerMessageId: KapsoBroadcasts.messageId(remoteId, phone(n))
  })

  it.effect("reports nothing for a draft, or before anything was sent, without reading recipients", () =>
    Effect.gen(function*() {
      let counters: Record<string, unknown> = { status: "draft" }
      yield* withTransport(
        kapso(() => counters, () => [[row(1, {})]]),
        (transport, seen, broadcast) =>
          Effect.gen(function*() {
            const draft = yield* transport.poll(broadcast, Option.none())
            assert.deepStrictEqual([draft.events, draft.done], [[], false])
            counters = { status: "sending" }
            const early = yield* transport.poll(broadcast, draft.cursor)
            assert.deepStrictEqual([early.events, early.done], [[], false])
            assert.isTrue(seen.every((s) => !s.url.includes("recipients")))
          })
      )
    }))

  it.effect("turns each row's steps into events with Kapso's timestamps, codes and reasons", () =>
    withTransport(
      kapso(
        () => ({
          status: "completed",
          sent_count: 2,
          failed_count: 1,
          delivered_count: 2,
          read_count: 1,
          responded_count: 1,
          pending_count: 0
        }),
        () => [[
          row(1, { status: "sent", sent_at: "2025-07-15T10:00:01Z", delivered_at: "2025-07-15T10:00:02Z" }),
          row(2, {
            status: "sent",
            sent_at: "2025-07-15T10:00:01Z",
            delivered_at: "2025-07-15T10:00:02Z",
            read_at: "2025-07-15T10:00:03Z",
            responded_at: "2025-07-15T10:00:04Z"
          }),
          row(3, {
            status: "failed",
            failed_at: "2025-07-15T10:00:05Z",
            error_message: "Message undeliverable",
            error_details: { error_code: "131026" }
          })
        ]]
      ),
      (transport, _, broadcast) =>
        Effect.gen(function*() {
          const page = yield* transport.poll(broadcast, Option.none())
          assert.isTrue(page.done)
          assert.deepStrictEqual(page.events, [
            new StatusEvent.StatusEvent({
              ref: ref(1) as StatusEvent.RecipientRef,
              status: { _tag: "sent" },
              at: at("2025-07-15T10:00:01Z"),
              providerMessageId: ref(1).providerMessageId
            }),
            new StatusEvent.StatusEvent({
              ref: ref(1) as StatusEvent.RecipientRef,
              status: { _tag: "delivered" },
              at: at("2025-07-15T10:00:02Z"),
              providerMessageId: ref(1).providerMessageId
            }),
            new StatusEvent.StatusEvent({
              ref: ref(2) as StatusEvent.RecipientRef,
              status: { _tag: "sent" },
              at: at("2025-07-15T10:00:01Z"),
              providerMessageId: ref(2).providerMessageId
            }),
            new StatusEvent.StatusEvent({
              ref: ref(2) as StatusEvent.RecipientRef,
              status: { _tag: "delivered" },
              at: at("2025-07-15T10:00:02Z"),
              providerMessageId: ref(2).providerMessageId
            }),
            new StatusEvent.StatusEvent({
              ref: ref(2) as StatusEvent.RecipientRef,
              status: { _tag: "read" },
              at: at("2025-07-15T10:00:03Z"),
              providerMessageId: ref(2).providerMessageId
            }),
            new StatusEvent.StatusEvent({
              ref: ref(2) as StatusEvent.RecipientRef,
              status: { _tag: "replied" },
              at: at("2025-07-15T10:00:04Z"),
              providerMessageId: ref(2).providerMessageId
            }),
            new StatusEvent.StatusEvent({
              ref: ref(3) as StatusEvent.RecipientRef,
              status: { _tag: "failed", code: "131026", reason: "Message undeliverable" },
              at: at("2025-07-15T10:00:05Z"),
              providerMessageId: ref(3).providerMessageId
            })
          ])
        })
    ))

  it.effect("a failure without a message takes the meaning of its Meta code", () =>
    withTransport(
      kapso(
        () => ({ status: "completed", failed_count: 1, pending_count: 0 }),
        () => [[row(1, { status: "failed", failed_at: "2025-07-15T10:00:05Z", error_details: { error_code: 131049 } })]]
      ),
      (transport, _, broadcast) =>
        Effect.gen(function*() {
          const page = yield* transport.poll(broadcast, Option.none())
          const status = page.events[0]!.status
          assert.strictEqual(status._tag, "failed")
          if (status._tag === "failed") {
            assert.strictEqual(status.code, "131049")
            assert.include(status.reason, "chose not to deliver")
          }
        })
    ))

  it.effect("pages through until a page has news, reports each step once, and skips rounds with the same counters", () =>
    Effect.gen(function*() {
      let counters: Record<string, unknown> = { sent_count: 1, delivered_count: 0, pending_count: 2 }
      let pages: ReadonlyArray<ReadonlyArray<unknown>> = [
        [row(1, {})],
        [row(2, { status: "sent", sent_at: "2025-07-15T10:00:01Z" })],
        [row(3, {})]
      ]
      yield* withTransport(kapso(() => counters, () => pages), (transport, seen, broadcast) =>
        Effect.gen(function*() {
          const first = yield* transport.poll(broadcast, Option.none())
          assert.strictEqual(first.events.length, 1, "page 2's sent")
          assert.isFalse(first.done)
          const rest = yield* transport.poll(broadcast, first.cursor)
          assert.deepStrictEqual(rest.events, [], "page 3 has no news: the round ends")
          const requests = seen.length
          const same = yield* transport.poll(broadcast, rest.cursor)
          assert.deepStrictEqual(same.events, [])
          assert.strictEqual(seen.length, requests + 1, "same counters: only the broadcast is read")
          counters = { status: "completed", sent_count: 1, delivered_count: 1, pending_count: 0, failed_count: 2 }
          pages = [
            [row(1, { status: "failed", failed_at: "2025-07-15T10:00:03Z", error_details: { error_code: "131026" } })],
            [row(2, { status: "sent", sent_at: "2025-07-15T10:00:01Z", delivered_at: "2025-07-15T10:00:02Z" })],
            [row(3, { status: "failed", failed_at: "2025-07-15T10:00:03Z", error_details: { error_code: "131026" } })]
          ]
          const news: Array<StatusEvent.StatusEvent> = []
          let cursor = same.cursor
          for (let calls = 0; calls < 10; calls++) {
            const page = yield* transport.poll(broadcast, cursor)
            news.push(...page.events)
            cursor = page.cursor
            if (page.done) break
          }
          assert.deepStrictEqual(news.map((event) => event.status._tag), ["failed", "delivered", "failed"])
        }))
    }))

  it.effect("followFor keeps polling after completion for late steps, then ends without rereading", () =>
    Effect.gen(function*() {
      let read: string | null = null
      const counters = () => ({
        status: "completed",
        completed_at: "1970-01-01T00:00:00Z",
        sent_count: 1,
        delivered_count: 1,
        read_count: read === null ? 0 : 1,
        pending_count: 0,
        total_recipients: 1
      })
      const pages = () => [[
        row(1, { status: "sent", sent_at: "1970-01-01T00:00:00Z", delivered_at: "1970-01-01T00:00:00Z", read_at: read })
      ]]
      yield* withTransport(kapso(counters, pages), (transport, seen, broadcast) =>
        Effect.gen(function*() {
          const first = yield* transport.poll(broadcast, Option.none())
          assert.isFalse(first.done, "still within followFor")
          assert.deepStrictEqual(first.events.map((e) => e.status._tag), ["sent", "delivered"])
          yield* TestClock.adjust(Duration.seconds(30))
          read = "1970-01-01T00:00:30Z"
          const late = yield* transport.poll(broadcast, first.cursor)
          assert.deepStrictEqual(late.events.map((e) => e.status._tag), ["read"])
          yield* TestClock.adjust(Duration.minutes(1))
          const requests = seen.length
          const end = yield* transport.poll(broadcast, late.cursor)
          assert.isTrue(end.done)
          assert.strictEqual(seen.length, requests + 1, "the counters did not move: no pass")
        }), { followFor: Duration.minutes(1) })
    }))

  it.effect("a poller that comes back without the cursor gets the last page's events again", () =>
    withTransport(
      kapso(
        () => ({ sent_count: 2, pending_count: 1 }),
        () => [[row(1, { status: "sent", sent_at: "2025-07-15T10:00:01Z" })], [
          row(2, { status: "sent", sent_at: "2025-07-15T10:00:01Z" })
        ], [row(3, {})]]
      ),
      (transport, _, broadcast) =>
        Effect.gen(function*() {
          const first = yield* transport.poll(broadcast, Option.none())
          assert.strictEqual(first.events.length, 1)
          // The poller died before applying them: a new one starts over.
          const again = yield* transport.poll(broadcast, Option.none())
          assert.deepStrictEqual(again.events, first.events)
          // This time it goes on: page 2, then the end of the round.
          const second = yield* transport.poll(broadcast, again.cursor)
          assert.strictEqual(second.events.length, 1)
          const end = yield* transport.poll(broadcast, second.cursor)
          assert.deepStrictEqual(end.events, [])
        })
    ))

  it.effect("a malformed cursor starts a new round instead of failing", () =>
    withTransport(
      kapso(
        () => ({ status: "completed", sent_count: 1, pending_count: 0, total_recipients: 1 }),
        () => [[row(1, { status: "sent", sent_at: "2025-07-15T10:00:01Z" })]]
      ),
      (transport, _, broadcast) =>
        Effect.gen(function*() {
          const page = yield* transport.poll(broadcast, Option.some("garbage"))
          assert.isTrue(page.done)
          assert.strictEqual(page.events.length, 1)
        })
    ))
})

describe("KapsoBroadcasts", () => {
  it.effect("cannot cancel: Unsupported, without a request", () =>
    withTransport(() => reply(200, {}), (transport, seen, broadcast) =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(transport.cancel(broadcast))
        assert.strictEqual(error.reason._tag, "Unsupported")
        assert.include(error.message, "Kapso v1")
        assert.strictEqual(seen.length, 0)
      })))

  it("refuses templates its recipients cannot carry", () => {
    assert.isTrue(Option.isNone(KapsoBroadcasts.unsupported(template)))
    assert.isTrue(Option.isNone(KapsoBroadcasts.unsupported(namedTemplate)))
    const spec = (fields: Partial<typeof template>) => ({ ...template, ...fields }) as typeof template
    assert.isTrue(Option.isSome(KapsoBroadcasts.unsupported(spec({ header: "text" }))))
    assert.isTrue(Option.isSome(KapsoBroadcasts.unsupported(spec({ header: "image" }))))
    assert.isTrue(
      Option.isSome(
        KapsoBroadcasts.unsupported(spec({ buttons: [{ index: 0, kind: "url" }] as typeof template.buttons }))
      )
    )
    assert.isTrue(
      Option.isSome(KapsoBroadcasts.unsupported(spec({ body: { _tag: "named", keys: ["header_url"] } })))
    )
  })

  it("names a recipient by its Kapso broadcast and normalized number, however Kapso writes it", () => {
    const id = KapsoBroadcasts.messageId("b", "+5511970000001")
    assert.strictEqual(id, "kapso:b:5511970000001")
    assert.strictEqual(KapsoBroadcasts.messageId("b", "5511970000001"), id)
    assert.strictEqual(KapsoBroadcasts.messageId("b", "+55 (11) 97000-0001"), id)
  })

  it.effect("layerConfig reads KAPSO_* into the transport", () =>
    Effect.gen(function*() {
      const fake = fakeClient(() => reply(202, { data: { status: "sending" } }))
      const broadcast = yield* makeBroadcast({ remoteId })
      yield* BroadcastTransport.use((transport) => transport.start(broadcast)).pipe(
        Effect.provide(KapsoBroadcasts.layerConfig),
        Effect.provide(fake.layer),
        Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({
          KAPSO_API_KEY: "env-key",
          KAPSO_BASE_URL: "http://kapso.env/api/v1"
        })))
      )
      assert.strictEqual(fake.seen[0]!.url, `/api/v1/whatsapp_broadcasts/${remoteId}/send`)
      assert.strictEqual(fake.seen[0]!.headers["x-api-key"], "env-key")
    }))
})
