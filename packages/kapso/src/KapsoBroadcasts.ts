/**
 * The `BroadcastTransport` over Kapso's Broadcasts API (v1): Kapso holds the campaign and paces it.
 *
 * - `open` creates the draft (`name`, `whatsapp_config_id` = the broadcast's sender, `whatsapp_template_id` looked
 *   up by template name and language).
 * - `submit` adds up to 1,000 recipients per request. Kapso answers with counts and error strings
 *   ("Recipient 7: invalid phone number format") that name a recipient by its position in the request; whether it
 *   counts from 0 or 1 is not documented, so each answer is read both ways (see `attribute`). An error that names no
 *   recipient, or names one outside the batch, or an answer whose counts do not add up, fails the whole call: the
 *   engine then pauses the broadcast and nobody is marked sent on a guess.
 * - `start` sends. It is idempotent: Kapso answers a second send with 422 ("already sending" / "already completed"),
 *   which `start` checks against the broadcast's status and treats as done, so recovery after a crash between
 *   `start` and the first `poll` resumes cleanly.
 * - `poll` reads the broadcast's counters, and when they moved, pages through its recipients (100 per page) and
 *   reports each row's new steps (sent, delivered, read, responded, failed with `error_details.error_code`) with
 *   Kapso's timestamps. `done` comes once a full pass started after the broadcast completed (and `followFor`
 *   after that, for late deliveries and reads).
 * - `cancel` fails with `Unsupported`: Kapso v1 cannot cancel a broadcast.
 *
 * Correlation: Kapso's add answer gives no recipient ids, and its recipient rows carry Kapso's own ids and numbers.
 * A number is unique within a Kapso broadcast (Kapso skips duplicates), so the provider message id recorded for a
 * recipient at submit is `messageId(remote broadcast id, number)`, and `poll` names each row the same way
 * (`ByProviderMessageId`), with the number normalized to E.164 on both sides.
 *
 * `poll` remembers which steps it reported (per process): a step is confirmed when the caller comes back with the
 * cursor it was given, and a call without that cursor (a new poller after a crash) re-reads from the start.
 */
import * as Address from "@crier/core/Address"
import type * as Broadcast from "@crier/core/Broadcast"
import { BroadcastTransport, type Capabilities, type ItemOutcome, type Outgoing } from "@crier/core/BroadcastTransport"
import * as RecipientStatus from "@crier/core/RecipientStatus"
import * as StatusEvent from "@crier/core/StatusEvent"
import * as TemplateParams from "@crier/core/TemplateParams"
import type * as TemplateSpec from "@crier/core/TemplateSpec"
import * as TransportError from "@crier/core/TransportError"
import { type Config, DateTime, Duration, Effect, Layer, Option, Result } from "effect"
import type { HttpClient } from "effect/http"
import * as KapsoApi from "./KapsoApi.ts"

export const defaultName = "kapso"

export interface Options extends KapsoApi.Options {
  /** The transport's name, stored on its broadcasts. Default "kapso". */
  readonly name?: string | undefined
  /**
   * How Kapso numbers the recipients its add errors name: from 0 or from 1. Default: read from each answer (an
   * index of 0 or of the batch size settles it; otherwise the error's kind is checked against the recipients it
   * could name), and the whole call fails when the answer cannot tell.
   */
  readonly errorIndexBase?: 0 | 1 | undefined
  /**
   * How long to keep polling after Kapso reports the broadcast completed: deliveries, reads and replies keep coming
   * after sending ends. Default 0: done after one full pass once it completed.
   */
  readonly followFor?: Duration.Input | undefined
}

export const capabilities: Capabilities = {
  maxBatchSize: 1000,
  remoteCampaign: true,
  startsOnSubmit: false,
  tracking: "poll",
  providerDedupe: true,
  providerPaced: true,
  requestBudgets: []
}

/** Recipients per page when polling: Kapso's maximum. */
export const perPage = 100

const mediaKeys = ["header_url", "header_filename"]

/** Kapso v1 broadcast recipients carry body parameters and, in the named form, a media header link; nothing else. */
export const unsupported = (template: TemplateSpec.TemplateSpec): Option.Option<string> =>
  template.buttons.length > 0
    ? Option.some("Kapso's v1 broadcast recipients carry no button parameters")
    : template.header === "text"
    ? Option.some("Kapso's v1 broadcast recipients carry no text header parameter")
    : template.header !== "none" && template.body._tag === "positional"
    ? Option.some("Kapso's v1 broadcasts take a media header only with named parameters (header_url)")
    : template.body._tag === "named" && template.body.keys.some((key) => mediaKeys.includes(key))
    ? Option.some("Kapso's v1 broadcasts reserve the parameter names header_url and header_filename")
    : Option.none()

