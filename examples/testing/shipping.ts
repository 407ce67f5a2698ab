/**
 * Code of your own, to be tested: tell customers their order has shipped, and say what came of it.
 *
 * It asks for a `Broadcaster` and nothing else, so `shipping.test.ts` runs it over the in-memory store and
 * transport, on a virtual clock, and production runs it over `SqliteStore.layer()` and a provider's Layer.
 */
import * as Address from "@crier/core/Address"
import * as Broadcast from "@crier/core/Broadcast"
import * as Broadcaster from "@crier/core/Broadcaster"
import type * as BroadcastStatus from "@crier/core/BroadcastStatus"
import * as Recipient from "@crier/core/Recipient"
import * as TemplateParams from "@crier/core/TemplateParams"
import * as TemplateSpec from "@crier/core/TemplateSpec"
import { Effect, Result } from "effect"

export const template = Result.getOrThrow(
  TemplateSpec.fromText("Hi {{first_name}}, your order {{order_id}} has shipped.", {
    name: "order_shipped",
    language: "en"
  })
)

export interface Customer {
  readonly phone: string
  readonly firstName: string
  readonly orderId: string
}

export interface Shipped {
  readonly broadcastId: Broadcast.BroadcastId
  /** `completed` once every customer was handed over; `paused` when the provider stopped it, with the reason. */
  readonly status: BroadcastStatus.BroadcastStatus
  readonly reason: string | undefined
  readonly added: number
  /** Customers whose phone is not a number, and why. */
  readonly invalid: ReadonlyArray<{ readonly customer: Customer; readonly reason: string }>
  /** Customers listed twice (the same number, however written): they get one message. */
  readonly duplicates: number
}

/** Sends the update from `sender` (the provider's sending number or channel) and waits until it is handed over. */
export const notifyShipped = Effect.fn("notifyShipped")(
  function*(customers: ReadonlyArray<Customer>, sender: string) {
    const broadcaster = yield* Broadcaster.Broadcaster
    const broadcast = yield* broadcaster.create({
      name: "Order shipped",
      template,
      sender,
      policy: new Broadcast.Policy({ messagesPerSecond: 20, maxAttempts: 3 })
    })

    const invalid: Array<Shipped["invalid"][number]> = []
    const recipients: Array<Recipient.NewRecipient> = []
    for (const customer of customers) {
      const address = Address.parse(customer.phone, { defaultRegion: "US" })
      if (Result.isFailure(address)) {
        invalid.push({ customer, reason: address.failure.message })
        continue
      }
      recipients.push(
        new Recipient.NewRecipient({
          address: address.success,
          params: new TemplateParams.TemplateParams({
            body: { first_name: customer.firstName, order_id: customer.orderId },
            buttons: []
          }),
          metadata: { order_id: customer.orderId }
        })
      )
    }
    const report = yield* broadcaster.addRecipients(broadcast.id, recipients)

    yield* broadcaster.start(broadcast.id)
    const done = yield* broadcaster.wait(broadcast.id)
    return {
      broadcastId: broadcast.id,
      status: done.status,
      reason: done.statusReason,
      added: report.added,
      invalid,
      duplicates: report.duplicates
    } satisfies Shipped
  }
)
