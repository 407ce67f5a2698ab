#!/usr/bin/env node
// The Keebai emulator as a standalone process: `node packages/testkit/src/keebai-emulator.ts --port 8080` prints its
// URL and token, then serves until interrupted. With `--webhook-url` it signs and posts webhooks there.
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Console, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import * as KeebaiEmulator from "./KeebaiEmulator.ts"

const command = Command.make("keebai-emulator", {
  port: Flag.Int("port").pipe(Flag.withDescription("Port on 127.0.0.1 (0: any free one)"), Flag.withDefault(0)),
  token: Flag.String("token").pipe(
    Flag.withDescription("The bearer token accepted, with the messages:bulk scope"),
    Flag.withDefault(KeebaiEmulator.defaultToken)
  ),
  webhookUrl: Flag.String("webhook-url").pipe(Flag.withDescription("Where webhooks go"), Flag.optional),
  webhookSecret: Flag.String("webhook-secret").pipe(
    Flag.withDescription("The whsec_ secret webhooks are signed with"),
    Flag.withDefault("whsec_keebai_emulator")
  ),
  senderField: Flag.Literals("sender-field", ["channel_id", "phone_number_id", "either"]).pipe(
    Flag.withDefault("either")
  ),
  initialStatus: Flag.Literals("initial-status", ["PENDING", "scheduled"]).pipe(Flag.withDefault("PENDING")),
  messagesPerSecond: Flag.Int("messages-per-second").pipe(Flag.withDefault(50)),
  unlimited: Flag.Boolean("unlimited").pipe(Flag.withDescription("No request budget (default: 60/min, 1,000/h)"))
}, (flags) =>
  Effect.gen(function*() {
    const webhookUrl = Option.getOrUndefined(flags.webhookUrl)
    const emulator = yield* KeebaiEmulator.make({
      port: flags.port,
      tokens: [{ token: flags.token }],
      senderField: flags.senderField,
      initialStatus: flags.initialStatus,
      timing: { messagesPerSecond: flags.messagesPerSecond, deliveredAfter: 1000, readAfter: 3000 },
      outcomes: { failed: 0.02, read: 0.5, replied: 0.05 },
      ...(flags.unlimited ? { budgets: [] } : {}),
      ...(webhookUrl === undefined ? {} : { webhook: { url: webhookUrl, secret: flags.webhookSecret } })
    })
    yield* Console.log(`Keebai emulator listening on ${emulator.url}`)
    yield* Console.log(`Authorization: Bearer ${flags.token}`)
    if (webhookUrl !== undefined) yield* Console.log(`webhooks to ${webhookUrl}, signed with ${flags.webhookSecret}`)
    return yield* Effect.never
  }).pipe(Effect.scoped))

command.pipe(Command.run({ version: "0.1.0" }), Effect.provide(NodeServices.layer), NodeRuntime.runMain)
