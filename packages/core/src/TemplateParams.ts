/**
 * One recipient's values for a template, and their validation against the template's spec. A mismatch is a row
 * error in the importer, never a provider call.
 *
 * Values are kept exactly as given (emoji, non-Latin text, inner spacing) except that surrounding whitespace is
 * trimmed. Lengths are counted in Unicode code points.
 */
import { Result, Schema } from "effect"
import * as TemplateSpec from "./TemplateSpec.ts"

export const TextHeader = Schema.TaggedStruct("text", { text: Schema.String })
export type TextHeader = typeof TextHeader.Type

export const MediaHeader = Schema.TaggedStruct("media", {
  kind: Schema.Literals(["image", "video", "document"]),
  link: Schema.String,
  filename: Schema.optional(Schema.String)
})
export type MediaHeader = typeof MediaHeader.Type

export const Header = Schema.Union([TextHeader, MediaHeader])
export type Header = typeof Header.Type

export class TemplateParams extends Schema.Class<TemplateParams>("@crier/core/TemplateParams")({
  body: Schema.Union([Schema.Array(Schema.String), Schema.Record(Schema.String, Schema.String)]),
  header: Schema.optional(Header),
  /** One value per spec button, in spec order. */
  buttons: Schema.Array(Schema.String)
}) {}

/**
 * One problem with a recipient's values. `field` is "body.1".."body.N" (positional, 1-based), "body.<key>" (named),
 * "body" (the body as a whole), "header", "header.text", "header.link", "header.filename", "button.<index>" or
 * "buttons".
 */
export interface Issue {
  readonly field: string
  readonly reason: string
}

// Meta's Cloud API caps a text parameter at 60 characters in a header; in the body at 1,024 characters when the
// template has other components and 32,768 when the body stands alone (a footer is not part of the spec, so a
// body-only spec gets the larger cap).
const maxHeaderText = 60
const maxBodyValueWithOthers = 1024
const maxBodyValueAlone = 32768
// Meta caps a copy-code coupon at 15 characters and a button URL at 2,000 (so its dynamic suffix too). It documents
// no cap on a quick-reply payload; 128 is a conservative choice.
const maxButtonValue: Record<TemplateSpec.ButtonKind, number> = { url: 2000, quick_reply: 128, copy_code: 15 }
// Meta error 132018: a parameter may not contain a newline or a tab, nor more than 4 consecutive spaces.
const maxConsecutiveSpaces = 4

/** What validation needs from a spec, computed once per spec. */
interface Plan {
  readonly names: ReadonlyArray<string>
  readonly fields: ReadonlyArray<string>
  readonly keys: ReadonlySet<string>
  readonly valueCap: number
  /** How often each parameter appears in the body text (0 when it is unknown), and the text's length without them. */
  readonly occurrences: ReadonlyArray<number>
  readonly staticLength: number
  readonly buttonFields: ReadonlyArray<string>
}

const plans = new WeakMap<TemplateSpec.TemplateSpec, Plan>()

const makePlan = (spec: TemplateSpec.TemplateSpec): Plan => {
  const names = TemplateSpec.parameterNames(spec)
  const found = spec.bodyText === undefined ? undefined : TemplateSpec.placeholders(spec.bodyText)
  return {
    names,
    fields: names.map((name) => `body.${name}`),
    keys: new Set(names),
    valueCap: spec.header === "none" && spec.buttons.length === 0 ? maxBodyValueAlone : maxBodyValueWithOthers,
    occurrences: names.map((name) => found?.filter((placeholder) => placeholder.name === name).length ?? 0),
    staticLength: spec.bodyText === undefined
      ? 0
      : TemplateSpec.characterCount(spec.bodyText) -
        (found ?? []).reduce((sum, placeholder) => sum + TemplateSpec.characterCount(placeholder.text), 0),
    buttonFields: spec.buttons.map((button) => `button.${button.index}`)
  }
}

const planOf = (spec: TemplateSpec.TemplateSpec): Plan => {
  const cached = plans.get(spec)
  if (cached !== undefined) return cached
  const plan = makePlan(spec)
  plans.set(spec, plan)
  return plan
}

const multiline = "contains a line break or tab (Meta error 132018)"
const spaced = `contains more than ${maxConsecutiveSpaces} consecutive spaces (Meta error 132018)`

