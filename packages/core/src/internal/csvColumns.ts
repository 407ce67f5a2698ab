/**
 * The column side of the CSV importer: reads the header against the template spec, then turns each record into a
 * row (accepted, rejected, duplicate or blank).
 */
import { Result } from "effect"
import * as Address from "../Address.ts"
import type * as CsvImport from "../CsvImport.ts"
import * as TemplateParams from "../TemplateParams.ts"
import type * as TemplateSpec from "../TemplateSpec.ts"
import type { Problem } from "./csvReader.ts"
import * as FirstLines from "./firstLines.ts"

const PHONE_NAMES: ReadonlyArray<string> = ["phone_number", "phone", "to"]
const POSITIONAL = /^(?:param)?(\d+)$/
const BUTTON = /^button_(\d+)$/
const HEADER_TEXT = "header_text"
const HEADER_URL = "header_url"
const HEADER_FILENAME = "header_filename"

/** Where each value lives in a record. Indexes are -1 for a column the file does not have. */
export interface Columns {
  /** Header names as written, trimmed. */
  readonly names: ReadonlyArray<string>
  readonly phone: number
  /** One column per body parameter, in the spec's order. */
  readonly body: ReadonlyArray<number>
  readonly headerText: number
  readonly headerUrl: number
  readonly headerFilename: number
  /** One column per spec button, in the spec's order. */
  readonly buttons: ReadonlyArray<number>
  readonly metadata: ReadonlyArray<number>
  /** Columns whose header cell is empty: ignored, as long as rows leave them empty too. */
  readonly unnamed: ReadonlyArray<number>
  /** A `TemplateParams.Issue` field ("body.2", "header.link", "button.0") → the column it came from. */
  readonly columnOf: ReadonlyMap<string, string>
}

type Role =
  | { readonly _tag: "Phone" }
  | { readonly _tag: "Positional"; readonly position: number }
  | { readonly _tag: "Named"; readonly key: string }
  | { readonly _tag: "Header"; readonly field: "text" | "link" | "filename" }
  | { readonly _tag: "Button"; readonly index: number }
  | { readonly _tag: "Metadata" }
  | { readonly _tag: "Unnamed" }

const roleOf = (key: string, spec: TemplateSpec.TemplateSpec): Role => {
  if (key === "") return { _tag: "Unnamed" }
  if (PHONE_NAMES.includes(key)) return { _tag: "Phone" }
  const positional = POSITIONAL.exec(key)
  if (positional !== null) return { _tag: "Positional", position: Number(positional[1]) }
  if (spec.body._tag === "named" && spec.body.keys.includes(key)) return { _tag: "Named", key }
  if (key === HEADER_TEXT) return { _tag: "Header", field: "text" }
  if (key === HEADER_URL) return { _tag: "Header", field: "link" }
  if (key === HEADER_FILENAME) return { _tag: "Header", field: "filename" }
  const button = BUTTON.exec(key)
  if (button !== null) return { _tag: "Button", index: Number(button[1]) }
  return { _tag: "Metadata" }
}

const quoted = (names: ReadonlyArray<string>) => names.map((name) => `"${name}"`).join(", ")

