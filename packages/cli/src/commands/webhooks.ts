/**
 * `crier webhooks serve`: the webhook server (`WebhookServer`: Meta, Kapso and Keebai routes, each live when its
 * secret is set) on a port of this machine. The first line printed is the URL it listens on; the next ones say which
 * routes are live.
 */
import { Console, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { explained, UsageError } from "../CliFailure.ts"
import * as Logging from "../Logging.ts"
import * as Settings from "../Settings.ts"
import * as Stores from "../Stores.ts"
import * as Transports from "../Transports.ts"
import * as WebhookServer from "../WebhookServer.ts"

export const serve = Command.make(
  "serve",
  {
    port: Flag.Int("port").pipe(Flag.withDescription("Port to listen on (0: any free one)"), Flag.withDefault(8080)),
    host: Flag.String("host").pipe(
      Flag.withDescription("Address to listen on (0.0.0.0 for every interface)"),
      Flag.withDefault("127.0.0.1")
    ),
    store: Stores.flag
  },
  Effect.fn("crier.webhooks.serve")(function*(input) {
    if (input.port < 0 || input.port > 65535) {
      return yield* new UsageError({ message: `--port ${input.port} is not a port number (0–65535)` })
    }
    const secrets = yield* Settings.webhooks
    const location = yield* Stores.locate(input.store)
    const run = Effect.gen(function*() {
      const url = yield* WebhookServer.listen(secrets, { port: input.port, host: input.host })
      const line = (route: string, live: boolean, off: string) =>
        Console.log(`  ${`${url}${route}`.padEnd(url.length + 18)}${live ? "live" : `off: ${off}`}`)
      yield* Console.log(`crier webhooks listening on ${url}`)
      yield* line("/webhooks/meta", Option.isSome(secrets.meta), "set META_APP_SECRET (and META_VERIFY_TOKEN)")
      yield* line("/webhooks/kapso", Option.isSome(secrets.kapso), "set KAPSO_WEBHOOK_SECRET")
      yield* line("/webhooks/keebai", Option.isSome(secrets.keebai), "set KEEBAI_WEBHOOK_SECRET")
      if (Option.exists(secrets.meta, (meta) => Option.isNone(meta.verifyToken))) {
        yield* Console.log("  (Meta's subscription check is refused until META_VERIFY_TOKEN is set)")
      }
      yield* Console.log(`  store: ${Stores.describe(location)}`)
      return yield* Effect.never
    })
    yield* run.pipe(
      Effect.scoped,
      Effect.provide(Transports.readOnly),
      Effect.provide(Stores.layer(location)),
      explained,
      Logging.atLeast("Info")
    )
  })
).pipe(
  Command.withDescription(
    [
      "Receive Meta, Kapso and Keebai webhooks, verify their signatures, and apply them to the store.",
      "",
      "Routes, each live when its secret is set in the environment (404 otherwise):",
      "  /webhooks/meta    META_APP_SECRET; META_VERIFY_TOKEN answers Meta's subscription check (GET)",
      "  /webhooks/kapso   KAPSO_WEBHOOK_SECRET",
      "  /webhooks/keebai  KEEBAI_WEBHOOK_SECRET"
    ].join("\n  ")
  ),
  Command.withShortDescription("Receive Meta, Kapso and Keebai webhooks and apply them to the store")
)

export const webhooks = Command.make("webhooks").pipe(
  Command.withDescription("Take the providers' status and reply webhooks"),
  Command.withSubcommands([serve])
)