const digitsOf = (number: string): string => {
  const digits = number.replace(/\D/g, "")
  const parsed = Address.parse(`+${digits}`)
  return Result.isSuccess(parsed) && Address.kind(parsed.success) === "phone" ? parsed.success.slice(1) : digits
}

/** The provider message id of the recipient with this number in this Kapso broadcast. */
export const messageId = (remoteId: string, number: string): string => `kapso:${remoteId}:${digitsOf(number)}`

/** A recipient's `template_parameters`: an array (positional) or an object (named, with the media header). */
export const templateParameters = (
  params: TemplateParams.TemplateParams
): Result.Result<KapsoApi.RecipientInput["template_parameters"], string> => {
  const body = params.body
  if (params.buttons.length > 0) return Result.fail("Kapso's v1 broadcast recipients carry no button parameters")
  const header = params.header
  if (header?._tag === "text") return Result.fail("Kapso's v1 broadcast recipients carry no text header parameter")
  if (isPositional(body)) {
    return header === undefined
      ? Result.succeed(body)
      : Result.fail("Kapso's v1 broadcasts take a media header only with named parameters")
  }
  return Result.succeed(
    header === undefined ? body : {
      ...body,
      header_url: header.link,
      ...(header.filename === undefined ? {} : { header_filename: header.filename })
    }
  )
}

const isPositional = (body: TemplateParams.TemplateParams["body"]): body is ReadonlyArray<string> => Array.isArray(body)

const fail = (operation: string, reason: TransportError.Reason) =>
  new TransportError.TransportError({ provider: KapsoApi.provider, operation, reason })

const invalid = (operation: string, message: string) => fail(operation, new TransportError.InvalidRequest({ message }))

// ---------------------------------------------------------------------------------------------------------------
// Attributing the errors of an add answer

const ERROR = /^\s*Recipient\s+(\d+)\s*:\s*([\s\S]*)$/i

type ErrorKind = "phone" | "params" | "other"

const kindOf = (message: string): ErrorKind =>
  /param/i.test(message) ? "params" : /phone|number/i.test(message) ? "phone" : "other"

const rejection = (message: string): TransportError.TransportError =>
  fail(
    "submit",
    kindOf(message) === "params"
      ? new TransportError.TemplateParamsMismatch({ message, perRecipient: true })
      : new TransportError.RecipientRejected({ message })
  )

const isValidPhone = (address: Address.Address): boolean => {
  const parsed = Address.parse(address)
  return Result.isSuccess(parsed) && parsed.success === address && Address.kind(address) === "phone"
}

/** Whether the recipient an error names could be the one it describes, as far as we can check here. */
const plausible = (kind: ErrorKind, item: Outgoing, template: TemplateSpec.TemplateSpec): boolean =>
  kind === "phone"
    ? !isValidPhone(item.address)
    : kind === "params"
    ? Result.isFailure(TemplateParams.validate(template, item.params))
    : true

export interface Attribution {
  /** The error message of each refused item, by its position in the request. */
  readonly refused: ReadonlyMap<number, string>
  /** The base the answer was read with. */
  readonly base: 0 | 1
}

/**
 * Maps an add answer's error strings to the items of the request. `known` is a base established earlier (by
 * configuration or by an earlier answer that settled it).
 */
