/**
 * The state of the Kapso emulator and Kapso's rules over it, without HTTP: configs, templates, broadcasts and their
 * recipients, template sends.
 *
 * A broadcast's sending is a timeline fixed when it is sent: recipient `i` has its turn after
 * `(floor(i / batchSize) + 1) * interval`, then is failed or sent, and sent ones are delivered, read and answered
 * after the configured delays, as their fate says. What any request sees is that timeline read at the Effect
 * `Clock`'s now, so nothing runs in the background and a test on `TestClock` sees it move as it adjusts the clock.
 */
import * as Address from "@crier/core/Address"
import type * as TemplateSpec from "@crier/core/TemplateSpec"
import * as TransportError from "@crier/core/TransportError"
import { DateTime, Duration, Result } from "effect"

export type TemplateStatus = "draft" | "submitted" | "approved" | "rejected" | "disabled" | "removed"

export interface TemplateInput {
  /** Default: a generated UUID. */
  readonly id?: string | undefined
  readonly name: string
  readonly language: string
  /** Default "approved". */
  readonly status?: TemplateStatus | undefined
  /** Default "MARKETING". */
  readonly category?: "MARKETING" | "UTILITY" | "AUTHENTICATION" | undefined
  readonly body: TemplateSpec.BodyParameters
  /** Default "none". */
  readonly header?: TemplateSpec.HeaderKind | undefined
  /** Configs the template is linked to. Default: every config. */
  readonly configIds?: ReadonlyArray<string> | undefined
}

export interface ConfigInput {
  readonly id: string
  /** Broadcasts need a production config. Default true. */
  readonly production?: boolean | undefined
  /** Meta's phone number id, in webhook payloads. Default: derived from the id. */
  readonly phoneNumberId?: string | undefined
}

/** What becomes of one message. */
export type Fate =
  | { readonly _tag: "failed"; readonly code: string; readonly message?: string | undefined }
  | { readonly _tag: "sent" }
  | { readonly _tag: "delivered" }
  | { readonly _tag: "read" }
  | { readonly _tag: "responded" }

export interface Outcomes {
  /** Shares (0–1) of messages by fate, spread evenly over the send order; the rest get `otherwise`. */
  readonly mix?: ReadonlyArray<{ readonly share: number; readonly fate: Fate }> | undefined
  /** Default `delivered`. */
  readonly otherwise?: Fate | undefined
  /** Fates by number (E.164 with or without `+`), ahead of `mix`. */
  readonly byNumber?: ReadonlyMap<string, Fate> | undefined
}

export interface Timing {
  /** Recipients that get their turn together. Default 50 (Kapso: about 50 messages per second). */
  readonly batchSize?: number | undefined
  /** Between turns; the first turn comes one interval after `send`. Default 1 second. */
  readonly interval?: Duration.Input | undefined
  /** From sent to delivered. Default 1 second. */
  readonly delivered?: Duration.Input | undefined
  /** From delivered to read. Default 1 second. */
  readonly read?: Duration.Input | undefined
  /** From read to the reply. Default 1 second. */
  readonly responded?: Duration.Input | undefined
  /**
   * When a broadcast counts as completed: once every recipient had its turn (`sent`, default, as Kapso reports
   * the end of sending), or once every delivered/read/reply step has happened too (`settled`).
   */
  readonly completion?: "sent" | "settled" | undefined
}

interface ResolvedTiming {
  readonly batchSize: number
  readonly interval: number
  readonly delivered: number
  readonly read: number
  readonly responded: number
  readonly completion: "sent" | "settled"
}

export const resolveTiming = (timing: Timing | undefined): ResolvedTiming => ({
  batchSize: Math.max(1, Math.floor(timing?.batchSize ?? 50)),
  interval: Duration.toMillis(timing?.interval ?? Duration.seconds(1)),
  delivered: Duration.toMillis(timing?.delivered ?? Duration.seconds(1)),
  read: Duration.toMillis(timing?.read ?? Duration.seconds(1)),
  responded: Duration.toMillis(timing?.responded ?? Duration.seconds(1)),
  completion: timing?.completion ?? "sent"
})