// Why Meta would refuse this value as a text parameter (error 132018), if it would.
const layoutProblem = (value: string): string | undefined => {
  let spaces = 0
  for (let i = 0; i < value.length; i++) {
    const unit = value.charCodeAt(i)
    if (
      unit === 0x0a || unit === 0x0d || unit === 0x09 || unit === 0x0b || unit === 0x0c || unit === 0x2028 ||
      unit === 0x2029
    ) {
      return multiline
    }
    spaces = unit === 0x20 ? spaces + 1 : 0
    if (spaces > maxConsecutiveSpaces) return spaced
  }
  return undefined
}

const tooLong = (max: number) => `longer than ${max} characters`

// Checks one single-line text value and returns its length, or NaN after reporting an issue (so a sum of lengths
// that includes it is unknown, and compares false).
const checkText = (issues: Array<Issue>, field: string, value: string, max: number): number => {
  if (value.length === 0) {
    issues.push({ field, reason: "empty" })
    return NaN
  }
  const problem = layoutProblem(value)
  if (problem !== undefined) {
    issues.push({ field, reason: problem })
    return NaN
  }
  const size = TemplateSpec.characterCount(value)
  if (size <= max) return size
  issues.push({ field, reason: tooLong(max) })
  return NaN
}

// Array.isArray does not narrow a readonly array out of a union.
const isPositional = (body: TemplateParams["body"]): body is ReadonlyArray<string> => Array.isArray(body)

const list = (values: ReadonlyArray<string>) => values.join(", ")

const checkPositional = (
  issues: Array<Issue>,
  spec: TemplateSpec.TemplateSpec,
  plan: Plan,
  values: ReadonlyArray<string>
): ReadonlyArray<string> => {
  if (spec.body._tag === "named") {
    if (values.length > 0) {
      issues.push({ field: "body", reason: `positional values given, but the template takes ${list(plan.names)}` })
    }
    return values
  }
  let trimmed: Array<string> | undefined
  let total = plan.staticLength
  const count = Math.min(values.length, plan.names.length)
  for (let i = 0; i < count; i++) {
    const raw = values[i]!
    const value = raw.trim()
    if (trimmed === undefined && value.length !== raw.length) trimmed = values.slice(0, i)
    if (trimmed !== undefined) trimmed.push(value)
    total += checkText(issues, plan.fields[i]!, value, plan.valueCap) * plan.occurrences[i]!
  }
  for (let i = values.length; i < plan.names.length; i++) issues.push({ field: plan.fields[i]!, reason: "missing" })
  if (values.length > plan.names.length) {
    const extra = Array.from({ length: values.length - plan.names.length }, (_, i) => `${plan.names.length + i + 1}`)
    issues.push({
      field: "body",
      reason: `unexpected values at positions ${list(extra)}: the template takes ${plan.names.length}`
    })
  }
  checkTotal(issues, spec, total)
  return trimmed ?? values
}

const checkNamed = (
  issues: Array<Issue>,
  spec: TemplateSpec.TemplateSpec,
  plan: Plan,
  values: { readonly [key: string]: string }
): { readonly [key: string]: string } => {
  if (spec.body._tag === "positional") {
    if (Object.keys(values).length > 0) {
      issues.push({
        field: "body",
        reason: `named values given, but the template takes ${plan.names.length} positional values`
      })
    }
    return values
  }
  for (const key in values) {
    if (Object.hasOwn(values, key) && !plan.keys.has(key)) {
      issues.push({ field: `body.${key}`, reason: `unknown parameter: the template takes ${list(plan.names)}` })
    }
  }
  let trimmed: Record<string, string> | undefined
  let total = plan.staticLength
  for (let i = 0; i < plan.names.length; i++) {
    const key = plan.names[i]!
    if (!Object.hasOwn(values, key)) {
      issues.push({ field: plan.fields[i]!, reason: "missing" })
      continue
    }
    const raw = values[key]!
    const value = raw.trim()
    if (trimmed === undefined && value.length !== raw.length) trimmed = { ...values }
    if (trimmed !== undefined) trimmed[key] = value
    total += checkText(issues, plan.fields[i]!, value, plan.valueCap) * plan.occurrences[i]!
  }
  checkTotal(issues, spec, total)
  return trimmed ?? values
}

