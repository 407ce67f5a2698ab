// Shared setup of the Kapso tests: a recording fake HttpClient, broadcasts, recipients, and emulator wiring.
import * as Address from "@crier/core/Address"
import * as Broadcast from "@crier/core/Broadcast"
import type { Outgoing } from "@crier/core/BroadcastTransport"
import * as Recipient from "@crier/core/Recipient"
import * as TemplateParams from "@crier/core/TemplateParams"
import * as TemplateSpec from "@crier/core/TemplateSpec"
import * as KapsoEmulator from "@crier/testkit/KapsoEmulator"
import { DateTime, Effect, Layer, Redacted } from "effect"
import { HttpClient, HttpClientError, type HttpClientRequest, HttpClientResponse } from "effect/http"

export const apiKey = Redacted.make("test-api-key-0123")

/** One request the fake client saw. */
export interface Seen {
  readonly method: string
  /** Path and query, e.g. `/api/v1/whatsapp_broadcasts/b1/recipients?page=1&per_page=100`. */
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  /** The JSON body, if any. */
  readonly body: unknown
}

export type Reply =
  | Response
  | { readonly _tag: "never" }
  | { readonly _tag: "network" }

export const reply = (status: number, body: unknown, headers: Record<string, string> = {}): Response =>
  new Response(typeof body === "string" ? body : JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers }
  })

/**
 * A fake `HttpClient` that records every request and answers with `answer` (called in order; the last answer
 * repeats). `{ _tag: "never" }` never answers; `{ _tag: "network" }` fails as a refused connection would.
 */
export const fakeClient = (answer: (seen: Seen, index: number) => Reply) => {
  const seen: Array<Seen> = []
  const client = HttpClient.make((request: HttpClientRequest.HttpClientRequest, url: URL) => {
    const body = request.body._tag === "Uint8Array" && request.body.text !== undefined
      ? JSON.parse(request.body.text) as unknown
      : undefined
    const entry: Seen = { method: request.method, url: `${url.pathname}${url.search}`, headers: request.headers, body }
    seen.push(entry)
    const answered = answer(entry, seen.length - 1)
    if (answered instanceof Response) return Effect.succeed(HttpClientResponse.fromWeb(request, answered))
    if (answered._tag === "never") return Effect.never
    return Effect.fail(
      new HttpClientError.HttpClientError({
        reason: new HttpClientError.TransportError({ request, description: "connect ECONNREFUSED 127.0.0.1:9" })
      })
    )
  })
  return { layer: Layer.succeed(HttpClient.HttpClient, client), seen }
}

/** Answers in sequence: the i-th request gets `replies[i]`, later ones the last. */
export const sequence = (...replies: ReadonlyArray<() => Reply>) => (_: Seen, index: number): Reply =>
  replies[Math.min(index, replies.length - 1)]!()

export const baseUrl = "https://kapso.test/api/v1"

export const template = new TemplateSpec.TemplateSpec({
  name: "spring_sale",
  language: "en",
  body: { _tag: "positional", count: 1 },
  header: "none",
  buttons: [],
  bodyText: "Hi {{1}}, our spring sale starts today"
})

export const namedTemplate = new TemplateSpec.TemplateSpec({
  name: "spring_named",
  language: "en",
  body: { _tag: "named", keys: ["first_name"] },
  header: "image",
  buttons: []
})

export const phone = (n: number): Address.PhoneNumber => Address.PhoneNumber.make(`+55119${70_000_000 + n}`)

export const params = (n: number) => new TemplateParams.TemplateParams({ body: [`Ada ${n}`], buttons: [] })

export const makeBroadcast = (options: {
  readonly template?: TemplateSpec.TemplateSpec
  readonly sender?: string
  readonly remoteId?: string
  readonly transport?: string
} = {}) =>
  Effect.gen(function*() {
    return new Broadcast.Broadcast({
      id: yield* Broadcast.makeId,
      name: "spring sale",
      transport: options.transport ?? "kapso",
      sender: options.sender ?? "config-1",
      template: options.template ?? template,
      policy: new Broadcast.Policy({}),
      status: "sending",
      createdAt: yield* DateTime.now,
      ...(options.remoteId === undefined ? {} : { remoteId: options.remoteId })
    })
  })

export const item = (broadcast: Broadcast.Broadcast, seq: number, address: Address.Address = phone(seq)): Outgoing => ({
  recipientId: Recipient.recipientId(broadcast.id, seq),
  seq,
  address,
  params: params(seq)
})

export const items = (broadcast: Broadcast.Broadcast, count: number): readonly [Outgoing, ...Array<Outgoing>] => {
  const list = Array.from({ length: count }, (_, i) => item(broadcast, i + 1))
  return [list[0]!, ...list.slice(1)]
}

// ---------------------------------------------------------------------------------------------------------------
// The emulator

export const configId = "config-1"

export const emulatorTemplates: ReadonlyArray<KapsoEmulator.TemplateInput> = [
  { name: "spring_sale", language: "en", body: { _tag: "positional", count: 1 } },
  { name: "spring_named", language: "en", body: { _tag: "named", keys: ["first_name"] }, header: "image" },
  // The conformance suite's template and sender.
  { name: "crier_conformance", language: "en", body: { _tag: "positional", count: 1 } }
]

export const emulatorOptions = (options: KapsoEmulator.Options = {}): KapsoEmulator.Options => ({
  configs: [{ id: configId }, { id: "conformance-sender" }, { id: "sandbox", production: false }],
  templates: emulatorTemplates,
  timing: { batchSize: 1000, interval: "50 millis", delivered: "50 millis", read: "50 millis", responded: "50 millis" },
  ...options
})

/** The transport options for an emulator. */
export const against = (emulator: KapsoEmulator.KapsoEmulator["Service"]) => ({
  apiKey: Redacted.make(emulator.apiKey),
  baseUrl: emulator.url
})
