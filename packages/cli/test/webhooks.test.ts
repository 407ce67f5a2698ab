// `crier webhooks serve` as a provider meets it: the emulators deliver their signed status webhooks to the server
// while `crier send` sends, and the statuses land in the store; a badly signed delivery changes nothing.
import * as KapsoWebhook from "@crier/kapso/KapsoWebhook"
import { KeebaiEmulator, MetaEmulator } from "@crier/testkit"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import {
  crier,
  csv,
  type Env,
  eventually,
  fastMeta,
  json,
  start,
  statusOf,
  template,
  templateFlags,
  type Workspace,
  workspace
} from "./fixtures.ts"

/** Starts the server; resolves with its URL once it listens, and everything it printed about its routes. */
const serve = (ws: Workspace, env: Env) =>
  Effect.gen(function*() {
    const server = yield* start(["webhooks", "serve", "--port", "0"], { env, cwd: ws.dir })
    const { stdout } = yield* eventually(Effect.sync(server.output), (output) => /store: /.test(output.stdout))
    const url = /listening on (http:\/\/\S+)/.exec(stdout)![1]!
    return { url, stdout, server }
  })

const post = (url: string, body: string, headers: Record<string, string>) =>
  Effect.promise(() =>
    fetch(url, { method: "POST", body, headers: { "content-type": "application/json", ...headers } })
  )

