#!/usr/bin/env node
// The Meta Graph API emulator as a standalone process: `node packages/testkit/src/meta-emulator.ts --port 8080`
// prints its URL and both bases (Meta's and Kapso's proxy), then serves until interrupted. Templates are registered
// with `--template name:language:2` (two positional parameters) or `--template name:language:first_name,code`
// (named); without any, Meta's `hello_world` (en_US, no parameters). With `--webhook-url` it signs and posts
// status and inbound webhooks there.
import * as TemplateSpec from "@crier/core/TemplateSpec"
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Console, Effect, Option, Result } from "effect"
import { Command, Flag } from "effect/cli"
import * as MetaEmulator from "./MetaEmulator.ts"

/** `name:language:count` or `name:language:key,key`. */
const parseTemplate = (text: string): Result.Result<TemplateSpec.TemplateSpec, TemplateSpec.TemplateSpecError> => {
  const [name = "", language = "", parameters = "0", ...rest] = text.split(":")
  if (rest.length > 0) {
    return Result.fail(
      new TemplateSpec.TemplateSpecError({ reason: "InvalidSpec", message: `--template ${text}: name:language:params` })
    )
  }
  const body = /^\d+$/.test(parameters)
    ? { _tag: "positional" as const, count: Number(parameters) }
    : { _tag: "named" as const, keys: parameters.split(",") }
  return TemplateSpec.make({ name, language, body, header: "none", buttons: [] })
}

const command = Command.make("meta-emulator", {
  port: Flag.Int("port").pipe(Flag.withDescription("Port on 127.0.0.1 (0: any free one)"), Flag.withDefault(0)),
  token: Flag.String("token").pipe(
    Flag.withDescription("The bearer token Meta's base accepts"),
    Flag.withDefault(MetaEmulator.defaultAccessToken)
  ),
  apiKey: Flag.String("api-key").pipe(
    Flag.withDescription("The X-API-Key Kapso's proxy base accepts"),
    Flag.withDefault(MetaEmulator.defaultKapsoApiKey)
  ),
  phoneNumberId: Flag.String("phone-number-id").pipe(Flag.withDefault(MetaEmulator.defaultPhoneNumberId)),
  throughput: Flag.Int("throughput").pipe(
    Flag.withDescription("Messages per second per number, inbound included"),
    Flag.withDefault(80)
  ),
  template: Flag.String("template").pipe(
    Flag.withDescription("name:language:count or name:language:key,key (repeatable)"),
    Flag.atLeast(0)
  ),
  webhookUrl: Flag.String("webhook-url").pipe(Flag.withDescription("Where webhooks go"), Flag.optional),
  appSecret: Flag.String("app-secret").pipe(
    Flag.withDescription("The app secret webhooks are signed with (X-Hub-Signature-256)"),
    Flag.withDefault("meta-emulator-app-secret")
  )
}, (flags) =>
  Effect.gen(function*() {
    const specs = flags.template.length === 0 ? ["hello_world:en_US:0"] : flags.template
    const templates = yield* Effect.forEach(specs, (text) => Effect.fromResult(parseTemplate(text)))
    const webhookUrl = Option.getOrUndefined(flags.webhookUrl)
    const emulator = yield* MetaEmulator.make({
      port: flags.port,
      accessToken: flags.token,
      kapsoApiKey: flags.apiKey,
      phoneNumbers: [{ id: flags.phoneNumberId }],
      throughput: flags.throughput,
      templates: templates.map((spec) => ({ spec })),
      outcomes: {
        default: MetaEmulator.read,
        mix: [
          { share: 0.2, outcome: MetaEmulator.delivered },
          { share: 0.05, outcome: MetaEmulator.replied() },
          { share: 0.02, outcome: MetaEmulator.failed(131026) }
        ]
      },
      ...(webhookUrl === undefined ? {} : { webhook: { url: webhookUrl, appSecret: flags.appSecret } })
    })
    yield* Console.log(`Meta emulator listening on ${emulator.url}`)
    yield* Console.log(`Meta's Graph API: ${emulator.graphUrl} (Authorization: Bearer ${flags.token})`)
    yield* Console.log(`Kapso's Meta proxy: ${emulator.kapsoUrl} (X-API-Key: ${flags.apiKey})`)
    yield* Console.log(`phone_number_id ${flags.phoneNumberId}; templates ${specs.join(", ")}`)
    if (webhookUrl !== undefined) yield* Console.log(`webhooks to ${webhookUrl}, signed with ${flags.appSecret}`)
    return yield* Effect.never
  }).pipe(Effect.scoped))

command.pipe(Command.run({ version: "0.1.0" }), Effect.provide(NodeServices.layer), NodeRuntime.runMain)
