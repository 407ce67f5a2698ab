/**
 * The Graph API as the Meta emulator speaks it: the send request it reads, the answers and webhooks it writes, and
 * how a template message is checked against a registered template.
 *
 * Written from Meta's documentation, not shared with `@crier/meta`: an adapter bug must not be mirrored here.
 */
import type * as TemplateSpec from "@crier/core/TemplateSpec"
import { Result, Schema } from "effect"

const Link = Schema.Struct({ link: Schema.String, filename: Schema.optionalKey(Schema.String) })

export const Parameter = Schema.Struct({
  type: Schema.String,
  text: Schema.optionalKey(Schema.String),
  parameter_name: Schema.optionalKey(Schema.String),
  image: Schema.optionalKey(Link),
  video: Schema.optionalKey(Link),
  document: Schema.optionalKey(Link),
  payload: Schema.optionalKey(Schema.String),
  coupon_code: Schema.optionalKey(Schema.String)
})
export type Parameter = typeof Parameter.Type

export const Component = Schema.Struct({
  type: Schema.String,
  sub_type: Schema.optionalKey(Schema.String),
  index: Schema.optionalKey(Schema.Union([Schema.String, Schema.Number])),
  parameters: Schema.optionalKey(Schema.Array(Parameter))
})
export type Component = typeof Component.Type

export const SendRequest = Schema.Struct({
  messaging_product: Schema.Literal("whatsapp"),
  recipient_type: Schema.optionalKey(Schema.String),
  to: Schema.optionalKey(Schema.String),
  recipient: Schema.optionalKey(Schema.String),
  type: Schema.Literal("template"),
  template: Schema.Struct({
    name: Schema.String,
    language: Schema.Struct({ code: Schema.String }),
    components: Schema.optionalKey(Schema.Array(Component))
  }),
  biz_opaque_callback_data: Schema.optionalKey(Schema.String.check(Schema.isMaxLength(512))),
  product_policy: Schema.optionalKey(Schema.Literals(["CLOUD_API_FALLBACK", "STRICT"]))
})
export type SendRequest = typeof SendRequest.Type

export const decodeSendRequest = Schema.decodeUnknownResult(Schema.fromJsonString(SendRequest))
export const decodeJson = Schema.decodeUnknownResult(Schema.fromJsonString(Schema.Unknown))

/** A Graph API error: what the emulator answers, and what its webhooks carry for a failed message. */
export interface GraphError {
  readonly code: number
  readonly message: string
  readonly details: string
  readonly subcode?: number | undefined
}

export const graphError = (code: number, message: string, details: string, subcode?: number): GraphError =>
  subcode === undefined ? { code, message, details } : { code, message, details, subcode }

/** Meta's wording for the codes the emulator produces. */
export const errors = {
  invalidToken: graphError(190, "Invalid OAuth access token - Cannot parse access token", "invalid access token"),
  unknownObject: (id: string) =>
    graphError(
      100,
      `Unsupported post request. Object with ID '${id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation`,
      "unknown phone number id",
      33
    ),
  invalidParameter: (details: string) => graphError(100, "(#100) Invalid parameter", details),
  invalidValue: (details: string) => graphError(131009, "(#131009) Parameter value is not valid", details),
  missing: (details: string) => graphError(131008, "(#131008) Required parameter is missing", details),
  count: (details: string) =>
    graphError(132000, "(#132000) Number of parameters does not match the expected number of params", details),
  format: (details: string) =>
    graphError(132012, "(#132012) Parameter format does not match format in the created template", details),
  noTemplate: (name: string, language: string) =>
    graphError(
      132001,
      "(#132001) Template name does not exist in the translation",
      `template name (${name}) does not exist in ${language}`
    ),
  paused: graphError(132015, "(#132015) Template is paused", "Cannot send message as the template has been paused"),
  disabled: graphError(132016, "(#132016) Template is disabled", "The template has been disabled for low quality"),
  throughput: graphError(130429, "(#130429) Rate limit hit", "Cloud API message throughput has been reached."),
  pairRate: graphError(
    131056,
    "(#131056) (Business Account, Consumer Account) pair rate limit hit",
    "Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time."
  )
} as const

/** Errors a recipient's outcome may carry, in Meta's words. */
export const outcomeErrors: Readonly<Record<number, GraphError>> = {
  131026: graphError(131026, "Message undeliverable", "Message Undeliverable."),
  131049: graphError(
    131049,
    "This message was not delivered to maintain healthy ecosystem engagement.",
    "In order to maintain a healthy ecosystem engagement, the message failed to be delivered."
  ),
  131050: graphError(
    131050,
    "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business.",
    "The user has stopped marketing messages."
  ),
  132015: errors.paused
}

export const errorOf = (code: number): GraphError =>
  outcomeErrors[code] ?? graphError(code, `(#${code}) Error`, `error ${code}`)

export const errorBody = (error: GraphError, fbtraceId: string) => ({
  error: {
    message: error.message,
    type: "OAuthException",
    code: error.code,
    ...(error.subcode === undefined ? {} : { error_subcode: error.subcode }),
    error_data: { messaging_product: "whatsapp", details: error.details },
    fbtrace_id: fbtraceId
  }
})

// ---------------------------------------------------------------------------------------------------------------
// Checking a message against its template

