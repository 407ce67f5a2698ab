/**
 * Meta direct: the WhatsApp Cloud API through Meta's Graph API, with a system user access token
 * (`Authorization: Bearer`), one `POST /{phone_number_id}/marketing_messages` per recipient. The program is in
 * `meta-campaign.ts`; this file picks the transport.
 *
 * Here the transport points at the testkit's Meta emulator. In production, it is configured from the environment
 * (`META_ACCESS_TOKEN`, `META_PHONE_NUMBER_ID`, optionally `META_ENDPOINT=messages` for non-marketing templates and
 * `META_MESSAGES_PER_SECOND`):
 *
 *   const transport = MetaCloud.layerConfig
 *
 *   node examples/meta-direct.ts
 */
import * as MetaCloud from "@crier/meta/MetaCloud"
import { NodeRuntime } from "@effect/platform-node"
import { Redacted } from "effect"
import { phoneNumberId, send } from "./meta-campaign.ts"

send((meta) =>
  MetaCloud.layer({
    credential: MetaCloud.accessToken(Redacted.make(meta.accessToken)),
    baseUrl: meta.graphUrl,
    phoneNumberId
  })
).pipe(NodeRuntime.runMain)