export interface Template {
  readonly id: string
  readonly name: string
  readonly language: string
  readonly status: TemplateStatus
  readonly category: string
  readonly body: TemplateSpec.BodyParameters
  readonly header: TemplateSpec.HeaderKind
  readonly configIds: ReadonlyArray<string>
}

export interface Config {
  readonly id: string
  readonly production: boolean
  readonly phoneNumberId: string
}

export interface Recipient {
  readonly id: string
  readonly index: number
  /** E.164 digits without `+`, as Kapso stores them. */
  readonly phone: string
  readonly parameters: unknown
  readonly createdAt: number
  fate: Fate | undefined
}

export interface Broadcast {
  readonly id: string
  readonly name: string
  readonly config: Config
  readonly template: Template
  readonly createdAt: number
  startedAt: number | undefined
  timing: ResolvedTiming | undefined
  completesAt: number | undefined
  readonly recipients: Array<Recipient>
  readonly byPhone: Map<string, Recipient>
}

// ---------------------------------------------------------------------------------------------------------------
// Numbers and parameters

/** Kapso's normalization: E.164 digits without `+`, or none for a number it refuses. */
export const normalizePhone = (input: unknown): string | undefined => {
  if (typeof input !== "string") return undefined
  const digits = input.replace(/[\s\-().+]/g, "")
  if (!/^\d+$/.test(digits)) return undefined
  const parsed = Address.parse(`+${digits}`)
  return Result.isSuccess(parsed) && Address.kind(parsed.success) === "phone" ? parsed.success.slice(1) : undefined
}

const isText = (value: unknown): value is string => typeof value === "string" && value.trim() !== ""

const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/**
 * Why Kapso refuses these template parameters for this template, in its words, if it does: a broadcast recipient
 * carries its media header as `header_url` among its parameters, a `send_template` call as `header_params`, and the
 * two endpoints word a wrong count differently.
 */
export const parameterProblem = (
  template: Template,
  parameters: unknown,
  endpoint: { readonly _tag: "add" } | { readonly _tag: "send_template"; readonly headerParams: unknown }
): string | undefined => {
  const inParameters = endpoint._tag === "add"
  if (template.body._tag === "positional") {
    const given = Array.isArray(parameters) ? parameters.length : parameters === undefined ? 0 : undefined
    if (given === undefined) return `Template requires ${template.body.count} positional parameters as an array`
    if (given !== template.body.count) {
      return inParameters
        ? `Template requires ${template.body.count} parameters but ${given} provided`
        : `Template requires ${template.body.count} parameters, but ${given} were provided`
    }
    const values = parameters === undefined ? [] : parameters as ReadonlyArray<unknown>
    const blank = values.findIndex((value) => !isText(value))
    if (blank !== -1) return `Parameter ${blank + 1} must be a non-empty string`
  } else {
    if (!isRecord(parameters)) return `Template requires named parameters ${template.body.keys.join(", ")}`
    const missing = template.body.keys.find((key) => !isText(parameters[key]))
    if (missing !== undefined) return `Missing required parameter '${missing}'`
  }
  if (template.header !== "none" && template.header !== "text") {
    const link = endpoint._tag === "send_template"
      ? endpoint.headerParams
      : isRecord(parameters)
      ? parameters["header_url"]
      : undefined
    if (!isText(link)) return `Missing required parameter '${inParameters ? "header_url" : "header_params"}'`
  }
  return undefined
}

// ---------------------------------------------------------------------------------------------------------------
// Fates

// The golden ratio's fractional steps: any run of consecutive positions covers [0, 1) evenly, so a 5% share is
// 5% of any large enough slice of a broadcast, deterministically.
const spread = (position: number): number => (position * 0.6180339887498949 + 0.5) % 1

export const fateOf = (outcomes: Outcomes | undefined, phone: string, position: number): Fate => {
  const pinned = outcomes?.byNumber?.get(phone) ?? outcomes?.byNumber?.get(`+${phone}`)
  if (pinned !== undefined) return pinned
  const x = spread(position)
  let upTo = 0
  for (const { fate, share } of outcomes?.mix ?? []) {
    upTo += share
    if (x < upTo) return fate
  }
  return outcomes?.otherwise ?? { _tag: "delivered" }
}

