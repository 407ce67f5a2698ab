/**
 * The per-message `BroadcastTransport` over Kapso's `POST /whatsapp_templates/{template_id}/send_template`: one call
 * per recipient, paced by the engine, statuses from Kapso's webhooks (`KapsoWebhook`), correlated by the wamid the
 * call answers with (Meta's `response.messages[0].id`).
 *
 * A recipient Kapso refuses on its own account (a 422 about its parameters or its number, a BSUID it cannot
 * address) is a `Rejected` outcome; everything else (401, an unknown template, 429, 5xx, timeouts) fails the call.
 * There is no remote campaign: `open`, `start` and `cancel` have nothing to do, and `poll` is empty and done.
 */
import * as Address from "@crier/core/Address"
import type * as Broadcast from "@crier/core/Broadcast"
import { BroadcastTransport, type Capabilities, type Outgoing } from "@crier/core/BroadcastTransport"
import type * as TemplateParams from "@crier/core/TemplateParams"
import type * as TemplateSpec from "@crier/core/TemplateSpec"
import * as TransportError from "@crier/core/TransportError"
import { type Config, Effect, Layer, Option, Result } from "effect"
import type { HttpClient } from "effect/http"
import * as KapsoApi from "./KapsoApi.ts"

export const defaultName = "kapso-template"

export interface Options extends KapsoApi.Options {
  /** The transport's name, stored on its broadcasts. Default "kapso-template". */
  readonly name?: string | undefined
}

export const capabilities: Capabilities = {
  maxBatchSize: 1,
  remoteCampaign: false,
  startsOnSubmit: true,
  tracking: "webhook",
  providerDedupe: false,
  providerPaced: false,
  requestBudgets: []
}

/** `send_template` takes body parameters, any header, and URL button parameters (`button_url_params`). */
export const unsupported = (template: TemplateSpec.TemplateSpec): Option.Option<string> =>
  template.buttons.some((button) => button.kind !== "url")
    ? Option.some("Kapso's send_template takes URL button parameters only, not quick-reply or copy-code ones")
    : Option.none()

/** The `template` object of a `send_template` call for one recipient. */
export const input = (
  template: TemplateSpec.TemplateSpec,
  item: Outgoing,
  whatsappConfigId: Option.Option<string>
): Result.Result<KapsoApi.SendTemplateInput, string> => {
  const buttons: Record<string, string> = {}
  for (const [i, value] of item.params.buttons.entries()) {
    const button = template.buttons[i]
    if (button === undefined || button.kind !== "url") {
      return Result.fail("Kapso's send_template takes URL button parameters only")
    }
    buttons[String(button.index)] = value
  }
  return Result.succeed({
    phone_number: item.address,
    template_parameters: item.params.body,
    ...headerOf(item.params.header),
    ...(item.params.buttons.length === 0 ? {} : { button_url_params: buttons }),
    ...Option.match(whatsappConfigId, { onNone: () => ({}), onSome: (id) => ({ whatsapp_config_id: id }) })
  })
}

const headerOf = (header: TemplateParams.Header | undefined): Partial<KapsoApi.SendTemplateInput> =>
  header === undefined
    ? {}
    : header._tag === "text"
    ? { header_type: "text", header_params: header.text }
    : {
      header_type: header.kind,
      header_params: header.link,
      ...(header.filename === undefined ? {} : { header_filename: header.filename })
    }

const fail = (operation: string, reason: TransportError.Reason) =>
  new TransportError.TransportError({ provider: KapsoApi.provider, operation, reason })

// Refusals about this one recipient; the rest concern every recipient and fail the call.
const refusesRecipient = (error: TransportError.TransportError): boolean =>
  error.reason._tag === "RecipientRejected" ||
  (error.reason._tag === "TemplateParamsMismatch" && error.reason.perRecipient === true)

export const make = Effect.fn("KapsoTemplateSend.make")(function*(options: Options) {
  const api = yield* KapsoApi.make(options)
  const name = options.name ?? defaultName

  const submit = Effect.fn("KapsoTemplateSend.submit")(
    function*(broadcast: Broadcast.Broadcast, batch: readonly [Outgoing, ...Array<Outgoing>]) {
      if (batch.length > capabilities.maxBatchSize) {
        return yield* fail(
          "send_template",
          new TransportError.InvalidRequest({
            message: `${batch.length} recipients in one call; send_template takes 1`
          })
        )
      }
      const [item] = batch
      if (Address.kind(item.address) !== "phone") {
        const message = "Kapso's send_template addresses phone numbers, not BSUIDs"
        return {
          outcomes: [{
            _tag: "Rejected",
            error: fail("send_template", new TransportError.RecipientRejected({ message }))
          }]
        } as const
      }
      const configId = KapsoApi.senderOf(broadcast.sender, options)
      const body = input(broadcast.template, item, configId)
      if (Result.isFailure(body)) {
        return yield* fail("send_template", new TransportError.InvalidRequest({ message: body.failure }))
      }
      const templateId = yield* api.templateId(broadcast.template, configId)
      const answer = yield* Effect.result(api.sendTemplate(templateId, body.success))
      if (Result.isFailure(answer)) {
        if (refusesRecipient(answer.failure)) {
          return { outcomes: [{ _tag: "Rejected", error: answer.failure }] } as const
        }
        return yield* answer.failure
      }
      const result = answer.success
      if (result.status !== undefined && result.status !== "success") {
        return yield* fail(
          "send_template",
          new TransportError.InvalidRequest({
            message: `Kapso answered send_template with status "${result.status}": ${result.message ?? ""}`.trim()
          })
        )
      }
      const wamid = Option.fromUndefinedOr(result.response?.messages?.[0]?.id)
      return { outcomes: [{ _tag: "Accepted", providerMessageId: wamid, held: false }] } as const
    }
  )

  return BroadcastTransport.of({
    name,
    capabilities,
    unsupported,
    open: () => Effect.succeed(Option.none()),
    submit,
    start: () => Effect.void,
    poll: () => Effect.succeed({ events: [], cursor: Option.none(), done: true }),
    cancel: () => Effect.void
  })
})

/** The transport; the caller provides the `HttpClient`. */
export const layer = (options: Options): Layer.Layer<BroadcastTransport, never, HttpClient.HttpClient> =>
  Layer.effect(BroadcastTransport, make(options))

/** The transport configured from `KAPSO_API_KEY`, `KAPSO_BASE_URL` and `KAPSO_WHATSAPP_CONFIG_ID`. */
export const layerConfig: Layer.Layer<BroadcastTransport, Config.ConfigError, HttpClient.HttpClient> = Layer.effect(
  BroadcastTransport,
  Effect.flatMap(KapsoApi.config, make)
)
