/**
 * The Kapso emulator's webhooks: v2 payloads for a template send's steps and the reply to it, signed the way Kapso
 * signs (hex HMAC-SHA256 of the raw body in `X-Webhook-Signature`, the event in `X-Webhook-Event`).
 */
import { createHmac } from "node:crypto"
import type { Fate, Steps } from "./kapsoModel.ts"
import { failureMessage } from "./kapsoModel.ts"

export type Event =
  | "whatsapp.message.sent"
  | "whatsapp.message.delivered"
  | "whatsapp.message.read"
  | "whatsapp.message.failed"
  | "whatsapp.message.received"

export interface Send {
  readonly wamid: string
  readonly phone: string
  readonly phoneNumberId: string
  readonly conversationId: string
  readonly fate: Fate
}

const seconds = (millis: number) => String(Math.floor(millis / 1000))

/** The events of one send's steps, in time order, each with its payload. */
export const eventsOf = (
  send: Send,
  steps: Steps
): ReadonlyArray<{ readonly at: number; readonly event: Event; readonly payload: unknown }> => {
  const statuses: Array<Record<string, unknown>> = []
  const conversation = { id: send.conversationId, phone_number: `+${send.phone}`, phone_number_id: send.phoneNumberId }
  const outbound = (event: Event, status: string, at: number, errors?: ReadonlyArray<unknown>) => {
    statuses.push({
      id: send.wamid,
      status,
      timestamp: seconds(at),
      recipient_id: send.phone,
      ...(errors === undefined ? {} : { errors })
    })
    return {
      at,
      event,
      payload: {
        message: {
          id: send.wamid,
          timestamp: seconds(steps.turn),
          type: "template",
          to: send.phone,
          kapso: {
            direction: "outbound",
            status,
            processing_status: "processed",
            origin: "cloud_api",
            has_media: false,
            statuses: statuses.slice()
          }
        },
        conversation,
        phone_number_id: send.phoneNumberId,
        is_new_conversation: false
      }
    }
  }
  const fate = send.fate
  if (fate._tag === "failed") {
    const message = failureMessage(fate)
    return [
      outbound("whatsapp.message.failed", "failed", steps.failed!, [{
        code: Number(fate.code),
        title: message,
        message,
        error_data: { details: message }
      }])
    ]
  }
  const events = [outbound("whatsapp.message.sent", "sent", steps.sent!)]
  if (steps.delivered !== undefined) events.push(outbound("whatsapp.message.delivered", "delivered", steps.delivered))
  if (steps.read !== undefined) events.push(outbound("whatsapp.message.read", "read", steps.read))
  if (steps.responded === undefined) return events
  return [...events, {
    at: steps.responded,
    event: "whatsapp.message.received",
    payload: {
      message: {
        id: `${send.wamid}.reply`,
        timestamp: seconds(steps.responded),
        from: send.phone,
        type: "text",
        text: { body: "Thanks!" },
        context: { id: send.wamid },
        kapso: { direction: "inbound", status: "received", origin: "cloud_api", has_media: false, content: "Thanks!" }
      },
      conversation,
      phone_number_id: send.phoneNumberId,
      is_new_conversation: false
    }
  }]
}

export const sign = (secret: string, body: string): string => createHmac("sha256", secret).update(body).digest("hex")

/** The headers of one delivery. */
export const headersOf = (secret: string, event: Event, body: string, id: string): Record<string, string> => ({
  "content-type": "application/json",
  "x-webhook-event": event,
  "x-webhook-signature": sign(secret, body),
  "x-idempotency-key": id,
  "x-webhook-payload-version": "v2"
})
