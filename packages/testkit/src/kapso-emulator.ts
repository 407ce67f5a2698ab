#!/usr/bin/env node
// The Kapso emulator as a standalone process: `node packages/testkit/src/kapso-emulator.ts --port 8080` prints its
// URL, API key, config and templates, then serves until interrupted.
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Console, Effect, Schema } from "effect"
import { Command, Flag } from "effect/cli"
import * as KapsoEmulator from "./KapsoEmulator.ts"

// name:language:positional:<count> or name:language:named:<key>,<key>, then optionally :image|video|document|text
const TEMPLATE =
  /^([a-z0-9_]+):([A-Za-z_]+):(?:positional:(\d+)|named:([a-z_][a-z0-9_]*(?:,[a-z_][a-z0-9_]*)*))(?::(image|video|document|text))?$/

const templateOf = (flag: string): KapsoEmulator.TemplateInput => {
  const [, name = "", language = "", count, keys, header] = TEMPLATE.exec(flag) ?? []
  return {
    name,
    language,
    body: count === undefined
      ? { _tag: "named", keys: (keys ?? "").split(",") }
      : { _tag: "positional", count: Number(count) },
    header: header === undefined ? "none" : header as "image" | "video" | "document" | "text"
  }
}

const command = Command.make("kapso-emulator", {
  port: Flag.Int("port").pipe(Flag.withDescription("Port on 127.0.0.1 (0: any free one)"), Flag.withDefault(0)),
  apiKey: Flag.String("api-key").pipe(Flag.withDefault(KapsoEmulator.defaultApiKey)),
  configId: Flag.String("config-id").pipe(
    Flag.withDescription("The production WhatsApp config (the broadcasts' sender)"),
    Flag.withDefault("emulator-config")
  ),
  templates: Flag.String("template").pipe(
    Flag.withSchema(Schema.String.check(Schema.isPattern(TEMPLATE))),
    Flag.withDescription("name:language:positional:N or name:language:named:k1,k2, optionally :image (repeatable)"),
    Flag.atLeast(0)
  ),
  batchSize: Flag.Int("batch-size").pipe(Flag.withDescription("Recipients sent per turn"), Flag.withDefault(50)),
  intervalMillis: Flag.Int("interval-ms").pipe(Flag.withDescription("Between turns"), Flag.withDefault(1000))
}, ({ apiKey, batchSize, configId, intervalMillis, port, templates }) =>
  Effect.gen(function*() {
    const emulator = yield* KapsoEmulator.make({
      port,
      apiKey,
      configs: [{ id: configId }],
      templates: (templates.length === 0 ? ["crier_demo:en:positional:1"] : templates).map(templateOf),
      timing: { batchSize, interval: intervalMillis }
    })
    yield* Console.log(`Kapso emulator listening on ${emulator.url}`)
    yield* Console.log(`X-API-Key: ${emulator.apiKey}`)
    yield* Console.log(`WhatsApp config: ${configId}`)
    for (const template of emulator.templates) {
      yield* Console.log(`template ${template.name} (${template.language}): ${template.id}`)
    }
    yield* Console.log(`webhook secret: ${emulator.webhookSecret}`)
    return yield* Effect.never
  }).pipe(Effect.scoped))

command.pipe(Command.run({ version: "0.1.0" }), Effect.provide(NodeServices.layer), NodeRuntime.runMain)