/** Reads the header row against the spec: which column holds what, or why the file cannot be imported. */
export const plan = (
  header: ReadonlyArray<string>,
  spec: TemplateSpec.TemplateSpec
): Result.Result<Columns, Problem> => {
  const names = header.map((name) => name.trim())
  const keys = names.map((name) => name.toLowerCase())
  const found = `the columns found are ${quoted(names.filter((name) => name !== ""))}`

  const repeated = Array.from(new Set(keys.filter((key, i) => key !== "" && keys.indexOf(key) !== i)))
  if (repeated.length > 0) {
    const described = repeated.map((key) =>
      `"${names[keys.indexOf(key)]}" (columns ${
        keys.flatMap((other, i) => other === key ? [i + 1] : []).join(" and ")
      })`
    )
    return fail("DuplicateColumns", `the header repeats ${described.join(", ")}; give each column its own name`)
  }

  const roles = keys.map((key) => roleOf(key, spec))
  const phones = roles.flatMap((role, i) => role._tag === "Phone" ? [i] : [])
  if (phones.length === 0) {
    return fail(
      "MissingPhoneColumn",
      `the file has no phone number column; name it "phone_number" (or "phone" or "to"); ${found}`
    )
  }
  if (phones.length > 1) {
    return fail(
      "DuplicateColumns",
      `${quoted(phones.map((i) => names[i]!))} both hold the phone number; keep one of them`
    )
  }

  // What the spec asks for: a field name for TemplateParams, the column name to suggest, and the columns found.
  const wanted = (field: string, suggest: string, matches: (role: Role) => boolean) => ({
    field,
    suggest,
    columns: roles.flatMap((role, i) => matches(role) ? [i] : [])
  })
  const body = spec.body._tag === "named"
    ? spec.body.keys.map((key) => wanted(`body.${key}`, key, (role) => role._tag === "Named" && role.key === key))
    : Array.from({ length: spec.body.count }, (_, i) =>
      wanted(
        `body.${i + 1}`,
        `param${i + 1}`,
        (role) => role._tag === "Positional" && role.position === i + 1
      ))
  const isHeader = (field: string) => (role: Role) => role._tag === "Header" && role.field === field
  const headerText = spec.header === "text" ? [wanted("header.text", HEADER_TEXT, isHeader("text"))] : []
  const headerUrl = spec.header === "none" || spec.header === "text"
    ? []
    : [wanted("header.link", HEADER_URL, isHeader("link"))]
  const headerFilename = spec.header === "document"
    ? [wanted("header.filename", HEADER_FILENAME, isHeader("filename"))]
    : []
  const buttons = spec.buttons.map((button) =>
    wanted(
      `button.${button.index}`,
      `button_${button.index}`,
      (role) => role._tag === "Button" && role.index === button.index
    )
  )
  const required = [...body, ...headerText, ...headerUrl, ...buttons]
  const all = [...required, ...headerFilename]

  const twice = all.filter((want) => want.columns.length > 1)
  if (twice.length > 0) {
    return fail(
      "DuplicateColumns",
      twice.map((want) => `${quoted(want.columns.map((i) => names[i]!))} both give ${want.suggest}`).join("; ") +
        "; keep one of each"
    )
  }
  const missing = required.filter((want) => want.columns.length === 0)
  if (missing.length > 0) {
    return fail(
      "MissingParameterColumns",
      `the template ${spec.name} needs ${plural(missing.length, "a column", "columns")} the file does not have: ${
        missing.map((want) => want.suggest).join(", ")
      }; ${found}`
    )
  }
  const used = new Set(all.flatMap((want) => want.columns))
  const unexpected = roles.flatMap((role, i) =>
    role._tag !== "Phone" && role._tag !== "Metadata" && role._tag !== "Unnamed" && !used.has(i) ? [names[i]!] : []
  )
  if (unexpected.length > 0) {
    return fail(
      "UnexpectedParameterColumns",
      `the file has ${
        plural(unexpected.length, "a parameter column", "parameter columns")
      } that the template ${spec.name} does not take: ${unexpected.join(", ")} (it takes ${
        describe(spec)
      }); remove or rename them, or check that this is the right template`
    )
  }

  const columnOf = new Map<string, string>()
  for (const want of all) if (want.columns.length > 0) columnOf.set(want.field, names[want.columns[0]!]!)
  const at = (wants: ReadonlyArray<{ readonly columns: ReadonlyArray<number> }>) => wants[0]?.columns[0] ?? -1
  return Result.succeed({
    names,
    phone: phones[0]!,
    body: body.map((want) => want.columns[0]!),
    headerText: at(headerText),
    headerUrl: at(headerUrl),
    headerFilename: at(headerFilename),
    buttons: buttons.map((want) => want.columns[0]!),
    metadata: roles.flatMap((role, i) => role._tag === "Metadata" ? [i] : []),
    unnamed: roles.flatMap((role, i) => role._tag === "Unnamed" ? [i] : []),
    columnOf
  })
}

const plural = (count: number, one: string, many: string) => count === 1 ? one : many

const describe = (spec: TemplateSpec.TemplateSpec): string => {
  const body = spec.body._tag === "named"
    ? spec.body.keys.length === 0 ? "no body parameters" : `body parameters ${spec.body.keys.join(", ")}`
    : `${spec.body.count} body ${spec.body.count === 1 ? "parameter" : "parameters"}`
  const header = spec.header === "none" ? "no header" : `a ${spec.header} header`
  const buttons = spec.buttons.length === 0
    ? "no button parameters"
    : `button parameters for ${spec.buttons.map((button) => `button ${button.index}`).join(", ")}`
  return `${body}, ${header}, ${buttons}`
}

const noButtons: ReadonlyArray<string> = []

const fail = (reason: Problem["reason"], message: string): Result.Result<never, Problem> =>
  Result.fail({ reason, message })

// ---------------------------------------------------------------------------------------------------------------
// Rows

export interface RowOptions {
  readonly spec: TemplateSpec.TemplateSpec
  readonly columns: Columns
  readonly delimiter: CsvImport.Delimiter
  readonly defaultRegion: string | undefined
}

