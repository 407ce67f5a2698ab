import * as RecipientStatus from "@crier/core/RecipientStatus"
import { assert, describe, it } from "@effect/vitest"
import { Result, Schema } from "effect"

type Status = RecipientStatus.RecipientStatus
type Tag = RecipientStatus.Tag

const {
  accepted,
  delivered,
  failed,
  inDoubt,
  merge,
  pending,
  read,
  replied,
  sent,
  skipped,
  submitting
} = RecipientStatus

// One value per tag, in `tags` order.
const one: Record<Tag, Status> = {
  pending,
  submitting,
  accepted,
  sent,
  delivered,
  read,
  replied,
  failed: failed("Message undeliverable", "131026"),
  skipped: skipped("suppressed"),
  in_doubt: inDoubt
}

// Every payload shape that can tie with another: the laws must hold across them too.
const representatives: ReadonlyArray<Status> = [
  ...RecipientStatus.tags.map((tag) => one[tag]),
  failed("Rate limit hit", "131049"),
  failed("Message undeliverable, retried", "131026"),
  failed("template parameters did not match"),
  failed("network"),
  skipped("duplicate"),
  skipped("invalid"),
  skipped("cancelled")
]

const fold = (start: Status, events: ReadonlyArray<Status>): Status => events.reduce(merge, start)

const permutations = <A>(xs: ReadonlyArray<A>): Array<Array<A>> =>
  xs.length <= 1
    ? [[...xs]]
    : xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((rest) => [x, ...rest]))

const short: Record<string, Tag> = {
  pen: "pending",
  sub: "submitting",
  acc: "accepted",
  snt: "sent",
  dlv: "delivered",
  rd: "read",
  rpl: "replied",
  fld: "failed",
  skp: "skipped",
  idb: "in_doubt"
}

// merge(row, column) for every ordered pair of the 10 tags: the winner's tag. Rows and columns in `tags` order.
const winners: ReadonlyArray<string> = [
  // pen sub  acc  snt  dlv  rd   rpl  fld  skp  idb
  "pen  sub  acc  snt  dlv  rd   rpl  fld  skp  idb", // pending
  "sub  sub  acc  snt  dlv  rd   rpl  fld  skp  idb", // submitting
  "acc  acc  acc  snt  dlv  rd   rpl  fld  skp  acc", // accepted
  "snt  snt  snt  snt  dlv  rd   rpl  fld  skp  snt", // sent
  "dlv  dlv  dlv  dlv  dlv  rd   rpl  dlv  skp  dlv", // delivered
  "rd   rd   rd   rd   rd   rd   rpl  rd   skp  rd ", // read
  "rpl  rpl  rpl  rpl  rpl  rpl  rpl  rpl  skp  rpl", // replied
  "fld  fld  fld  fld  dlv  rd   rpl  fld  skp  fld", // failed
  "skp  skp  skp  skp  skp  skp  skp  skp  skp  skp", // skipped
  "idb  idb  acc  snt  dlv  rd   rpl  fld  skp  idb" // in_doubt
]

