/**
 * The shape of an approved WhatsApp template: its name and language, how its body is parameterised, its header
 * and the buttons that take a value. Everything a recipient's `TemplateParams` is checked against.
 */
import { Result, Schema, SchemaIssue } from "effect"

// Meta: template names are at most 512 characters of lowercase letters, digits and underscores.
const TEMPLATE_NAME = /^[a-z0-9_]{1,512}$/
// Meta's language codes are a lowercase ISO 639 code, optionally with an uppercase region: "en", "en_US", "pt_BR".
const LANGUAGE = /^[a-z]{2,3}(?:_[A-Z]{2})?$/
// Meta (parameter_format NAMED): names are lowercase letters, digits and underscores and must not start with a
// digit; a placeholder of digits only is positional ({{1}}, {{2}}, …).
const PARAMETER_NAME = /^[a-z_][a-z0-9_]*$/
const POSITION = /^[0-9]+$/
const PLACEHOLDER = /\{\{([^{}]*)\}\}/g
/** Meta's limit on a template's body text, in characters. */
export const maxBodyLength = 1024

/** Why a template spec was refused. */
export const Reason = Schema.Literals([
  "MixedParameters",
  "NonSequentialPositional",
  "InvalidParameterName",
  "DuplicateName",
  "InvalidName",
  "InvalidLanguage",
  "EmptyBody",
  "BodyTooLong",
  "BodyTextMismatch",
  "DuplicateButtonIndex",
  "InvalidSpec"
])
export type Reason = typeof Reason.Type

export class TemplateSpecError extends Schema.TaggedError<TemplateSpecError>()("TemplateSpecError", {
  reason: Reason,
  message: Schema.String
}) {}

// Checks carry the reason they stand for, so a failed decode reports the rule that was broken.
const because = (reason: Reason, expected: string) => ({ reason, expected })

/** "text" is a text header with one parameter ({{1}}); the media kinds take a link. */
export const HeaderKind = Schema.Literals(["none", "text", "image", "video", "document"])
export type HeaderKind = typeof HeaderKind.Type

/** Each listed button takes exactly one parameter: a URL suffix, a quick-reply payload or a coupon code. */
export const ButtonKind = Schema.Literals(["url", "quick_reply", "copy_code"])
export type ButtonKind = typeof ButtonKind.Type

export class Button extends Schema.Class<Button>("@crier/core/TemplateSpec/Button")({
  index: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 9 })),
  kind: ButtonKind
}) {}

export const ParameterName = Schema.String.check(
  Schema.isPattern(
    PARAMETER_NAME,
    because("InvalidParameterName", "lowercase letters, digits and underscores, not starting with a digit")
  )
)

export const Positional = Schema.TaggedStruct("positional", {
  count: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
})
export type Positional = typeof Positional.Type

export const Named = Schema.TaggedStruct("named", {
  keys: Schema.Array(ParameterName).check(Schema.isUnique(because("DuplicateName", "distinct parameter names")))
})
export type Named = typeof Named.Type

export const BodyParameters = Schema.Union([Positional, Named])
export type BodyParameters = typeof BodyParameters.Type

export class TemplateSpec extends Schema.Class<TemplateSpec>("@crier/core/TemplateSpec")({
  name: Schema.String.check(
    Schema.isPattern(TEMPLATE_NAME, because("InvalidName", "1–512 lowercase letters, digits and underscores"))
  ),
  language: Schema.String.check(
    Schema.isPattern(LANGUAGE, because("InvalidLanguage", "a language code such as en, en_US or pt_BR"))
  ),
  body: BodyParameters,
  header: HeaderKind,
  buttons: Schema.Array(Button).check(
    Schema.makeFilter(
      (buttons: ReadonlyArray<Button>) => new Set(buttons.map((button) => button.index)).size === buttons.length,
      because("DuplicateButtonIndex", "buttons with distinct indexes")
    )
  ),
  bodyText: Schema.optional(Schema.String)
}) {}

const fail = (reason: Reason, message: string) => Result.fail(new TemplateSpecError({ reason, message }))

/** One `{{…}}` in a body text: as written, and the name inside with surrounding whitespace removed. */
export interface Placeholder {
  readonly text: string
  readonly name: string
}

/** The placeholders of a body text, in order, repeats included. */
export const placeholders = (bodyText: string): ReadonlyArray<Placeholder> =>
  Array.from(bodyText.matchAll(PLACEHOLDER), (match) => ({ text: match[0], name: (match[1] ?? "").trim() }))

/** The number of Unicode code points in a string: what WhatsApp's character limits count. */
export const characterCount = (text: string): number => {
  let count = text.length
  for (let i = 1; i < text.length; i++) {
    const unit = text.charCodeAt(i)
    if (unit >= 0xdc00 && unit <= 0xdfff) {
      const previous = text.charCodeAt(i - 1)
      if (previous >= 0xd800 && previous <= 0xdbff) count--
    }
  }
  return count
}

