/**
 * The provider's journal, as the parent reads it between runs and at the end.
 */
import * as Recipient from "@crier/core/Recipient"
import { readFileSync, truncateSync } from "node:fs"
import * as Protocol from "./protocol.ts"

export interface Entry {
  readonly seq: number
  readonly run: number
  readonly messageId: string
  /** Line number, from 1. */
  readonly line: number
}

/**
 * A kill can land inside the child's `write` (the kernel may stop a write that crosses a page at a fatal signal):
 * then the journal ends in a partial line, a message the provider never finished accepting (its `fsync` did not
 * return). Cuts it off so the next run appends whole lines; returns whether it did.
 */
export const repair = (path: string): boolean => {
  const text = readFileSync(path, "utf8")
  if (text === "" || text.endsWith("\n")) return false
  truncateSync(path, Buffer.byteLength(text.slice(0, text.lastIndexOf("\n") + 1)))
  return true
}

/** Every line, checked against its broadcast and its own message id; a malformed line throws. */
export const read = (path: string, broadcastId: string): ReadonlyArray<Entry> => {
  const text = readFileSync(path, "utf8")
  if (text !== "" && !text.endsWith("\n")) throw new Error(`journal ${path} ends in a partial line`)
  return text.split("\n").slice(0, -1).map((text, index): Entry => {
    const [recipientId = "", messageId = "", ...rest] = text.split(" ")
    const ref = Recipient.parseRecipientId(recipientId)
    const id = Protocol.parseMessageId(messageId)
    if (
      rest.length > 0 || ref._tag === "None" || ref.value.broadcastId !== broadcastId || id === undefined ||
      id.seq !== ref.value.seq
    ) {
      throw new Error(`journal ${path}:${index + 1} is not a message of ${broadcastId}: ${JSON.stringify(text)}`)
    }
    return { seq: id.seq, run: id.run, messageId, line: index + 1 }
  })
}