describe.concurrent("crier webhooks serve", () => {
  it.live(
    "applies signed Meta and Keebai webhooks to the store; refuses a bad signature (401) and changes nothing",
    () =>
      Effect.gen(function*() {
        const ws = workspace()
        const appSecret = "meta-app-secret-for-tests"
        const keebaiSecret = "whsec_keebai_for_tests"
        const { stdout, url } = yield* serve(
          ws,
          ws.env({ META_APP_SECRET: appSecret, META_VERIFY_TOKEN: "verify-me", KEEBAI_WEBHOOK_SECRET: keebaiSecret })
        )
        assert.match(stdout, /\/webhooks\/meta\s+live/)
        assert.match(stdout, /\/webhooks\/keebai\s+live/)
        assert.match(stdout, /\/webhooks\/kapso\s+off: set KAPSO_WEBHOOK_SECRET/)
        assert.notInclude(stdout, appSecret)

        const meta = yield* MetaEmulator.make({
          templates: [{ spec: template }],
          timing: fastMeta,
          outcomes: { default: MetaEmulator.read },
          webhook: { url: `${url}/webhooks/meta`, appSecret }
        })
        const keebai = yield* KeebaiEmulator.make({
          budgets: [],
          timing: { startAfter: 0, messagesPerSecond: 10_000, deliveredAfter: 10, readAfter: 10 },
          outcomes: { read: 1 },
          webhook: { url: `${url}/webhooks/keebai`, secret: keebaiSecret }
        })
        const env = ws.env({
          META_ACCESS_TOKEN: meta.accessToken,
          META_BASE_URL: meta.graphUrl,
          META_PHONE_NUMBER_ID: MetaEmulator.defaultPhoneNumberId,
          KEEBAI_TOKEN: KeebaiEmulator.defaultToken,
          KEEBAI_BASE_URL: keebai.url,
          KEEBAI_CHANNEL_ID: "chan-1"
        })
        const file = ws.file("r.csv", csv(6))
        const [viaMeta, viaKeebai] = yield* Effect.all([
          crier(["send", "--transport", "meta", "--csv", file, ...templateFlags, "--json"], { env, cwd: ws.dir }),
          crier(["send", "--transport", "keebai", "--csv", file, ...templateFlags, "--json"], { env, cwd: ws.dir })
        ], { concurrency: "unbounded" })
        assert.strictEqual(viaMeta.status, 0, viaMeta.stderr)
        assert.strictEqual(viaKeebai.status, 0, viaKeebai.stderr)
        const metaId = json(viaMeta).id
        const keebaiId = json(viaKeebai).id
        // Every webhook delivered (each answered once its statuses were written): the store has them all.
        yield* Effect.all([meta.idle, keebai.idle], { concurrency: "unbounded" })
        for (const id of [metaId, keebaiId]) {
          const summary = yield* statusOf(ws, id)
          assert.strictEqual(summary.read, 6)
          assert.strictEqual(summary.read_rate, 1)
          assert.strictEqual(summary.delivery_rate, 1)
        }

        // A delivery that would fail a read message, signed with the wrong secret: refused, nothing changes.
        const forged = JSON.stringify({
          object: "whatsapp_business_account",
          entry: [{
            id: "1",
            changes: [{
              field: "messages",
              value: {
                messaging_product: "whatsapp",
                metadata: { display_phone_number: "15550001", phone_number_id: MetaEmulator.defaultPhoneNumberId },
                statuses: [{
                  id: "wamid.forged",
                  status: "failed",
                  timestamp: "1700000000",
                  recipient_id: "14155551000",
                  biz_opaque_callback_data: `${metaId}:1`,
                  errors: [{ code: 131026, title: "Message undeliverable" }]
                }]
              }
            }]
          }]
        })
        const refused = yield* post(`${url}/webhooks/meta`, forged, {
          "x-hub-signature-256": `sha256=${"0".repeat(64)}`
        })
        assert.strictEqual(refused.status, 401)
        const unsigned = yield* post(`${url}/webhooks/keebai`, "{}", {})
        assert.strictEqual(unsigned.status, 401)
        const after = yield* statusOf(ws, metaId)
        assert.strictEqual(after.read, 6)
        assert.strictEqual(after.failed, 0)

        const challenge = yield* Effect.promise(() =>
          fetch(`${url}/webhooks/meta?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=4242`)
        )
        assert.strictEqual(challenge.status, 200)
        assert.strictEqual(yield* Effect.promise(() => challenge.text()), "4242")
        const wrongToken = yield* Effect.promise(() =>
          fetch(`${url}/webhooks/meta?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=4242`)
        )
        assert.strictEqual(wrongToken.status, 403)
        const kapso = yield* post(`${url}/webhooks/kapso`, "{}", {})
        assert.strictEqual(kapso.status, 404)
      }),
    60_000
  )

  it.live("verifies Kapso's signature; answers 404 where no secret is set", () =>
    Effect.gen(function*() {
      const ws = workspace()
      const secret = "kapso-webhook-secret-for-tests"
      const { stdout, url } = yield* serve(ws, ws.env({ KAPSO_WEBHOOK_SECRET: secret }))
      assert.match(stdout, /\/webhooks\/meta\s+off: set META_APP_SECRET/)
      const body = JSON.stringify({
        event: "whatsapp.message.delivered",
        data: { message: { id: "wamid.unknown", timestamp: "1700000000" } }
      })
      const signed = yield* post(`${url}/webhooks/kapso`, body, {
        "x-webhook-signature": KapsoWebhook.sign(Redacted.make(secret), body),
        "x-webhook-event": "whatsapp.message.delivered"
      })
      assert.strictEqual(signed.status, 200, yield* Effect.promise(() => signed.text()))
      const forged = yield* post(`${url}/webhooks/kapso`, body, { "x-webhook-signature": "0".repeat(64) })
      assert.strictEqual(forged.status, 401)
      const meta = yield* post(`${url}/webhooks/meta`, body, {})
      assert.strictEqual(meta.status, 404)
    }), 60_000)

  it.live("exits 2 when no webhook secret is set", () =>
    Effect.gen(function*() {
      const ws = workspace()
      const run = yield* crier(["webhooks", "serve", "--port", "0"], { env: ws.env(), cwd: ws.dir })
      assert.strictEqual(run.status, 2)
      assert.include(run.stderr, "no webhook secret is set: export META_APP_SECRET=…")
    }), 60_000)
})