describe("RecipientStatus", () => {
  describe("schema", () => {
    const decode = Schema.decodeUnknownResult(RecipientStatus.RecipientStatus)

    it("tags lists all ten, ladder first, in the union's order", () => {
      assert.deepStrictEqual(RecipientStatus.tags, [
        "pending",
        "submitting",
        "accepted",
        "sent",
        "delivered",
        "read",
        "replied",
        "failed",
        "skipped",
        "in_doubt"
      ])
      assert.deepStrictEqual(
        RecipientStatus.RecipientStatus.members.map((member) => member.fields._tag.schema.literal),
        RecipientStatus.tags
      )
    })

    it("decodes what the constructors make", () => {
      for (const s of representatives) assert.deepStrictEqual(decode(s), Result.succeed(s))
      assert.deepStrictEqual(failed("network"), { _tag: "failed", reason: "network" })
      assert.isFalse("code" in failed("network"))
      assert.deepStrictEqual(failed("x", "131026"), { _tag: "failed", code: "131026", reason: "x" })
    })

    it("rejects bad values", () => {
      const bad: ReadonlyArray<unknown> = [
        { _tag: "queued" },
        { _tag: "Pending" },
        {},
        "pending",
        null,
        { _tag: "skipped" },
        { _tag: "skipped", reason: "expired" },
        { _tag: "failed" },
        { _tag: "failed", code: "131026" },
        { _tag: "failed", reason: 131026 },
        { _tag: "failed", code: 131026, reason: "undeliverable" }
      ]
      for (const value of bad) assert.isTrue(Result.isFailure(decode(value)), JSON.stringify(value))
    })
  })

  describe("merge", () => {
    describe("every ordered pair of the 10 tags", () => {
      RecipientStatus.tags.forEach((row, r) => {
        const cells = (winners[r] ?? "").trim().split(/\s+/)
        RecipientStatus.tags.forEach((column, i) => {
          const want = short[cells[i] ?? ""]
          it(`merge(${row}, ${column}) = ${want}`, () => {
            const result = merge(one[row], one[column])
            assert.strictEqual(result._tag, want)
            // allocation-free: the winner is one of the inputs, itself
            assert.isTrue(result === one[row] || result === one[column])
          })
        })
      })
    })

    it("agrees with rank on every pair of different ranks", () => {
      for (const a of representatives) {
        for (const b of representatives) {
          const ra = RecipientStatus.rank(a._tag)
          const rb = RecipientStatus.rank(b._tag)
          if (ra !== rb) assert.strictEqual(merge(a, b), ra > rb ? a : b)
        }
      }
    })

    it("returns one of its inputs", () => {
      for (const a of representatives) {
        for (const b of representatives) {
          const result = merge(a, b)
          assert.isTrue(result === a || result === b)
        }
      }
    })

    it("is idempotent: a status seen twice changes nothing", () => {
      for (const a of representatives) {
        assert.strictEqual(merge(a, a), a)
        for (const b of representatives) {
          const once = merge(a, b)
          assert.strictEqual(merge(once, b), once)
        }
      }
    })

    it("is commutative over every pair of representatives", () => {
      for (const a of representatives) {
        for (const b of representatives) assert.deepStrictEqual(merge(a, b), merge(b, a))
      }
    })

    it("is associative over every triple of representatives", () => {
      for (const a of representatives) {
        for (const b of representatives) {
          for (const c of representatives) assert.deepStrictEqual(merge(merge(a, b), c), merge(a, merge(b, c)))
        }
      }
    })

    it.prop(
      "any events in any order, with duplicates, give the same status",
      { start: RecipientStatus.RecipientStatus, events: Schema.Array(RecipientStatus.RecipientStatus) },
      ({ events, start }) => {
        const forward = fold(start, events)
        assert.deepStrictEqual(fold(start, [...events].reverse()), forward)
        assert.deepStrictEqual(fold(start, [...events, ...events]), forward)
        assert.deepStrictEqual(fold(start, [...events.slice(1), ...events.slice(0, 1)]), forward)
        assert.deepStrictEqual(fold(forward, events), forward)
      }
    )

    describe("the rules", () => {
      it("the ladder only moves forward", () => {
        const ladder = [pending, submitting, accepted, sent, delivered, read, replied]
        ladder.forEach((lower, i) => {
          for (const higher of ladder.slice(i + 1)) {
            assert.strictEqual(merge(lower, higher), higher)
            assert.strictEqual(merge(higher, lower), higher)
          }
        })
        assert.strictEqual(merge(replied, read), replied)
        assert.strictEqual(merge(read, delivered), read)
      })

      it("a provider status moves a pending, submitting or in-doubt row forward", () => {
        const observed = [accepted, sent, delivered, read, replied, one.failed]
        for (const current of [pending, submitting, inDoubt]) {
          for (const event of observed) assert.strictEqual(merge(current, event), event)
        }
      })

      it("failed overrides submitting, accepted, sent and in_doubt, in either order", () => {
        const f = one.failed
        for (const s of [pending, submitting, accepted, sent, inDoubt]) {
          assert.strictEqual(merge(s, f), f)
          assert.strictEqual(merge(f, s), f)
        }
      })

      it("failed never overrides delivered, read or replied, in either order", () => {
        const f = one.failed
        for (const s of [delivered, read, replied]) {
          assert.strictEqual(merge(s, f), s)
          assert.strictEqual(merge(f, s), s)
        }
      })

      it("two failures: a code beats none, then the smaller code, then the smaller reason", () => {
        const cases: ReadonlyArray<readonly [Status, Status]> = [
          [failed("network"), failed("undeliverable", "131026")],
          [failed("b", "131049"), failed("z", "131026")],
          [failed("b", "131026"), failed("a", "131026")],
          [failed("b"), failed("a")]
        ]
        for (const [loser, winner] of cases) {
          assert.strictEqual(merge(loser, winner), winner)
          assert.strictEqual(merge(winner, loser), winner)
        }
        const again = failed("a", "131026")
        const first = failed("a", "131026")
        assert.strictEqual(merge(first, again), first)
      })

      it("nothing merges into skipped; among skips the first listed reason wins", () => {
        for (const reason of RecipientStatus.SkipReason.literals) {
          const s = skipped(reason)
          for (const event of representatives.filter((r) => r._tag !== "skipped")) {
            assert.strictEqual(merge(s, event), s)
            assert.strictEqual(merge(event, s), s)
          }
        }
        const order = RecipientStatus.SkipReason.literals.map(skipped)
        order.forEach((winner, i) => {
          for (const loser of order.slice(i + 1)) {
            assert.deepStrictEqual(merge(winner, loser), winner)
            assert.deepStrictEqual(merge(loser, winner), winner)
          }
        })
      })
    })

    describe("every permutation of realistic event sequences ends the same", () => {
      const f131026 = failed("Message undeliverable", "131026")
      const f131049 = failed("Marketing message limit", "131049")
      const cases: ReadonlyArray<{
        readonly name: string
        readonly start: Status
        readonly events: ReadonlyArray<Status>
        readonly final: Status
      }> = [
        { name: "the full ladder", start: submitting, events: [accepted, sent, delivered, read], final: read },
        { name: "delivered never came", start: submitting, events: [sent, read], final: read },
        { name: "a failure after acceptance", start: submitting, events: [accepted, f131026], final: f131026 },
        { name: "a failure after sent", start: submitting, events: [accepted, sent, f131026], final: f131026 },
        {
          name: "duplicates",
          start: submitting,
          events: [accepted, sent, sent, delivered, delivered, accepted],
          final: delivered
        },
        {
          name: "delivery evidence beats a failure",
          start: submitting,
          events: [accepted, sent, f131026, delivered],
          final: delivered
        },
        { name: "two failures", start: submitting, events: [accepted, f131049, f131026], final: f131026 },
        {
          name: "a reply",
          start: submitting,
          events: [accepted, sent, delivered, read, replied, read],
          final: replied
        },
        { name: "webhooks before our receipt", start: pending, events: [sent, delivered, accepted], final: delivered },
        { name: "an in-doubt row resolved", start: inDoubt, events: [sent, delivered], final: delivered },
        { name: "an in-doubt row that failed", start: inDoubt, events: [f131049], final: f131049 },
        {
          name: "a skipped row ignores events",
          start: skipped("cancelled"),
          events: [sent, f131026],
          final: skipped("cancelled")
        }
      ]
      for (const { events, final, name, start } of cases) {
        it(name, () => {
          for (const order of permutations(events)) {
            assert.deepStrictEqual(fold(start, order), final, JSON.stringify(order))
          }
        })
      }
    })
  })

  describe("canTransition: engine moves that are not merges", () => {
    const allowed = new Set([
      "pending→submitting",
      "pending→skipped",
      "submitting→pending",
      "submitting→in_doubt",
      "submitting→accepted",
      "submitting→failed",
      "in_doubt→pending"
    ])
    for (const from of RecipientStatus.tags) {
      for (const to of RecipientStatus.tags) {
        const move = `${from}→${to}`
        it(`${move}: ${allowed.has(move)}`, () => {
          assert.strictEqual(RecipientStatus.canTransition(from, to), allowed.has(move))
        })
      }
    }
  })

  it("isSettled: everything but pending and submitting", () => {
    assert.deepStrictEqual(RecipientStatus.tags.filter((tag) => RecipientStatus.isSettled(one[tag])), [
      "accepted",
      "sent",
      "delivered",
      "read",
      "replied",
      "failed",
      "skipped",
      "in_doubt"
    ])
  })

  it("isFinal: replied and skipped, and nothing observed or engine-driven changes them", () => {
    const finals = RecipientStatus.tags.filter((tag) => RecipientStatus.isFinal(one[tag]))
    assert.deepStrictEqual(finals, ["replied", "skipped"])
    const observed = representatives.filter((r) => r._tag !== "skipped")
    for (const s of representatives) {
      const changedByEvent = observed.some((event) => merge(s, event) !== s)
      const changedByEngine = RecipientStatus.tags.some((to) => RecipientStatus.canTransition(s._tag, to))
      assert.strictEqual(RecipientStatus.isFinal(s), !changedByEvent && !changedByEngine, JSON.stringify(s))
    }
  })

  it("funnel counts: read and replied count as delivered, replied as read", () => {
    const count = (p: (s: Status) => boolean) => RecipientStatus.tags.filter((tag) => p(one[tag]))
    assert.deepStrictEqual(count(RecipientStatus.countsAsDelivered), ["delivered", "read", "replied"])
    assert.deepStrictEqual(count(RecipientStatus.countsAsRead), ["read", "replied"])
  })
})