const ladder = { sent: 0, delivered: 1, read: 2, responded: 3 } as const

export const failureMessage = (fate: Extract<Fate, { _tag: "failed" }>): string =>
  fate.message ?? TransportError.metaCodes.get(Number(fate.code))?.meaning ?? "Message failed to send"

/** The times of one message's steps, from the moment it had its turn; absent steps do not happen. */
export interface Steps {
  readonly turn: number
  readonly sent?: number
  readonly failed?: number
  readonly delivered?: number
  readonly read?: number
  readonly responded?: number
}

export const stepsOf = (fate: Fate, turn: number, timing: ResolvedTiming): Steps => {
  if (fate._tag === "failed") return { turn, failed: turn }
  const level = ladder[fate._tag]
  const delivered = turn + timing.delivered
  const read = delivered + timing.read
  return {
    turn,
    sent: turn,
    ...(level >= 1 ? { delivered } : {}),
    ...(level >= 2 ? { read } : {}),
    ...(level >= 3 ? { responded: read + timing.responded } : {})
  }
}

const lastOf = (steps: Steps): number =>
  Math.max(steps.turn, steps.delivered ?? 0, steps.read ?? 0, steps.responded ?? 0)

export const turnOf = (broadcast: Broadcast, recipient: Recipient): number =>
  broadcast.startedAt! + (Math.floor(recipient.index / broadcast.timing!.batchSize) + 1) * broadcast.timing!.interval

export const recipientSteps = (broadcast: Broadcast, recipient: Recipient): Steps | undefined =>
  broadcast.startedAt === undefined || recipient.fate === undefined
    ? undefined
    : stepsOf(recipient.fate, turnOf(broadcast, recipient), broadcast.timing!)

/** When a broadcast being sent counts as completed: its timeline is fixed, so this is computed once, at send. */
export const completionOf = (broadcast: Broadcast): number => {
  let last = broadcast.startedAt!
  for (const recipient of broadcast.recipients) {
    const steps = recipientSteps(broadcast, recipient)!
    last = Math.max(last, broadcast.timing!.completion === "settled" ? lastOf(steps) : steps.turn)
  }
  return last
}

export type BroadcastStatus = "draft" | "sending" | "completed"

export const statusAt = (broadcast: Broadcast, now: number): BroadcastStatus =>
  broadcast.completesAt === undefined ? "draft" : now >= broadcast.completesAt ? "completed" : "sending"

// ---------------------------------------------------------------------------------------------------------------
// Views, as the API answers them

export const iso = (millis: number): string => DateTime.formatIso(DateTime.makeUnsafe(millis))

const seen = (at: number | undefined, now: number): number | undefined => at !== undefined && at <= now ? at : undefined
const isoOrNull = (at: number | undefined): string | null => at === undefined ? null : iso(at)

export interface RecipientView {
  readonly status: "pending" | "sent" | "failed"
  readonly sentAt: number | undefined
  readonly failedAt: number | undefined
  readonly deliveredAt: number | undefined
  readonly readAt: number | undefined
  readonly respondedAt: number | undefined
}

export const recipientView = (broadcast: Broadcast, recipient: Recipient, now: number): RecipientView => {
  const steps = recipientSteps(broadcast, recipient)
  const sentAt = seen(steps?.sent, now)
  const failedAt = seen(steps?.failed, now)
  return {
    status: failedAt !== undefined ? "failed" : sentAt !== undefined ? "sent" : "pending",
    sentAt,
    failedAt,
    deliveredAt: seen(steps?.delivered, now),
    readAt: seen(steps?.read, now),
    respondedAt: seen(steps?.responded, now)
  }
}

