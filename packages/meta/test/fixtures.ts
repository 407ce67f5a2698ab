/**
 * Shared pieces of the meta package's tests: the app's secrets, a template, an HTTP app served on 127.0.0.1, and a
 * recording stand-in for the engine.
 */
import * as Broadcaster from "@crier/core/Broadcaster"
import type * as StatusEvent from "@crier/core/StatusEvent"
import * as TemplateSpec from "@crier/core/TemplateSpec"
import { NodeHttpServer } from "@effect/platform-node"
import { Context, Effect, Layer, Option, PubSub, Redacted, Stream } from "effect"
import { HttpServer, type HttpServerRequest, type HttpServerResponse } from "effect/http"
import { createServer } from "node:http"

export const appSecret = Redacted.make("test-app-secret")
export const verifyToken = Redacted.make("test-verify-token")

export const template = new TemplateSpec.TemplateSpec({
  name: "crier_conformance",
  language: "en",
  body: { _tag: "positional", count: 1 },
  header: "none",
  buttons: [],
  bodyText: "Hello {{1}}"
})

/** Serves an HTTP app on an ephemeral 127.0.0.1 port for the scope; its URL. */
export const serve = (
  app: Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpServerRequest.HttpServerRequest>
) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(
      HttpServer.serve(app).pipe(
        Layer.provideMerge(NodeHttpServer.layer(() => createServer(), { port: 0, host: "127.0.0.1" }))
      )
    )
    return HttpServer.formatAddress(Context.get(context, HttpServer.HttpServer).address)
  })

/** Every status event and reply handed to the engine, from the first, then live. */
export class Recorded extends Context.Service<Recorded, {
  readonly events: Stream.Stream<StatusEvent.StatusEvent>
  readonly all: Effect.Effect<ReadonlyArray<StatusEvent.StatusEvent>>
  readonly replies: Effect.Effect<ReadonlyArray<Broadcaster.Reply>>
}>()("test/Recorded") {}

/** A stand-in engine that records `applyStatusEvents` and `recordReply`; the rest is never called. */
export const recordingBroadcaster = Effect.gen(function*() {
  const pubsub = yield* PubSub.unbounded<{ readonly index: number; readonly event: StatusEvent.StatusEvent }>()
  const log: Array<StatusEvent.StatusEvent> = []
  const replies: Array<Broadcaster.Reply> = []
  const unused = Effect.die("not used by the intake")
  const broadcaster = Broadcaster.Broadcaster.of({
    create: () => unused,
    addRecipients: (() => unused) as Broadcaster.Broadcaster["Service"]["addRecipients"],
    schedule: () => unused,
    start: () => unused,
    pause: () => unused,
    resume: () => unused,
    cancel: () => unused,
    get: () => unused,
    wait: () => unused,
    progress: () => Stream.die("not used by the intake"),
    recipients: () => unused,
    recover: () => unused,
    applyStatusEvents: (events) =>
      Effect.gen(function*() {
        for (const event of events) {
          log.push(event)
          yield* PubSub.publish(pubsub, { index: log.length - 1, event })
        }
        return { applied: events.length, unchanged: 0, unknown: 0 }
      }),
    recordReply: (reply) =>
      Effect.sync(() => {
        replies.push(reply)
        return Option.none()
      })
  })
  const events = Stream.unwrap(Effect.gen(function*() {
    const subscription = yield* PubSub.subscribe(pubsub)
    const seen = log.length
    return Stream.fromIterable(log.slice(0, seen)).pipe(
      Stream.concat(
        Stream.fromSubscription(subscription).pipe(
          Stream.filter((entry) => entry.index >= seen),
          Stream.map((entry) => entry.event)
        )
      )
    )
  }))
  const recorded = Recorded.of({
    events,
    all: Effect.sync(() => log.slice()),
    replies: Effect.sync(() => replies.slice())
  })
  return { broadcaster, recorded }
})
