/**
 * The HTTP server that takes the providers' webhooks (`crier webhooks serve`, and `crier demo` beside its emulator):
 * it verifies their signatures and applies them to the store through the engine — statuses to their recipients,
 * replies to the latest broadcast their sender got:
 *
 * | route              | secret                                    | answers                                    |
 * |--------------------|-------------------------------------------|--------------------------------------------|
 * | `/webhooks/meta`   | `META_APP_SECRET` (+ `META_VERIFY_TOKEN`) | GET: the subscription check; POST: events  |
 * | `/webhooks/kapso`  | `KAPSO_WEBHOOK_SECRET`                    | POST                                       |
 * | `/webhooks/keebai` | `KEEBAI_WEBHOOK_SECRET`                   | POST                                       |
 *
 * A badly signed delivery is refused with 401 and changes nothing; a route whose secret is not set answers 404.
 */
import * as Broadcaster from "@crier/core/Broadcaster"
import * as KapsoWebhook from "@crier/kapso/KapsoWebhook"
import * as KeebaiWebhook from "@crier/keebai/KeebaiWebhook"
import * as MetaWebhook from "@crier/meta/MetaWebhook"
import { Effect, Layer, Option, Redacted } from "effect"
import { HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "effect/http"
import { randomUUID } from "node:crypto"
import { createServer } from "node:http"
import { UsageError } from "./CliFailure.ts"
import type * as Settings from "./Settings.ts"

type Route = Layer.Layer<never, never, HttpRouter.HttpRouter>

const kapsoRoute = (secret: Redacted.Redacted<string>, engine: Broadcaster.Broadcaster["Service"]): Route =>
  HttpRouter.add(
    "POST",
    "/webhooks/kapso",
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const body = yield* request.text
      const taken = yield* KapsoWebhook.intake({ secret, headers: request.headers, body })
      return HttpServerResponse.jsonUnsafe({ statuses: taken.applied, replies: taken.replies.length })
    }).pipe(
      Effect.provideService(Broadcaster.Broadcaster, engine),
      Effect.catch((error) =>
        error._tag === "KapsoWebhookError"
          ? Effect.succeed(
            HttpServerResponse.jsonUnsafe({ error: error.message }, {
              status: error.reason === "Malformed" ? 400 : 401
            })
          )
          : Effect.as(
            Effect.logWarning("Kapso webhook not applied; Kapso will retry it", error),
            HttpServerResponse.jsonUnsafe({ error: "not applied" }, { status: 500 })
          )
      )
    )
  )

export interface Address {
  /** 0: any free one. */
  readonly port: number
  readonly host: string
}

/** Serves the routes whose secrets are set, for the life of the scope; the URL it listens on. */
export const listen = Effect.fn("WebhookServer.listen")(function*(secrets: Settings.Webhooks, address: Address) {
  const engine = yield* Broadcaster.Broadcaster
  const routes: Array<Route> = []
  if (Option.isSome(secrets.meta)) {
    const intake = yield* MetaWebhook.make({
      appSecret: secrets.meta.value.appSecret,
      // Without a verify token no subscription check can succeed: an unguessable one refuses them all.
      verifyToken: Option.getOrElse(secrets.meta.value.verifyToken, () => Redacted.make(randomUUID()))
    })
    routes.push(HttpRouter.add("*", "/webhooks/meta", intake.httpEffect))
  }
  if (Option.isSome(secrets.kapso)) routes.push(kapsoRoute(secrets.kapso.value, engine))
  if (Option.isSome(secrets.keebai)) {
    const intake = yield* KeebaiWebhook.makeIntake({ secret: secrets.keebai.value })
    const apply = yield* KeebaiWebhook.toEngineBatched()
    routes.push(HttpRouter.add("POST", "/webhooks/keebai", KeebaiWebhook.handler(intake, apply)))
  }
  const app = yield* HttpRouter.toHttpEffect(
    routes.reduce((all: Route, route) => Layer.merge(all, route), Layer.empty)
  )
  // Loaded here: the HTTP server is a good part of the start-up time of the commands that do not serve.
  const NodeHttpServer = yield* Effect.promise(() => import("@effect/platform-node/NodeHttpServer"))
  const server = yield* NodeHttpServer.make(() => createServer(), { port: address.port, host: address.host }).pipe(
    Effect.mapError((error) =>
      new UsageError({ message: `cannot listen on ${address.host}:${address.port}: ${error.message}` })
    )
  )
  yield* server.serve(app)
  return HttpServer.formatAddress(server.address)
})