// The whole message body once the values are in (a lower bound when some are missing; NaN when one was refused).
const checkTotal = (issues: Array<Issue>, spec: TemplateSpec.TemplateSpec, total: number) => {
  if (spec.bodyText !== undefined && total > TemplateSpec.maxBodyLength) {
    issues.push({
      field: "body",
      reason: `the message body would be ${total} characters; WhatsApp allows ${TemplateSpec.maxBodyLength}`
    })
  }
}

const article = (kind: string) => kind === "image" ? "an" : "a"

const checkHeader = (
  issues: Array<Issue>,
  spec: TemplateSpec.TemplateSpec,
  header: Header | undefined
): Header | undefined => {
  if (spec.header === "none") {
    if (header !== undefined) issues.push({ field: "header", reason: "the template has no header" })
    return header
  }
  if (header === undefined) {
    issues.push({ field: spec.header === "text" ? "header.text" : "header.link", reason: "missing" })
    return header
  }
  if (spec.header === "text") {
    if (header._tag !== "text") {
      issues.push({
        field: "header",
        reason: `expected a text header, got ${article(header.kind)} ${header.kind} header`
      })
      return header
    }
    const text = header.text.trim()
    checkText(issues, "header.text", text, maxHeaderText)
    return text.length === header.text.length ? header : TextHeader.make({ text })
  }
  if (header._tag !== "media" || header.kind !== spec.header) {
    const got = header._tag === "media" ? header.kind : "text"
    issues.push({
      field: "header",
      reason: `expected ${article(spec.header)} ${spec.header} header, got ${article(got)} ${got} header`
    })
    return header
  }
  const link = header.link.trim()
  if (link.length === 0) issues.push({ field: "header.link", reason: "empty" })
  else {
    const url = URL.parse(link)
    if (url === null) issues.push({ field: "header.link", reason: "not an absolute URL" })
    else if (url.protocol !== "https:") issues.push({ field: "header.link", reason: "must be an https: URL" })
  }
  const filename = header.filename?.trim()
  if (filename !== undefined && header.kind !== "document") {
    issues.push({ field: "header.filename", reason: "only a document header takes a filename" })
  } else if (filename !== undefined && filename.length === 0) {
    issues.push({ field: "header.filename", reason: "empty" })
  }
  return link.length === header.link.length && filename?.length === header.filename?.length
    ? header
    : MediaHeader.make({ kind: header.kind, link, ...(filename === undefined ? {} : { filename }) })
}

const checkButtons = (
  issues: Array<Issue>,
  spec: TemplateSpec.TemplateSpec,
  plan: Plan,
  values: ReadonlyArray<string>
): ReadonlyArray<string> => {
  let trimmed: Array<string> | undefined
  for (let i = 0; i < spec.buttons.length; i++) {
    const field = plan.buttonFields[i]!
    const raw = values[i]
    if (raw === undefined) {
      issues.push({ field, reason: "missing" })
      continue
    }
    const value = raw.trim()
    if (trimmed === undefined && value.length !== raw.length) trimmed = values.slice(0, i)
    if (trimmed !== undefined) trimmed.push(value)
    const max = maxButtonValue[spec.buttons[i]!.kind]
    if (value.length === 0) issues.push({ field, reason: "empty" })
    else if (TemplateSpec.characterCount(value) > max) issues.push({ field, reason: tooLong(max) })
  }
  if (values.length > spec.buttons.length) {
    issues.push({
      field: "buttons",
      reason: `${values.length} button values given; the template has ${spec.buttons.length} buttons that take one`
    })
  }
  return trimmed ?? values
}

/**
 * Checks one recipient's values against the spec and returns them trimmed, or every issue found (the importer
 * reports each).
 */
export const validate = (
  spec: TemplateSpec.TemplateSpec,
  params: TemplateParams
): Result.Result<TemplateParams, ReadonlyArray<Issue>> => {
  const plan = planOf(spec)
  const issues: Array<Issue> = []
  const body = isPositional(params.body)
    ? checkPositional(issues, spec, plan, params.body)
    : checkNamed(issues, spec, plan, params.body)
  const header = checkHeader(issues, spec, params.header)
  const buttons = checkButtons(issues, spec, plan, params.buttons)
  if (issues.length > 0) return Result.fail(issues)
  if (body === params.body && header === params.header && buttons === params.buttons) return Result.succeed(params)
  return Result.succeed(new TemplateParams({ body, buttons, ...(header === undefined ? {} : { header }) }))
}
