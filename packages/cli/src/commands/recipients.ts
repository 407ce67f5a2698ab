/**
 * `crier recipients ID`: every recipient of a broadcast and where it stands, optionally of one status, page by
 * page from the store (any size).
 *
 * - default: a table for a person;
 * - `--format csv`: a file `crier send` can import again (`phone_number`, the template's parameter columns, the
 *   file's other columns), followed by the status columns — e.g. the failed ones, to send them again;
 * - `--format json` (or `--json`): one JSON object per line, the stored recipient with its `recipient_id`.
 */
import type * as Broadcast from "@crier/core/Broadcast"
import * as Broadcaster from "@crier/core/Broadcaster"
import * as Recipient from "@crier/core/Recipient"
import * as RecipientStatus from "@crier/core/RecipientStatus"
import type * as TemplateSpec from "@crier/core/TemplateSpec"
import { Console, DateTime, Effect, Option, Schema } from "effect"
import { Command, Flag } from "effect/cli"
import { explained } from "../CliFailure.ts"
import * as Stores from "../Stores.ts"
import * as Transports from "../Transports.ts"
import { broadcastId } from "./status.ts"

const pageSize = 1000

const encodeRecipient = Schema.encodeSync(Recipient.Recipient)

const statusColumns = [
  "seq",
  "status",
  "status_code",
  "status_reason",
  "provider_message_id",
  "attempts",
  "last_error",
  "updated_at",
  "accepted_at",
  "sent_at",
  "delivered_at",
  "read_at",
  "replied_at",
  "failed_at"
] as const

const iso = (at: DateTime.Utc | undefined) => at === undefined ? "" : DateTime.formatIso(at)

const codeOf = (status: RecipientStatus.RecipientStatus): string => status._tag === "failed" ? status.code ?? "" : ""

const reasonOf = (status: RecipientStatus.RecipientStatus): string =>
  status._tag === "failed" ? status.reason : status._tag === "skipped" ? status.reason : ""

const statusCells = (row: Recipient.Recipient): ReadonlyArray<string> => [
  String(row.seq),
  row.status._tag,
  codeOf(row.status),
  reasonOf(row.status),
  row.providerMessageId ?? "",
  String(row.attempts),
  row.lastError ?? "",
  iso(row.updatedAt),
  iso(row.acceptedAt),
  iso(row.sentAt),
  iso(row.deliveredAt),
  iso(row.readAt),
  iso(row.repliedAt),
  iso(row.failedAt)
]

type Column = readonly [name: string, read: (row: Recipient.Recipient) => string]

const bodyValue = (row: Recipient.Recipient, key: string | number): string => {
  const body = row.params.body
  return (Array.isArray(body) ? body[key as number] : (body as Readonly<Record<string, string>>)[key]) ?? ""
}

const media = (row: Recipient.Recipient) => row.params.header?._tag === "media" ? row.params.header : undefined

/** The template's columns, named as the importer reads them. */
const templateColumns = (spec: TemplateSpec.TemplateSpec): ReadonlyArray<Column> => {
  const body: ReadonlyArray<Column> = spec.body._tag === "named"
    ? spec.body.keys.map((key) => [key, (row) => bodyValue(row, key)])
    : Array.from({ length: spec.body.count }, (_, i): Column => [`param${i + 1}`, (row) => bodyValue(row, i)])
  const header: ReadonlyArray<Column> = spec.header === "none"
    ? []
    : spec.header === "text"
    ? [["header_text", (row) => row.params.header?._tag === "text" ? row.params.header.text : ""]]
    : [["header_url", (row) => media(row)?.link ?? ""], ["header_filename", (row) => media(row)?.filename ?? ""]]
  const buttons = spec.buttons.map((
    button,
    i
  ): Column => [`button_${button.index}`, (row) => row.params.buttons[i] ?? ""])
  return [...body, ...header, ...buttons]
}