export const recipientJson = (broadcast: Broadcast, recipient: Recipient, now: number) => {
  const view = recipientView(broadcast, recipient, now)
  const failed = view.failedAt !== undefined && recipient.fate?._tag === "failed" ? recipient.fate : undefined
  const updated = Math.max(
    recipient.createdAt,
    view.sentAt ?? 0,
    view.failedAt ?? 0,
    view.deliveredAt ?? 0,
    view.readAt ?? 0,
    view.respondedAt ?? 0
  )
  return {
    id: recipient.id,
    phone_number: recipient.phone,
    status: view.status,
    sent_at: isoOrNull(view.sentAt),
    failed_at: isoOrNull(view.failedAt),
    delivered_at: isoOrNull(view.deliveredAt),
    read_at: isoOrNull(view.readAt),
    responded_at: isoOrNull(view.respondedAt),
    error_message: failed === undefined ? null : failureMessage(failed),
    error_details: failed === undefined ? null : { error_code: failed.code },
    template_parameters: recipient.parameters,
    created_at: iso(recipient.createdAt),
    updated_at: iso(updated)
  }
}

export interface Counts {
  readonly total: number
  readonly sent: number
  readonly failed: number
  readonly delivered: number
  readonly read: number
  readonly responded: number
  readonly pending: number
}

export const countsAt = (broadcast: Broadcast, now: number): Counts => {
  const counts = { total: 0, sent: 0, failed: 0, delivered: 0, read: 0, responded: 0, pending: 0 }
  for (const recipient of broadcast.recipients) {
    const view = recipientView(broadcast, recipient, now)
    counts.total++
    counts[view.status]++
    if (view.deliveredAt !== undefined) counts.delivered++
    if (view.readAt !== undefined) counts.read++
    if (view.respondedAt !== undefined) counts.responded++
  }
  return counts
}

export const templateJson = (template: Template) => ({
  id: template.id,
  name: template.name,
  language_code: template.language,
  category: template.category,
  status: template.status,
  parameter_format: template.body._tag === "named" ? "NAMED" : "POSITIONAL",
  parameter_count: template.body._tag === "named" ? template.body.keys.length : template.body.count,
  whatsapp_config_ids: template.configIds
})

export const broadcastJson = (broadcast: Broadcast, now: number) => {
  const counts = countsAt(broadcast, now)
  const status = statusAt(broadcast, now)
  const done = status === "completed" ? broadcast.completesAt : undefined
  return {
    id: broadcast.id,
    name: broadcast.name,
    status,
    started_at: isoOrNull(broadcast.startedAt),
    completed_at: isoOrNull(done),
    created_at: iso(broadcast.createdAt),
    updated_at: iso(Math.max(broadcast.createdAt, broadcast.startedAt ?? 0, done ?? 0)),
    whatsapp_config_id: broadcast.config.id,
    whatsapp_template: {
      id: broadcast.template.id,
      name: broadcast.template.name,
      language_code: broadcast.template.language,
      category: broadcast.template.category,
      status: broadcast.template.status
    },
    total_recipients: counts.total,
    sent_count: counts.sent,
    failed_count: counts.failed,
    delivered_count: counts.delivered,
    read_count: counts.read,
    responded_count: counts.responded,
    pending_count: counts.pending,
    response_rate: counts.sent === 0 ? 0 : Math.round((counts.responded / counts.sent) * 1000) / 10,
    stats: {
      total: counts.total,
      sent: counts.sent,
      failed: counts.failed,
      delivered: counts.delivered,
      read: counts.read,
      responded: counts.responded,
      pending: counts.pending
    }
  }
}

/** Kapso's pagination: `page` from 1, `per_page` 1–100 (default 20). */
export const paginate = <A>(
  items: ReadonlyArray<A>,
  query: URLSearchParams
): { readonly slice: ReadonlyArray<A>; readonly meta: Record<string, number> } => {
  const number = (name: string, fallback: number) => {
    const value = Number(query.get(name) ?? Number.NaN)
    return Number.isInteger(value) && value >= 1 ? value : fallback
  }
  const perPage = Math.min(100, number("per_page", 20))
  const page = number("page", 1)
  return {
    slice: items.slice((page - 1) * perPage, page * perPage),
    meta: {
      page,
      per_page: perPage,
      total_pages: Math.ceil(items.length / perPage),
      total_count: items.length
    }
  }
}
