/**
 * The Cloud API's template message: the body of one `POST /{phone_number_id}/messages` or `/marketing_messages`,
 * built from a broadcast's `TemplateSpec` and one recipient's `TemplateParams`.
 *
 * - body: one `text` parameter per value, in the spec's order; named templates add `parameter_name`;
 * - header: a `text` parameter, or an `image` / `video` / `document` link (a document may carry its `filename`);
 * - buttons: one component per spec button, by its index: a URL suffix (`text`), a quick-reply `payload` or a
 *   `coupon_code`;
 * - the address goes in `to` (a phone number) or `recipient` (a BSUID), never both;
 * - `biz_opaque_callback_data` carries our recipient id, which Meta echoes in every status webhook.
 */
import * as Address from "@crier/core/Address"
import type * as TemplateParams from "@crier/core/TemplateParams"
import type * as TemplateSpec from "@crier/core/TemplateSpec"
import { Schema } from "effect"

export const TextParameter = Schema.Struct({
  type: Schema.Literal("text"),
  text: Schema.String,
  parameter_name: Schema.optionalKey(Schema.String)
})

const Link = Schema.Struct({ link: Schema.String })

export const MediaParameter = Schema.Union([
  Schema.Struct({ type: Schema.Literal("image"), image: Link }),
  Schema.Struct({ type: Schema.Literal("video"), video: Link }),
  Schema.Struct({
    type: Schema.Literal("document"),
    document: Schema.Struct({ link: Schema.String, filename: Schema.optionalKey(Schema.String) })
  })
])
export type MediaParameter = typeof MediaParameter.Type

export const ButtonParameter = Schema.Union([
  TextParameter,
  Schema.Struct({ type: Schema.Literal("payload"), payload: Schema.String }),
  Schema.Struct({ type: Schema.Literal("coupon_code"), coupon_code: Schema.String })
])
export type ButtonParameter = typeof ButtonParameter.Type

export const Component = Schema.Union([
  Schema.Struct({
    type: Schema.Literal("header"),
    parameters: Schema.Tuple([Schema.Union([TextParameter, MediaParameter])])
  }),
  Schema.Struct({ type: Schema.Literal("body"), parameters: Schema.Array(TextParameter) }),
  Schema.Struct({
    type: Schema.Literal("button"),
    sub_type: Schema.Literals(["url", "quick_reply", "copy_code"]),
    index: Schema.String,
    parameters: Schema.Tuple([ButtonParameter])
  })
])
export type Component = typeof Component.Type

/** Marketing Messages API only: whether Meta may fall back to the Cloud API when it cannot use its own delivery. */
export const ProductPolicy = Schema.Literals(["CLOUD_API_FALLBACK", "STRICT"])
export type ProductPolicy = typeof ProductPolicy.Type

export const TemplateMessage = Schema.Struct({
  messaging_product: Schema.Literal("whatsapp"),
  recipient_type: Schema.Literal("individual"),
  to: Schema.optionalKey(Schema.String),
  recipient: Schema.optionalKey(Schema.String),
  type: Schema.Literal("template"),
  template: Schema.Struct({
    name: Schema.String,
    language: Schema.Struct({ code: Schema.String }),
    components: Schema.Array(Component)
  }),
  biz_opaque_callback_data: Schema.optionalKey(Schema.String),
  product_policy: Schema.optionalKey(ProductPolicy)
})
export type TemplateMessage = typeof TemplateMessage.Type

export interface Input {
  readonly template: TemplateSpec.TemplateSpec
  /** Values already checked against `template` (`TemplateParams.validate`). */
  readonly params: TemplateParams.TemplateParams
  readonly address: Address.Address
  /** Echoed in status webhooks: our recipient id. */
  readonly callbackData?: string | undefined
  readonly productPolicy?: ProductPolicy | undefined
}

const text = (value: string): typeof TextParameter.Type => ({ type: "text", text: value })

const headerParameter = (header: TemplateParams.Header): Component & { type: "header" } => {
  if (header._tag === "text") return { type: "header", parameters: [text(header.text)] }
  const media: MediaParameter = header.kind === "document"
    ? {
      type: "document",
      document: header.filename === undefined ? { link: header.link } : { link: header.link, filename: header.filename }
    }
    : header.kind === "image"
    ? { type: "image", image: { link: header.link } }
    : { type: "video", video: { link: header.link } }
  return { type: "header", parameters: [media] }
}

const buttonParameter = (kind: TemplateSpec.ButtonKind, value: string): ButtonParameter =>
  kind === "url"
    ? text(value)
    : kind === "quick_reply"
    ? { type: "payload", payload: value }
    : { type: "coupon_code", coupon_code: value }

// Array.isArray does not narrow a readonly array out of a union.
const isPositional = (body: TemplateParams.TemplateParams["body"]): body is ReadonlyArray<string> => Array.isArray(body)

// Checked values fit the spec's format; the guards only keep the types honest.
const bodyParameters = (
  spec: TemplateSpec.TemplateSpec,
  body: TemplateParams.TemplateParams["body"]
): Array<typeof TextParameter.Type> => {
  if (spec.body._tag === "named") {
    const values: Readonly<Record<string, string>> = isPositional(body) ? {} : body
    return spec.body.keys.map((key) => ({ type: "text", parameter_name: key, text: values[key] ?? "" }))
  }
  return isPositional(body) ? body.slice(0, spec.body.count).map(text) : []
}

/** The components of one recipient's message. */
export const components = (
  spec: TemplateSpec.TemplateSpec,
  params: TemplateParams.TemplateParams
): Array<Component> => {
  const parts: Array<Component> = []
  if (spec.header !== "none" && params.header !== undefined) parts.push(headerParameter(params.header))
  const body = bodyParameters(spec, params.body)
  if (body.length > 0) parts.push({ type: "body", parameters: body })
  spec.buttons.forEach((button, i) => {
    const value = params.buttons[i]
    if (value === undefined) return
    parts.push({
      type: "button",
      sub_type: button.kind,
      index: String(button.index),
      parameters: [buttonParameter(button.kind, value)]
    })
  })
  return parts
}

export const make = (input: Input): TemplateMessage => ({
  messaging_product: "whatsapp",
  recipient_type: "individual",
  ...(Address.kind(input.address) === "phone" ? { to: input.address } : { recipient: input.address }),
  type: "template",
  template: {
    name: input.template.name,
    language: { code: input.template.language },
    components: components(input.template, input.params)
  },
  ...(input.callbackData === undefined ? {} : { biz_opaque_callback_data: input.callbackData }),
  ...(input.productPolicy === undefined ? {} : { product_policy: input.productPolicy })
})