export const attribute = (
  answer: KapsoApi.RecipientBatch,
  items: ReadonlyArray<Outgoing>,
  template: TemplateSpec.TemplateSpec,
  known: Option.Option<0 | 1>,
  configured: boolean
): Result.Result<Attribution, TransportError.TransportError> => {
  const loud = (message: string) =>
    Result.fail(invalid("submit", `${message}; which recipients Kapso added is unknown, so none is recorded`))
  const named: Array<{ readonly n: number; readonly message: string }> = []
  for (const error of answer.errors) {
    const match = ERROR.exec(error)
    if (match === null) return loud(`Kapso answered an error that names no recipient: "${error}"`)
    named.push({ n: Number(match[1]), message: match[2]!.trim() || error })
  }
  const size = items.length
  const fits = (base: 0 | 1) => named.every(({ n }) => n - base >= 0 && n - base < size)
  const candidates = ([0, 1] as const).filter(fits)
  const settled = (): Result.Result<0 | 1, string> => {
    if (named.length === 0) return Result.succeed(Option.getOrElse(known, () => 1 as const))
    if (candidates.length === 0) {
      return Result.fail(`Kapso's errors name recipients outside a batch of ${size}: ${answer.errors.join("; ")}`)
    }
    if (Option.isSome(known) && (configured || candidates.includes(known.value))) {
      return candidates.includes(known.value)
        ? Result.succeed(known.value)
        : Result.fail(`Kapso's errors do not fit counting from ${known.value}: ${answer.errors.join("; ")}`)
    }
    if (candidates.length === 1) return Result.succeed(candidates[0]!)
    const consistent = candidates.filter((base) =>
      named.every(({ message, n }) => plausible(kindOf(message), items[n - base]!, template))
    )
    return consistent.length === 1
      ? Result.succeed(consistent[0]!)
      : Result.fail(
        `cannot tell whether Kapso counts recipients from 0 or from 1 in: ${
          answer.errors.join("; ")
        } (set the transport's errorIndexBase)`
      )
  }
  const base = settled()
  if (Result.isFailure(base)) return loud(base.failure)
  const refused = new Map<number, string>()
  for (const { message, n } of named) refused.set(n - base.success, message)
  if (answer.added + answer.duplicates + refused.size !== size) {
    return loud(
      `Kapso's answer does not add up: ${answer.added} added + ${answer.duplicates} duplicates + ${refused.size} refused for ${size} recipients sent`
    )
  }
  return Result.succeed({ refused, base: base.success })
}

// ---------------------------------------------------------------------------------------------------------------
// Reading recipient rows

// Steps of a row, as bits of what was reported.
const steps = [
  { bit: 1, status: RecipientStatus.sent, at: (row: KapsoApi.BroadcastRecipient) => row.sent_at },
  { bit: 2, status: RecipientStatus.delivered, at: (row: KapsoApi.BroadcastRecipient) => row.delivered_at },
  { bit: 4, status: RecipientStatus.read, at: (row: KapsoApi.BroadcastRecipient) => row.read_at },
  { bit: 8, status: RecipientStatus.replied, at: (row: KapsoApi.BroadcastRecipient) => row.responded_at }
] as const
const failedBit = 16

const failureOf = (row: KapsoApi.BroadcastRecipient): RecipientStatus.RecipientStatus => {
  const raw = row.error_details?.error_code
  const code = raw === undefined || raw === null || String(raw).trim() === "" ? undefined : String(raw).trim()
  const known = code === undefined || !/^\d+$/.test(code) ? undefined : TransportError.metaCodes.get(Number(code))
  const reason = row.error_message?.trim() || known?.meaning || "Kapso reported the message as failed"
  return RecipientStatus.failed(reason, code)
}

/** The steps of a row not reported yet, as status events, and the bits they add. */
const eventsOf = (
  remoteId: string,
  row: KapsoApi.BroadcastRecipient,
  reported: number,
  now: DateTime.Utc
): { readonly events: ReadonlyArray<StatusEvent.StatusEvent>; readonly bits: number } => {
  const providerMessageId = messageId(remoteId, row.phone_number)
  const ref = { _tag: "ByProviderMessageId", providerMessageId } as const
  const events: Array<StatusEvent.StatusEvent> = []
  let bits = reported
  const add = (bit: number, status: RecipientStatus.RecipientStatus, at: DateTime.Utc | null | undefined) => {
    if ((bits & bit) !== 0) return
    bits |= bit
    events.push(new StatusEvent.StatusEvent({ ref, status, at: at ?? now, providerMessageId }))
  }
  const failed = row.status === "failed" || (row.failed_at !== undefined && row.failed_at !== null)
  for (const step of steps) {
    const at = step.at(row)
    // A "sent" row without its timestamp is still sent.
    if ((at !== undefined && at !== null) || (step.bit === 1 && row.status === "sent")) add(step.bit, step.status, at)
  }
  if (failed) add(failedBit, failureOf(row), row.failed_at)
  return { events, bits }
}

const countersOf = (broadcast: KapsoApi.Broadcast): string =>
  [
    broadcast.status,
    broadcast.total_recipients,
    broadcast.sent_count,
    broadcast.failed_count,
    broadcast.delivered_count,
    broadcast.read_count,
    broadcast.responded_count,
    broadcast.pending_count
  ].join("|")

