/**
 * `crier send`: create a broadcast, import and validate its recipient file (rejections reported as `validate`
 * reports them), start it (or schedule it with `--send-at`), and follow it to the end — or leave it to a background
 * worker with `--detach`.
 */
import * as Broadcast from "@crier/core/Broadcast"
import * as ProgressStore from "@crier/core/ProgressStore"
import { Console, DateTime, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { basename } from "node:path"
import { explained, UsageError } from "../CliFailure.ts"
import * as RecipientFile from "../RecipientFile.ts"
import * as Runner from "../Runner.ts"
import * as Stores from "../Stores.ts"
import * as TemplateFlags from "../TemplateFlags.ts"
import * as Transports from "../Transports.ts"

const ISO_8601 = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/

/**
 * `--send-at`: an ISO-8601 instant (a time without an offset is local time). A time up to a minute past (a slow
 * start, a clock a little behind) sends at once; an older one is a mistake.
 */
const sendAtOf = (input: Option.Option<string>): Effect.Effect<Option.Option<DateTime.Utc>, UsageError> =>
  Option.match(input, {
    onNone: () => Effect.succeedNone,
    onSome: (text) =>
      Effect.gen(function*() {
        const at = ISO_8601.test(text.trim()) ? DateTime.make(text.trim()) : Option.none()
        if (Option.isNone(at)) {
          return yield* new UsageError({
            message: `--send-at ${text} is not an ISO-8601 time, e.g. 2025-07-01T09:00:00Z or 2025-07-01T09:00:00-03:00`
          })
        }
        const utc = DateTime.toUtc(at.value)
        if (yield* DateTime.isPast(DateTime.add(utc, { minutes: 1 }))) {
          return yield* new UsageError({
            message: `--send-at ${DateTime.formatIso(utc)} is in the past; leave it out to send now`
          })
        }
        return Option.some(utc)
      })
  })

export const send = Command.make(
  "send",
  {
    transport: Flag.Literals("transport", Transports.names).pipe(
      Flag.withDescription("The provider that sends: kapso, keebai, meta, or memory (in this process, no account)")
    ),
    csv: Flag.String("csv").pipe(Flag.withDescription("The recipient CSV file")),
    ...TemplateFlags.sendFlags,
    ...RecipientFile.flags,
    name: Flag.String("name").pipe(
      Flag.withDescription("The broadcast's name (default: the template and the file's name)"),
      Flag.optional
    ),
    rate: Flag.Finite("rate").pipe(
      Flag.withDescription("Messages per second (meta: default 70, under Meta's 80; memory: default 100)"),
      Flag.optional
    ),
    sendAt: Flag.String("send-at").pipe(
      Flag.withDescription("Send at this ISO-8601 time instead of now; this process (or the worker) waits"),
      Flag.optional
    ),
    inDoubt: Flag.Literals("in-doubt", Broadcast.InDoubtPolicy.literals).pipe(
      Flag.withDescription(
        "A message whose hand-off was cut by a crash: never sent again (at-most-once) or sent again (at-least-once)"
      ),
      Flag.withDefault("at-most-once")
    ),
    store: Stores.flag,
    detach: Flag.Boolean("detach").pipe(
      Flag.withDescription("Leave the sending to a background worker and exit at once, printing the broadcast's id"),
      Flag.withDefault(false)
    ),
    json: Flag.Boolean("json").pipe(
      Flag.withDescription("Print one JSON object with the result (progress still goes to stderr)"),
      Flag.withDefault(false)
    )
  },
  Effect.fn("crier.send")(function*(input) {
    const template = yield* TemplateFlags.toNamedSpec(input)
    const file = yield* RecipientFile.options(input)
    const sendAt = yield* sendAtOf(input.sendAt)
    if (Option.exists(input.rate, (rate) => !(rate > 0))) {
      return yield* new UsageError({ message: "--rate must be a number of messages per second above 0" })
    }
    if (input.detach && input.transport === "memory") {
      return yield* new UsageError({
        message:
          "--transport memory cannot --detach: its provider lives in this process, so a background worker could not reach it"
      })
    }
    const location = yield* Stores.locate(input.store)
    const plan = yield* Transports.plan(input.transport, template, { rate: input.rate, inDoubt: input.inDoubt })
    yield* RecipientFile.checkHeader(input.csv, template, file)
    for (const note of plan.notes) yield* Console.error(note)

    const created = Effect.gen(function*() {
      const store = yield* ProgressStore.ProgressStore
      const { id, importProblems } = yield* Runner.create({
        name: Option.getOrElse(input.name, () => `${template.name} · ${basename(input.csv)}`),
        template,
        sender: plan.sender,
        policy: plan.policy,
        csv: input.csv,
        file
      })
      if (Option.isSome(sendAt)) {
        // Only recorded here: the engine that runs the broadcast keeps the time (its recovery arms the timer).
        yield* store.transitionBroadcast(id, { from: ["draft"], to: "scheduled", patch: { scheduledAt: sendAt.value } })
        yield* Console.error(`Scheduled for ${DateTime.formatIso(sendAt.value)}`)
      }
      return { id, importProblems }
    })
    // Created and filled by an engine that sends nothing; run by one that sees this broadcast alone.
    yield* Effect.gen(function*() {
      const { id, importProblems } = yield* created.pipe(Effect.provide(plan.engine))
      if (input.detach) return yield* Runner.detach(id, location, input.json)
      yield* Runner.runHere(location, id, {
        json: input.json,
        importProblems,
        display: "auto",
        interruptReason: Runner.interruptedByUser
      })
    }).pipe(Effect.scoped, Effect.provide(Stores.layer(location)), explained)
  })
).pipe(
  Command.withDescription(
    [
      "Send a template to every recipient of a CSV file, and follow it to the end (Ctrl-C pauses it).",
      "",
      "Settings come from the environment; secrets only from there:",
      "  kapso   KAPSO_API_KEY, KAPSO_WHATSAPP_CONFIG_ID, KAPSO_BASE_URL, KAPSO_TEMPLATE_ID (else looked up by name)",
      "  keebai  KEEBAI_TOKEN, KEEBAI_CHANNEL_ID, KEEBAI_BASE_URL",
      "  meta    META_ACCESS_TOKEN, META_PHONE_NUMBER_ID, META_BASE_URL",
      "  store   CRIER_STORE (or --store): sqlite:PATH (default sqlite:./.crier/crier.db) or postgres://…",
      "",
      "Exit status: 0 all sent, 1 some failed or rows rejected, 2 usage or settings, 3 paused (reason printed), 130 interrupted."
    ].join("\n  ")
  ),
  Command.withShortDescription("Send a template to every recipient of a CSV file, and follow it to the end"),
  Command.withExamples([
    {
      command:
        "crier send --transport meta --csv customers.csv --template order_update --language en_US --template-text \"Hi {{1}}, your order ships today\"",
      description: "Send now and watch it go"
    },
    {
      command: "crier send --transport memory --csv customers.csv --template demo --language en --params 1",
      description: "Try it without a provider account"
    },
    {
      command:
        "crier send --transport keebai --csv customers.csv --template promo --language pt_BR --named first_name --send-at 2025-07-01T09:00:00-03:00 --detach",
      description: "Schedule it, and leave it to a background worker"
    }
  ])
)