const article = (kind: string) => (kind === "image" ? "an" : "a")

const isFilled = (value: string | undefined): value is string => value !== undefined && value.trim() !== ""

const checkHeader = (
  spec: TemplateSpec.TemplateSpec,
  header: Component | undefined
): Result.Result<void, GraphError> => {
  const parameters = header?.parameters ?? []
  if (spec.header === "none") {
    return parameters.length === 0 ? Result.void : Result.fail(errors.count("header: the template has no header"))
  }
  const [first, ...rest] = parameters
  if (first === undefined) return Result.fail(errors.missing(`header: expected ${article(spec.header)} ${spec.header}`))
  if (rest.length > 0) return Result.fail(errors.count(`header: ${parameters.length} parameters, expected 1`))
  if (first.type !== spec.header) {
    return Result.fail(errors.format(`header: expected ${article(spec.header)} ${spec.header}, got ${first.type}`))
  }
  if (spec.header === "text") {
    return isFilled(first.text) ? Result.void : Result.fail(errors.missing("header: text is empty"))
  }
  const media = first[spec.header]
  if (media === undefined || !isFilled(media.link)) return Result.fail(errors.missing(`header: no ${spec.header} link`))
  if (media.filename !== undefined && spec.header !== "document") {
    return Result.fail(errors.invalidParameter(`header: only a document takes a filename`))
  }
  return Result.void
}

const checkBody = (spec: TemplateSpec.TemplateSpec, body: Component | undefined): Result.Result<void, GraphError> => {
  const parameters = body?.parameters ?? []
  if (parameters.some((parameter) => parameter.type !== "text")) {
    return Result.fail(errors.format("body: every parameter must be text"))
  }
  if (spec.body._tag === "positional") {
    if (parameters.some((parameter) => parameter.parameter_name !== undefined)) {
      return Result.fail(errors.format("body: the template takes positional parameters, not parameter_name"))
    }
    if (parameters.length !== spec.body.count) {
      return Result.fail(
        errors.count(
          `body: number of localizable_params (${parameters.length}) does not match the expected number of params (${spec.body.count})`
        )
      )
    }
  } else {
    const keys = spec.body.keys
    const unnamed = parameters.find((parameter) => parameter.parameter_name === undefined)
    if (unnamed !== undefined) return Result.fail(errors.format("body: the template takes named parameters"))
    const unknown = parameters.find((parameter) => !keys.includes(parameter.parameter_name ?? ""))
    if (unknown !== undefined) return Result.fail(errors.format(`body: unknown parameter ${unknown.parameter_name}`))
    const names = new Set(parameters.map((parameter) => parameter.parameter_name))
    if (names.size !== keys.length || parameters.length !== keys.length) {
      return Result.fail(errors.count(`body: ${parameters.length} parameters, expected ${keys.join(", ")}`))
    }
  }
  return parameters.every((parameter) => isFilled(parameter.text))
    ? Result.void
    : Result.fail(errors.missing("body: a parameter's text is empty"))
}

const buttonParameterType = { url: "text", quick_reply: "payload", copy_code: "coupon_code" } as const

const checkButtons = (
  spec: TemplateSpec.TemplateSpec,
  buttons: ReadonlyArray<Component>
): Result.Result<void, GraphError> => {
  const expected = new Map(spec.buttons.map((button) => [String(button.index), button.kind]))
  const extra = buttons.find((button) => !expected.has(String(button.index)))
  if (extra !== undefined) {
    return Result.fail(errors.count(`button ${String(extra.index)}: the template has no button with a parameter there`))
  }
  for (const [index, kind] of expected) {
    const button = buttons.find((candidate) => String(candidate.index) === index)
    if (button === undefined) return Result.fail(errors.missing(`button ${index}: parameter missing`))
    if (button.sub_type !== kind) return Result.fail(errors.format(`button ${index}: sub_type must be ${kind}`))
    const [parameter, ...rest] = button.parameters ?? []
    if (parameter === undefined) return Result.fail(errors.missing(`button ${index}: parameter missing`))
    if (rest.length > 0) return Result.fail(errors.count(`button ${index}: one parameter expected`))
    const type = buttonParameterType[kind]
    if (parameter.type !== type) return Result.fail(errors.format(`button ${index}: expected a ${type} parameter`))
    if (!isFilled(parameter[type])) return Result.fail(errors.missing(`button ${index}: ${type} is empty`))
  }
  return Result.void
}

/** Why Meta would refuse these components for this template, if it would. */
export const checkComponents = (
  spec: TemplateSpec.TemplateSpec,
  components: ReadonlyArray<Component>
): Result.Result<void, GraphError> => {
  const unknown = components.find((component) => !["header", "body", "button"].includes(component.type))
  if (unknown !== undefined) return Result.fail(errors.invalidParameter(`unknown component type ${unknown.type}`))
  const headers = components.filter((component) => component.type === "header")
  const bodies = components.filter((component) => component.type === "body")
  if (headers.length > 1 || bodies.length > 1) return Result.fail(errors.invalidParameter("repeated component"))
  return Result.flatMap(
    checkHeader(spec, headers[0]),
    () =>
      Result.flatMap(
        checkBody(spec, bodies[0]),
        () => checkButtons(spec, components.filter((component) => component.type === "button"))
      )
  )
}