/** What `poll` knows about one Kapso broadcast. */
interface Tracked {
  /** Steps reported and confirmed, by Kapso recipient id. */
  readonly reported: Map<string, number>
  /** Steps of the last page returned, confirmed when the caller comes back with `issued`. */
  unconfirmed: ReadonlyArray<readonly [string, number]>
  issued: string | undefined
  rounds: number
  /** The counters a full pass was last made for: a round that finds the same ones has nothing to read. */
  lastCounters: string | undefined
  roundCounters: string | undefined
}

const CURSOR = /^(\d+):(\d+):([01])$/

// ---------------------------------------------------------------------------------------------------------------
// The transport

export const make = Effect.fn("KapsoBroadcasts.make")(function*(options: Options) {
  const api = yield* KapsoApi.make(options)
  const name = options.name ?? defaultName
  const tracked = new Map<string, Tracked>()
  const followFor = Duration.toMillis(options.followFor ?? Duration.zero)
  let learnedBase = Option.fromUndefinedOr(options.errorIndexBase)

  const remoteOf = (operation: string, broadcast: Broadcast.Broadcast) =>
    broadcast.remoteId === undefined
      ? Effect.fail(invalid(operation, "the broadcast has no remoteId: call open and store the id it returns"))
      : Effect.succeed(broadcast.remoteId)

  const open = Effect.fn("KapsoBroadcasts.open")(function*(broadcast: Broadcast.Broadcast) {
    const configId = KapsoApi.senderOf(broadcast.sender, options)
    if (Option.isNone(configId)) {
      return yield* invalid("open", "no WhatsApp config id: set the broadcast's sender or whatsappConfigId")
    }
    const templateId = yield* api.templateId(broadcast.template, configId)
    const created = yield* api.createBroadcast({
      name: broadcast.name,
      whatsappConfigId: configId.value,
      templateId
    })
    return Option.some(created.id)
  })

  const submit = Effect.fn("KapsoBroadcasts.submit")(
    function*(broadcast: Broadcast.Broadcast, batch: readonly [Outgoing, ...Array<Outgoing>]) {
      if (batch.length > capabilities.maxBatchSize) {
        return yield* invalid(
          "submit",
          `${batch.length} recipients in one call; Kapso takes at most ${capabilities.maxBatchSize}`
        )
      }
      const remoteId = yield* remoteOf("submit", broadcast)
      const outcomes: Array<ItemOutcome | undefined> = batch.map((item) =>
        Address.kind(item.address) === "phone" ? undefined : {
          _tag: "Rejected",
          error: fail(
            "submit",
            new TransportError.RecipientRejected({ message: "Kapso broadcasts address phone numbers, not BSUIDs" })
          )
        }
      )
      const sent: Array<{ readonly index: number; readonly item: Outgoing }> = []
      const inputs: Array<KapsoApi.RecipientInput> = []
      for (const [index, item] of batch.entries()) {
        if (outcomes[index] !== undefined) continue
        const parameters = templateParameters(item.params)
        if (Result.isFailure(parameters)) return yield* invalid("submit", parameters.failure)
        sent.push({ index, item })
        inputs.push({ phone_number: item.address, template_parameters: parameters.success })
      }
      if (sent.length > 0) {
        const answer = yield* api.addRecipients(remoteId, inputs)
        const attribution = attribute(
          answer,
          sent.map(({ item }) => item),
          broadcast.template,
          learnedBase,
          options.errorIndexBase !== undefined
        )
        if (Result.isFailure(attribution)) return yield* attribution.failure
        if (answer.errors.length > 0) learnedBase = Option.some(attribution.success.base)
        for (const [position, { index, item }] of sent.entries()) {
          const refused = attribution.success.refused.get(position)
          outcomes[index] = refused === undefined
            ? { _tag: "Accepted", providerMessageId: Option.some(messageId(remoteId, item.address)), held: false }
            : { _tag: "Rejected", error: rejection(refused) }
        }
      }
      return { outcomes: outcomes.map((outcome) => outcome!) }
    }
  )

  const start = Effect.fn("KapsoBroadcasts.start")(function*(broadcast: Broadcast.Broadcast) {
    const remoteId = yield* remoteOf("start", broadcast)
    const sent = yield* Effect.result(api.sendBroadcast(remoteId))
    if (Result.isSuccess(sent)) return
    // A second send answers 422 ("already sending" / "already completed"): the broadcast's status says which.
    if (sent.failure.reason.httpStatus !== 422) return yield* sent.failure
    const current = yield* api.getBroadcast(remoteId)
    if (current.status === "draft") return yield* sent.failure
  })

  const poll = Effect.fn("KapsoBroadcasts.poll")(
    function*(broadcast: Broadcast.Broadcast, cursor: Option.Option<string>) {
      const remoteId = yield* remoteOf("poll", broadcast)
      const now = yield* DateTime.now
      let state = tracked.get(remoteId)
      if (state === undefined) {
        state = {
          reported: new Map(),
          unconfirmed: [],
          issued: undefined,
          rounds: 0,
          lastCounters: undefined,
          roundCounters: undefined
        }
        tracked.set(remoteId, state)
      }
      const position = Option.flatMap(
        Option.filter(cursor, (given) => given === state.issued),
        (given) => Option.fromNullishOr(CURSOR.exec(given))
      )
      if (Option.isSome(position)) {
        for (const [id, bits] of state.unconfirmed) state.reported.set(id, bits)
      } else {
        // A poller without our last cursor may have lost what we gave it: read everything again.
        state.lastCounters = undefined
      }
      state.unconfirmed = []
      const issue = (page: number, final: boolean): Option.Option<string> => {
        state.issued = `${state.rounds}:${page}:${final ? 1 : 0}`
        return Option.some(state.issued)
      }
      let page = Option.match(position, { onNone: () => 0, onSome: (match) => Number(match[2]) })
      let final = Option.match(position, { onNone: () => false, onSome: (match) => match[3] === "1" })
      if (page === 0) {
        state.rounds++
        const current = yield* api.getBroadcast(remoteId)
        const completedAt = DateTime.toEpochMillis(current.completed_at ?? now)
        final = KapsoApi.finalStatuses.has(current.status) && completedAt + followFor <= DateTime.toEpochMillis(now)
        const counters = countersOf(current)
        if (current.status === "draft" || (current.sent_count + current.failed_count === 0 && !final)) {
          return { events: [], cursor: issue(0, false), done: false }
        }
        // A full pass was made for these very counters: nothing to read.
        if (counters === state.lastCounters) {
          if (!final) return { events: [], cursor: issue(0, false), done: false }
          tracked.delete(remoteId)
          return { events: [], cursor: Option.none(), done: true }
        }
        state.roundCounters = counters
        page = 1
      }
      while (true) {
        const answer = yield* api.listRecipients(remoteId, page, perPage)
        const events: Array<StatusEvent.StatusEvent> = []
        const unconfirmed: Array<readonly [string, number]> = []
        for (const row of answer.data) {
          const reported = state.reported.get(row.id) ?? 0
          const found = eventsOf(remoteId, row, reported, now)
          if (found.bits === reported) continue
          events.push(...found.events)
          unconfirmed.push([row.id, found.bits])
        }
        state.unconfirmed = unconfirmed
        if (answer.data.length === 0 || page >= answer.meta.total_pages) {
          state.lastCounters = state.roundCounters
          if (final) {
            tracked.delete(remoteId)
            return { events, cursor: Option.none(), done: true }
          }
          return { events, cursor: issue(0, false), done: false }
        }
        page++
        if (events.length > 0) return { events, cursor: issue(page, final), done: false }
      }
    }
  )

  const cancel = Effect.fn("KapsoBroadcasts.cancel")(function*() {
    return yield* fail("cancel", new TransportError.Unsupported({ message: "Kapso v1 cannot cancel a broadcast" }))
  })

  return BroadcastTransport.of({ name, capabilities, unsupported, open, submit, start, poll, cancel })
})

/** The transport; the caller provides the `HttpClient`. */
export const layer = (options: Options): Layer.Layer<BroadcastTransport, never, HttpClient.HttpClient> =>
  Layer.effect(BroadcastTransport, make(options))

/** The transport configured from `KAPSO_API_KEY`, `KAPSO_BASE_URL` and `KAPSO_WHATSAPP_CONFIG_ID`. */
export const layerConfig: Layer.Layer<BroadcastTransport, Config.ConfigError, HttpClient.HttpClient> = Layer.effect(
  BroadcastTransport,
  Effect.flatMap(KapsoApi.config, make)
)