const parseBody = (bodyText: string): Result.Result<BodyParameters, TemplateSpecError> => {
  if (bodyText.trim() === "") return fail("EmptyBody", "the body text is empty")
  if (characterCount(bodyText) > maxBodyLength) {
    return fail(
      "BodyTooLong",
      `the body text is ${characterCount(bodyText)} characters; WhatsApp allows ${maxBodyLength}`
    )
  }
  const positions = new Set<number>()
  const keys: Array<string> = []
  let firstPositional: string | undefined
  let firstNamed: string | undefined
  for (const { name, text } of placeholders(bodyText)) {
    // "01" is neither a position nor a name.
    if (POSITION.test(name) && (name === "0" || !name.startsWith("0"))) {
      positions.add(Number(name))
      firstPositional ??= text
    } else if (PARAMETER_NAME.test(name)) {
      if (!keys.includes(name)) keys.push(name)
      firstNamed ??= text
    } else {
      return fail(
        "InvalidParameterName",
        `${text} is not a valid parameter: use {{1}}, {{2}}, … or a name of lowercase letters, digits and underscores that does not start with a digit`
      )
    }
  }
  if (firstPositional !== undefined && firstNamed !== undefined) {
    return fail("MixedParameters", `the body mixes positional ${firstPositional} and named ${firstNamed} parameters`)
  }
  if (keys.length > 0) return Result.succeed(Named.make({ keys }))
  for (let position = 1; position <= positions.size; position++) {
    if (!positions.has(position)) {
      const found = Array.from(positions).sort((a, b) => a - b).map((p) => `{{${p}}}`).join(", ")
      return fail(
        "NonSequentialPositional",
        `positional parameters must be numbered {{1}} to {{${positions.size}}} without gaps; found ${found}`
      )
    }
  }
  return Result.succeed(Positional.make({ count: positions.size }))
}

const isReason = Schema.is(Reason)

const reasonOf = (issue: SchemaIssue.Issue): Reason | undefined => {
  switch (issue._tag) {
    case "Filter": {
      const reason = issue.filter.annotations?.["reason"]
      return isReason(reason) ? reason : reasonOf(issue.issue)
    }
    case "Pointer":
    case "Encoding":
      return reasonOf(issue.issue)
    case "Composite":
    case "AnyOf":
      for (const inner of issue.issues) {
        const reason = reasonOf(inner)
        if (reason !== undefined) return reason
      }
      return undefined
    default:
      return undefined
  }
}

const decodeSpec = Schema.decodeUnknownResult(TemplateSpec)

const decode = (input: unknown): Result.Result<TemplateSpec, TemplateSpecError> =>
  Result.mapError(
    decodeSpec(input),
    (error) => new TemplateSpecError({ reason: reasonOf(error.issue) ?? "InvalidSpec", message: error.message })
  )

const sameParameters = (a: BodyParameters, b: BodyParameters): boolean =>
  a._tag === "positional"
    ? b._tag === "positional" && a.count === b.count
    : b._tag === "named" && a.keys.length === b.keys.length && a.keys.every((key, i) => key === b.keys[i])

const describe = (body: BodyParameters): string =>
  body._tag === "positional" ? `${body.count} positional parameters` : `named parameters ${body.keys.join(", ")}`

/**
 * Validates an untrusted spec (e.g. read from a JSON file). When `bodyText` is given, its placeholders must agree
 * with `body`.
 */
export const decodeUnknown = (input: unknown): Result.Result<TemplateSpec, TemplateSpecError> =>
  Result.flatMap(decode(input), (spec) =>
    spec.bodyText === undefined
      ? Result.succeed(spec)
      : Result.flatMap(parseBody(spec.bodyText), (fromText) =>
        sameParameters(fromText, spec.body)
          ? Result.succeed(spec)
          : fail(
            "BodyTextMismatch",
            `the body text has ${describe(fromText)} but the spec declares ${describe(spec.body)}`
          )))

/** The validating constructor for a hand-written spec. */
export const make: (fields: typeof TemplateSpec.Encoded) => Result.Result<TemplateSpec, TemplateSpecError> =
  decodeUnknown

export interface FromTextOptions {
  readonly name: string
  readonly language: string
  readonly header?: HeaderKind
  readonly buttons?: ReadonlyArray<Button>
}

/**
 * Infers the spec from the approved body text: `Hi {{1}}` is positional, `Hi {{first_name}}` named. A placeholder
 * repeated counts once; whitespace inside the braces is ignored.
 */
export const fromText = (
  bodyText: string,
  options: FromTextOptions
): Result.Result<TemplateSpec, TemplateSpecError> =>
  Result.flatMap(parseBody(bodyText), (body) =>
    decode({
      name: options.name,
      language: options.language,
      body,
      header: options.header ?? "none",
      buttons: options.buttons ?? [],
      bodyText
    }))

/** The body's parameter names: "1", "2", … for a positional spec, the keys in order for a named one. */
export const parameterNames = (spec: TemplateSpec): ReadonlyArray<string> =>
  spec.body._tag === "named" ? spec.body.keys : Array.from({ length: spec.body.count }, (_, i) => `${i + 1}`)
