/**
 * The transports the command line sends with, each configured from the environment (`Settings`) over one HTTP
 * client (Undici), inside the engine that runs it:
 *
 * | name     | what                                         | sender                       | pacing                      |
 * |----------|----------------------------------------------|------------------------------|-----------------------------|
 * | `kapso`  | Kapso's Broadcasts API                       | `KAPSO_WHATSAPP_CONFIG_ID`   | Kapso's own                 |
 * | `keebai` | Keebai's bulk API                            | `KEEBAI_CHANNEL_ID`          | Keebai's, plus its request budget |
 * | `meta`   | the Cloud API, one request per message       | `META_PHONE_NUMBER_ID`       | `--rate`, default 70/s      |
 * | `memory` | an emulated provider in this process         | —                            | `--rate`, default 100/s     |
 *
 * `memory` needs no account: it answers like Meta and plays each message's lifecycle (sent, delivered, read, a
 * few replies and failures) in this process, which applies its statuses as webhooks would. Its broadcasts live only
 * as long as the process that sends them.
 */
import * as Broadcast from "@crier/core/Broadcast"
import * as Broadcaster from "@crier/core/Broadcaster"
import { BroadcastTransport } from "@crier/core/BroadcastTransport"
import * as MemoryTransport from "@crier/core/MemoryTransport"
import type * as ProgressStore from "@crier/core/ProgressStore"
import type * as TemplateSpec from "@crier/core/TemplateSpec"
import * as TransportError from "@crier/core/TransportError"
import * as KapsoBroadcasts from "@crier/kapso/KapsoBroadcasts"
import * as KeebaiBulk from "@crier/keebai/KeebaiBulk"
import * as MetaCloud from "@crier/meta/MetaCloud"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Duration, Effect, Layer, Option, Stream } from "effect"
import { UsageError } from "./CliFailure.ts"
import * as Settings from "./Settings.ts"
import * as Stores from "./Stores.ts"

export const names = ["kapso", "keebai", "meta", "memory"] as const
export type Name = (typeof names)[number]

export const isName = (name: string): name is Name => (names as ReadonlyArray<string>).includes(name)

/** The memory transport's pace when `--rate` is not given. */
export const memoryMessagesPerSecond = 100

/** Statuses of these transports come from this process alone: they end with it. */
export const statusesLiveInProcess = (name: string): boolean => name === "memory"

type Engine = Layer.Layer<Broadcaster.Broadcaster, never, ProgressStore.ProgressStore>

type Configured =
  | { readonly _tag: "kapso"; readonly settings: Settings.Kapso }
  | { readonly _tag: "keebai"; readonly settings: Settings.Keebai }
  | { readonly _tag: "meta"; readonly settings: Settings.Meta }
  | { readonly _tag: "memory" }

const configure = (name: Name): Effect.Effect<Configured, UsageError> => {
  switch (name) {
    case "kapso":
      return Effect.map(Settings.kapso, (settings) => ({ _tag: name, settings }))
    case "keebai":
      return Effect.map(Settings.keebai, (settings) => ({ _tag: name, settings }))
    case "meta":
      return Effect.map(Settings.meta, (settings) => ({ _tag: name, settings }))
    case "memory":
      return Effect.succeed({ _tag: name })
  }
}

const http = NodeHttpClient.layerUndici

// A Meta-like lifecycle, quick enough to watch: most messages delivered, many read, a few replies and failures.
const memoryLifecycle: MemoryTransport.Lifecycle = {
  path: { sent: Duration.millis(150), delivered: Duration.millis(350) },
  mix: [
    { share: 0.04, path: { failed: { after: Duration.millis(400), code: "131026", reason: "Message undeliverable" } } },
    {
      share: 0.06,
      path: {
        sent: Duration.millis(150),
        delivered: Duration.millis(350),
        read: Duration.millis(600),
        replied: Duration.millis(900)
      }
    },
    { share: 0.4, path: { sent: Duration.millis(150), delivered: Duration.millis(350), read: Duration.millis(600) } }
  ]
}

// The memory transport's "webhooks", applied as they come, in small batches.
const memoryWebhooks = Layer.effectDiscard(Effect.gen(function*() {
  const memory = yield* MemoryTransport.MemoryTransport
  const engine = yield* Broadcaster.Broadcaster
  yield* memory.webhookEvents.pipe(
    Stream.groupedWithin(500, Duration.millis(50)),
    Stream.runForEach((events) => engine.applyStatusEvents(events)),
    Effect.catchCause((cause) => Effect.logError("the memory transport's statuses stopped", cause)),
    Effect.forkScoped
  )
}))