// RFC 4180: quote a cell with a delimiter, a quote, a line break or surrounding spaces; double inner quotes.
const csvCell = (cell: string): string => /[",\r\n]|^\s|\s$/.test(cell) ? `"${cell.replaceAll("\"", "\"\"")}"` : cell

const csvLine = (cells: ReadonlyArray<string>) => cells.map(csvCell).join(",")

const detail = (row: Recipient.Recipient): string =>
  row.status._tag === "failed"
    ? [row.status.code, row.status.reason].filter((part) => part !== undefined).join(" ")
    : row.status._tag === "skipped"
    ? row.status.reason
    : row.status._tag === "pending" && row.lastError !== undefined
    ? `retrying: ${row.lastError}`
    : ""

type Format = "table" | "csv" | "json"

const jsonLine = (row: Recipient.Recipient) =>
  JSON.stringify({ recipient_id: Recipient.recipientId(row.broadcastId, row.seq), ...encodeRecipient(row) })

const tableLine = (cells: readonly [string, string, string, string]) =>
  `${cells[0].padStart(7)}  ${cells[1].padEnd(16)}  ${cells[2].padEnd(10)}  ${cells[3]}`.trimEnd()

/** Turns pages of rows into text; the first page also writes the header (and, for CSV, decides the columns). */
const writer = (broadcast: Broadcast.Broadcast, format: Format) => {
  const template = templateColumns(broadcast.template)
  let columns: ReadonlyArray<Column> | undefined
  return (rows: ReadonlyArray<Recipient.Recipient>): ReadonlyArray<string> => {
    const first = columns === undefined
    if (format === "json") return rows.map(jsonLine)
    if (format === "table") {
      columns = []
      const lines = rows.map((row) => tableLine([String(row.seq), row.address, row.status._tag, detail(row)]))
      return first ? [tableLine(["SEQ", "ADDRESS", "STATUS", "DETAIL"]), ...lines] : lines
    }
    if (columns === undefined) {
      const taken = new Set<string>(["phone_number", ...template.map(([name]) => name), ...statusColumns])
      // The file's other columns, as its rows carried them (one that clashes with ours is left out).
      const metadata = [...new Set(rows.flatMap((row) => Object.keys(row.metadata)))].filter((key) => !taken.has(key))
      columns = [
        ["phone_number", (row) => row.address],
        ...template,
        ...metadata.map((key): Column => [key, (row) => row.metadata[key] ?? ""])
      ]
    }
    const cells = columns
    const lines = rows.map((row) => csvLine([...cells.map(([, read]) => read(row)), ...statusCells(row)]))
    return first ? [csvLine([...cells.map(([name]) => name), ...statusColumns]), ...lines] : lines
  }
}

export const recipients = Command.make(
  "recipients",
  {
    id: broadcastId,
    status: Flag.Literals("status", RecipientStatus.tags).pipe(
      Flag.withDescription("Only the recipients in this status"),
      Flag.optional
    ),
    format: Flag.Literals("format", ["table", "csv", "json"]).pipe(
      Flag.withDescription("table for a person, csv to import again, json for one JSON object per line"),
      Flag.withDefault("table")
    ),
    json: Flag.Boolean("json").pipe(Flag.withDescription("Same as --format json"), Flag.withDefault(false)),
    store: Stores.flag
  },
  Effect.fn("crier.recipients")(function*(input) {
    const location = yield* Stores.existing(yield* Stores.locate(input.store))
    const format: Format = input.json ? "json" : input.format
    const run = Effect.gen(function*() {
      const engine = yield* Broadcaster.Broadcaster
      const write = writer(yield* engine.get(input.id), format)
      let afterSeq: number | undefined
      while (true) {
        const page = yield* engine.recipients(input.id, {
          status: Option.getOrUndefined(input.status),
          afterSeq,
          limit: pageSize
        })
        const lines = write(page.items)
        if (lines.length > 0) yield* Console.log(lines.join("\n"))
        if (Option.isNone(page.nextAfterSeq)) break
        afterSeq = page.nextAfterSeq.value
      }
    })
    yield* run.pipe(Effect.provide(Transports.readOnly), Effect.provide(Stores.layer(location)), explained)
  })
).pipe(
  Command.withDescription("List a broadcast's recipients and their statuses; export them as CSV or JSON"),
  Command.withExamples([{
    command: "crier recipients bc_01JZ8M3K2Q4R5S6T7V8W9X0Y1Z --status failed --format csv > failed.csv",
    description: "The failed recipients, as a file to send again"
  }])
)
