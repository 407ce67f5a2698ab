/**
 * Meta through Kapso's proxy: the same Cloud API transport and the same requests as `meta-direct.ts`, sent to
 * Kapso's mirror of the Graph API with a Kapso project API key (`X-API-Key`) instead of a Meta token. Only the
 * credential and the base URL differ; the program is in `meta-campaign.ts`.
 *
 * Here the transport points at the testkit's Meta emulator, which serves the proxy's paths too. In production, it
 * is configured from the environment (`KAPSO_API_KEY` and `META_PHONE_NUMBER_ID`; the base defaults to
 * `https://api.kapso.ai/meta/whatsapp/v24.0`, `META_BASE_URL` overrides it):
 *
 *   const transport = MetaCloud.layerConfig
 *
 *   node examples/meta-kapso-proxy.ts
 */
import * as MetaCloud from "@crier/meta/MetaCloud"
import { NodeRuntime } from "@effect/platform-node"
import { Redacted } from "effect"
import { phoneNumberId, send } from "./meta-campaign.ts"

send((meta) =>
  MetaCloud.layer({
    credential: MetaCloud.kapsoApiKey(Redacted.make(meta.kapsoApiKey)),
    baseUrl: meta.kapsoUrl,
    phoneNumberId
  })
).pipe(NodeRuntime.runMain)