const engineOf = (
  configured: Configured,
  template: TemplateSpec.TemplateSpec,
  messagesPerSecond: number | undefined
): Engine => {
  switch (configured._tag) {
    case "kapso": {
      const { apiKey, baseUrl, templateId, whatsappConfigId } = configured.settings
      return Broadcaster.Broadcaster.layer.pipe(
        Layer.provide(KapsoBroadcasts.layer({
          apiKey,
          baseUrl: Option.getOrUndefined(baseUrl),
          whatsappConfigId,
          templateIds: Option.match(templateId, {
            onNone: () => undefined,
            onSome: (id) => ({ [`${template.name}:${template.language}`]: id })
          })
        })),
        Layer.provide(http)
      )
    }
    case "keebai": {
      const { baseUrl, channelId, token } = configured.settings
      return Broadcaster.Broadcaster.layer.pipe(
        Layer.provide(KeebaiBulk.layer({ token, baseUrl: Option.getOrUndefined(baseUrl), channelId })),
        Layer.provide(http)
      )
    }
    case "meta": {
      const { accessToken, baseUrl, phoneNumberId } = configured.settings
      return Broadcaster.Broadcaster.layer.pipe(
        Layer.provide(MetaCloud.layer({
          credential: MetaCloud.accessToken(accessToken),
          baseUrl: Option.getOrUndefined(baseUrl),
          phoneNumberId,
          messagesPerSecond
        })),
        Layer.provide(http)
      )
    }
    case "memory":
      return memoryWebhooks.pipe(
        Layer.provideMerge(Broadcaster.Broadcaster.layer),
        Layer.provideMerge(MemoryTransport.layer({ name: "memory", profile: "meta", lifecycle: memoryLifecycle }))
      )
  }
}

const senderOf = (configured: Configured): string => {
  switch (configured._tag) {
    case "kapso":
      return configured.settings.whatsappConfigId
    case "keebai":
      return configured.settings.channelId
    case "meta":
      return configured.settings.phoneNumberId
    case "memory":
      return "memory"
  }
}

export interface PolicyInput {
  readonly rate: Option.Option<number>
  readonly inDoubt: Broadcast.InDoubtPolicy
}

/** A new broadcast on a transport: who sends it, how it is paced, and the engine that runs it. */
export interface Plan {
  readonly sender: string
  readonly policy: Broadcast.Policy
  /** Worth telling the person before sending, e.g. that `--rate` does not apply. */
  readonly notes: ReadonlyArray<string>
  readonly engine: Engine
}

const providerPaced = (name: string, how: string) => `--rate does not apply to ${name}: ${how}`

const policyOf = (
  name: Name,
  input: PolicyInput
): { readonly policy: Broadcast.Policy; readonly notes: ReadonlyArray<string> } => {
  const rate = Option.getOrUndefined(input.rate)
  switch (name) {
    case "kapso":
      return {
        policy: new Broadcast.Policy({ inDoubt: input.inDoubt }),
        notes: rate === undefined ? [] : [providerPaced(name, "Kapso paces its own broadcasts")]
      }
    case "keebai":
      return {
        policy: new Broadcast.Policy({ inDoubt: input.inDoubt }),
        notes: rate === undefined ? [] : [
          providerPaced(
            name,
            "Keebai paces its own sending; crier spends its request budget (60 a minute, 1,000 an hour)"
          )
        ]
      }
    case "meta":
      return {
        policy: new Broadcast.Policy({
          messagesPerSecond: rate ?? MetaCloud.defaultMessagesPerSecond,
          inDoubt: input.inDoubt
        }),
        notes: []
      }
    case "memory":
      return {
        policy: new Broadcast.Policy({ messagesPerSecond: rate ?? memoryMessagesPerSecond, inDoubt: input.inDoubt }),
        notes: []
      }
  }
}

/** For a new broadcast: the transport's settings (all of them checked now), its sender, policy and engine. */
export const plan = Effect.fn("Transports.plan")(
  function*(name: Name, template: TemplateSpec.TemplateSpec, input: PolicyInput) {
    const configured = yield* configure(name)
    const { notes, policy } = policyOf(name, input)
    return {
      sender: senderOf(configured),
      policy,
      notes,
      engine: engineOf(configured, template, policy.messagesPerSecond)
    } satisfies Plan
  }
)

/** For a stored broadcast: its own transport, configured from the environment, in an engine that sees it alone. */
export const engineFor = Effect.fn("Transports.engineFor")(function*(broadcast: Broadcast.Broadcast) {
  const name = broadcast.transport
  if (!isName(name)) {
    return yield* new UsageError({
      message: `broadcast ${broadcast.id} uses the transport ${name}, which the crier command cannot run (it runs ${
        names.join(", ")
      })`
    })
  }
  const configured = yield* configure(name)
  return engineOf(configured, broadcast.template, broadcast.policy.messagesPerSecond).pipe(
    Layer.provide(Stores.focus(broadcast.id))
  ) satisfies Engine
})

const cannotSend = (operation: string) =>
  Effect.fail(
    new TransportError.TransportError({
      provider: "crier",
      operation,
      reason: new TransportError.Unsupported({ message: "this command does not send" })
    })
  )

/**
 * An engine without a provider, for the commands that only read, pause or take webhooks: none of those reach the
 * transport, so they need no credentials.
 */
export const readOnly: Engine = Broadcaster.Broadcaster.layer.pipe(
  Layer.provide(Layer.succeed(
    BroadcastTransport,
    BroadcastTransport.of({
      name: "crier",
      capabilities: MemoryTransport.capabilities("meta"),
      unsupported: () => Option.none(),
      open: () => cannotSend("open"),
      submit: () => cannotSend("submit"),
      start: () => cannotSend("start"),
      poll: () => cannotSend("poll"),
      cancel: () => cannotSend("cancel")
    })
  ))
)
