/**
 * The settings the commands read from the environment, typed. Secrets come only from the environment and stay
 * `Redacted`; a missing or unusable setting is one line naming it and how to set it, never its value.
 *
 * | variable                  | used by                   | what                                                  |
 * |---------------------------|---------------------------|-------------------------------------------------------|
 * | `CRIER_STORE`             | every command (`--store`) | `sqlite:PATH` (default `sqlite:./.crier/crier.db`) or `postgres://…` |
 * | `KAPSO_API_KEY`           | `--transport kapso`       | secret                                                |
 * | `KAPSO_BASE_URL`          |                           | default `https://app.kapso.ai/api/v1`                 |
 * | `KAPSO_WHATSAPP_CONFIG_ID`|                           | the sending WhatsApp config                           |
 * | `KAPSO_TEMPLATE_ID`       |                           | optional: otherwise looked up by name and language    |
 * | `KEEBAI_TOKEN`            | `--transport keebai`      | secret                                                |
 * | `KEEBAI_BASE_URL`         |                           | default `https://api.keebai.com`                      |
 * | `KEEBAI_CHANNEL_ID`       |                           | the sending channel                                   |
 * | `META_ACCESS_TOKEN`       | `--transport meta`        | secret                                                |
 * | `META_BASE_URL`           |                           | default Meta's Graph API                              |
 * | `META_PHONE_NUMBER_ID`    |                           | the sending number                                    |
 * | `META_APP_SECRET`         | `webhooks serve`          | secret: verifies `/webhooks/meta`                     |
 * | `META_VERIFY_TOKEN`       |                           | secret: answers Meta's subscription check (GET)       |
 * | `KAPSO_WEBHOOK_SECRET`    |                           | secret: verifies `/webhooks/kapso`                    |
 * | `KEEBAI_WEBHOOK_SECRET`   |                           | secret: verifies `/webhooks/keebai`                   |
 */
import { Config, Effect, Option, Redacted } from "effect"
import { UsageError } from "./CliFailure.ts"

export const defaultStore = "sqlite:./.crier/crier.db"

/** An environment variable, with what to put in it when it is missing. */
interface Variable {
  readonly name: string
  readonly what: string
}

const missing = ({ name, what }: Variable) =>
  new UsageError({ message: `${name} is not set: export ${name}=… (${what})` })

// A variable set to an empty string is as good as unset.
const read = (name: string): Effect.Effect<Option.Option<string>, UsageError> =>
  Config.option(Config.String(name)).pipe(
    Effect.map(Option.filter((value) => value.trim() !== "")),
    Effect.mapError(() => new UsageError({ message: `${name} cannot be read from the environment` }))
  )

const required = (variable: Variable): Effect.Effect<string, UsageError> =>
  Effect.flatMap(
    read(variable.name),
    Option.match({ onNone: () => Effect.fail(missing(variable)), onSome: Effect.succeed })
  )

const redact = (name: string) => (value: string) => Redacted.make(value, { label: name })

const secret = (variable: Variable): Effect.Effect<Redacted.Redacted<string>, UsageError> =>
  Effect.map(required(variable), redact(variable.name))

const optionalSecret = (name: string): Effect.Effect<Option.Option<Redacted.Redacted<string>>, UsageError> =>
  Effect.map(read(name), Option.map(redact(name)))

const isHttpUrl = (url: string): boolean => URL.canParse(url) && /^https?:\/\//.test(url)

/** A base URL; unset, the transport's own default. Not a secret, so a bad value is shown. */
const baseUrl = (name: string): Effect.Effect<Option.Option<string>, UsageError> =>
  Effect.flatMap(
    read(name),
    Option.match({
      onNone: () => Effect.succeedNone,
      onSome: (url) =>
        isHttpUrl(url)
          ? Effect.succeedSome(url)
          : Effect.fail(new UsageError({ message: `${name} is not an http(s) URL: ${url}` }))
    })
  )

export interface Kapso {
  readonly apiKey: Redacted.Redacted<string>
  readonly baseUrl: Option.Option<string>
  readonly whatsappConfigId: string
  readonly templateId: Option.Option<string>
}

export const kapso: Effect.Effect<Kapso, UsageError> = Effect.all({
  apiKey: secret({ name: "KAPSO_API_KEY", what: "your Kapso project API key" }),
  baseUrl: baseUrl("KAPSO_BASE_URL"),
  whatsappConfigId: required({
    name: "KAPSO_WHATSAPP_CONFIG_ID",
    what: "the id of the WhatsApp config that sends, from Kapso's dashboard"
  }),
  templateId: read("KAPSO_TEMPLATE_ID")
})

export interface Keebai {
  readonly token: Redacted.Redacted<string>
  readonly baseUrl: Option.Option<string>
  readonly channelId: string
}

export const keebai: Effect.Effect<Keebai, UsageError> = Effect.all({
  token: secret({ name: "KEEBAI_TOKEN", what: "your Keebai API token, with the messages:bulk scope" }),
  baseUrl: baseUrl("KEEBAI_BASE_URL"),
  channelId: required({ name: "KEEBAI_CHANNEL_ID", what: "the id of the Keebai channel that sends" })
})

export interface Meta {
  readonly accessToken: Redacted.Redacted<string>
  readonly baseUrl: Option.Option<string>
  readonly phoneNumberId: string
}

export const meta: Effect.Effect<Meta, UsageError> = Effect.all({
  accessToken: secret({
    name: "META_ACCESS_TOKEN",
    what: "a system user access token with whatsapp_business_messaging"
  }),
  baseUrl: baseUrl("META_BASE_URL"),
  phoneNumberId: required({ name: "META_PHONE_NUMBER_ID", what: "the phone_number_id that sends" })
})

export interface Webhooks {
  readonly meta: Option.Option<{
    readonly appSecret: Redacted.Redacted<string>
    readonly verifyToken: Option.Option<Redacted.Redacted<string>>
  }>
  readonly kapso: Option.Option<Redacted.Redacted<string>>
  readonly keebai: Option.Option<Redacted.Redacted<string>>
}

/** The webhook secrets that are set; at least one must be. */
export const webhooks: Effect.Effect<Webhooks, UsageError> = Effect.gen(function*() {
  const appSecret = yield* optionalSecret("META_APP_SECRET")
  const verifyToken = yield* optionalSecret("META_VERIFY_TOKEN")
  const settings: Webhooks = {
    meta: Option.map(appSecret, (appSecret) => ({ appSecret, verifyToken })),
    kapso: yield* optionalSecret("KAPSO_WEBHOOK_SECRET"),
    keebai: yield* optionalSecret("KEEBAI_WEBHOOK_SECRET")
  }
  if (Option.isNone(settings.meta) && Option.isNone(settings.kapso) && Option.isNone(settings.keebai)) {
    return yield* new UsageError({
      message:
        "no webhook secret is set: export META_APP_SECRET=… (your Meta app's secret), KAPSO_WEBHOOK_SECRET=… or KEEBAI_WEBHOOK_SECRET=… (the webhook's signing secret)"
    })
  }
  return settings
})

/** Where the store is: `--store`, else `CRIER_STORE`, else the embedded default. */
export const store = (flag: Option.Option<string>): Effect.Effect<string, UsageError> =>
  Option.isSome(flag)
    ? Effect.succeed(flag.value)
    : Effect.map(read("CRIER_STORE"), Option.getOrElse(() => defaultStore))