/** What is wrong with a row: the column to fix, and why. */
type Fault = readonly [column: string, reason: string]

/**
 * Turns records into rows. The dedupe map holds the addresses of accepted rows only: a number first seen on a
 * rejected row is still accepted once it appears on a valid one.
 */
export const makeRows = (
  options: RowOptions
): (fields: Array<string>, line: number) => CsvImport.Row => {
  const { columns, spec } = options
  const { names } = columns
  const width = names.length
  const named = spec.body._tag === "named" ? spec.body.keys : undefined
  const parseOptions = { defaultRegion: options.defaultRegion }
  const firstLine = FirstLines.make()
  const mediaKind = spec.header === "none" || spec.header === "text" ? undefined : spec.header
  const shown = options.delimiter === "\t" ? "a tab" : `"${options.delimiter}"`

  const params = (values: ReadonlyArray<string>): TemplateParams.TemplateParams => {
    let body: ReadonlyArray<string> | Record<string, string>
    if (named === undefined) body = columns.body.map((i) => values[i]!)
    else {
      const record: Record<string, string> = {}
      for (let k = 0; k < named.length; k++) record[named[k]!] = values[columns.body[k]!]!
      body = record
    }
    const buttons = columns.buttons.length === 0 ? noButtons : columns.buttons.map((i) => values[i]!)
    if (columns.headerText !== -1) {
      return new TemplateParams.TemplateParams({
        body,
        buttons,
        header: { _tag: "text", text: values[columns.headerText]! }
      })
    }
    if (mediaKind !== undefined) {
      const filename = columns.headerFilename === -1 ? "" : values[columns.headerFilename]!
      const link = values[columns.headerUrl]!
      return new TemplateParams.TemplateParams({
        body,
        buttons,
        header: filename === ""
          ? { _tag: "media", kind: mediaKind, link }
          : { _tag: "media", kind: mediaKind, link, filename }
      })
    }
    return new TemplateParams.TemplateParams({ body, buttons })
  }

  const fault = (issue: TemplateParams.Issue): Fault => [columns.columnOf.get(issue.field) ?? issue.field, issue.reason]

  // `values` is the parser's fresh array for this record: it is trimmed in place.
  return (values, line) => {
    let blank = true
    for (let i = 0; i < values.length; i++) {
      const value = values[i]!.trim()
      values[i] = value
      if (value !== "") blank = false
    }
    if (blank) return { _tag: "Blank", line }

    if (values.length < width) {
      const missing = names.slice(values.length)
      return {
        _tag: "Rejected",
        line,
        column: missing[0]!,
        reason: `the row ends after ${values.length} of the header's ${width} fields (no ${
          missing.join(", ")
        }); check for a missing ${shown}`
      }
    }
    for (let i = width; i < values.length; i++) {
      if (values[i] !== "") {
        return {
          _tag: "Rejected",
          line,
          column: `column ${i + 1}`,
          reason:
            `the row has ${values.length} fields but the header has ${width}; wrap a value that contains ${shown} in double quotes`
        }
      }
    }
    for (const i of columns.unnamed) {
      if (values[i] !== "") {
        return {
          _tag: "Rejected",
          line,
          column: `column ${i + 1}`,
          reason: "has a value but no name in the header; name the column or empty it"
        }
      }
    }

    const address = Address.parse(values[columns.phone]!, parseOptions)
    if (Result.isSuccess(address)) {
      const first = firstLine.get(address.success)
      if (first !== undefined) return { _tag: "Duplicate", line, firstLine: first, address: address.success }
    }
    const validated = TemplateParams.validate(spec, params(values))
    if (Result.isFailure(address) || Result.isFailure(validated)) {
      // Every problem of the row at once, so one pass fixes it: the first names the row's column, the rest their own.
      const faults: Array<Fault> = Result.isFailure(address) ? [[names[columns.phone]!, address.failure.message]] : []
      if (Result.isFailure(validated)) { for (const issue of validated.failure) faults.push(fault(issue)) }
      const [column, reason] = faults[0]!
      return {
        _tag: "Rejected",
        line,
        column,
        reason: [reason, ...faults.slice(1).map(([other, why]) => `${other}: ${why}`)].join("; ")
      }
    }

    firstLine.set(address.success, line)
    const metadata: Record<string, string> = {}
    for (const i of columns.metadata) metadata[names[i]!] = values[i]!
    return {
      _tag: "Accepted",
      recipient: { line, address: address.success, params: validated.success, metadata }
    }
  }
}
