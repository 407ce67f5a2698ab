/**
 * The byte side of the CSV importer: checks that the input is UTF-8 text (not a workbook, not a binary), finds the
 * delimiter on the header line, and drives csv-parse, numbering each record by the line it starts on.
 */
import { Parser } from "csv-parse"
import { isUtf8 } from "node:buffer"
import type * as CsvImport from "../CsvImport.ts"

/** Why the file cannot be read as CSV; the importer turns it into an `ImportError`. */
export interface Problem {
  readonly reason: CsvImport.ImportError["reason"]
  readonly message: string
  readonly line?: number | undefined
}

export interface Reader {
  /** Reads one chunk of the file, handing each record it completes to `onRecord`. */
  readonly write: (chunk: Uint8Array) => Problem | undefined
  /** Ends the input, handing over the last record. */
  readonly end: () => Problem | undefined
  /** The delimiter in use (the default until it is known). */
  readonly delimiter: () => CsvImport.Delimiter
  /** Bytes read after the byte order mark. */
  readonly bytes: () => number
}

/**
 * `onRecord` receives the record's raw fields (untrimmed) and the line it starts on. Line breaks inside quoted
 * fields count, so the lines after a multi-line record keep their numbers.
 */
export const make = (
  delimiter: CsvImport.Delimiter | "auto",
  onRecord: (fields: Array<string>, line: number) => void
): Reader => {
  let failed: Problem | undefined
  let head: Uint8Array | undefined = EMPTY
  let bytes = 0
  let newlines = 0
  let utf8Carry: Uint8Array = EMPTY
  const header = delimiter === "auto" ? makeHeaderScan() : undefined
  const pending: Array<Uint8Array> = []
  let chosen: CsvImport.Delimiter = delimiter === "auto" ? "," : delimiter
  let parser: ParserCore | undefined
  let nextLine = 1

  const push = (fields: Array<string>) => {
    const line = nextLine
    nextLine += 1 + lineBreaksIn(fields)
    onRecord(fields, line)
  }

  const parse = (buffer: Buffer | undefined, end: boolean): Problem | undefined => {
    const error = parser!.parse(buffer, end, push, noop)
    return error === undefined ? undefined : parseProblem(error, nextLine)
  }

  const startParser = (): Problem | undefined => {
    if (header !== undefined) chosen = header.delimiter()
    parser = makeParser(chosen)
    for (const chunk of pending.splice(0)) {
      const problem = parse(asBuffer(chunk), false)
      if (problem !== undefined) return problem
    }
    return undefined
  }

  const lineOf = (chunk: Uint8Array, offset: number): number => newlines + countNewlines(chunk, offset) + 1

  // The first byte that breaks UTF-8, if any, and its offset in `chunk`. A character cut by the end of the chunk is
  // checked once the next chunk completes it.
  const checkUtf8 = (chunk: Uint8Array): { readonly offset: number; readonly byte: number } | undefined => {
    let start = 0
    if (utf8Carry.length > 0) {
      const missing = sequenceLength(utf8Carry[0]!) - utf8Carry.length
      start = Math.min(missing, chunk.length)
      const joined = Buffer.concat([utf8Carry, chunk.subarray(0, start)])
      if (start < missing) {
        utf8Carry = joined
        return undefined
      }
      utf8Carry = EMPTY
      if (!isUtf8(joined)) return { offset: 0, byte: joined[invalidUtf8At(joined)]! }
    }
    const rest = chunk.subarray(start)
    const complete = completeUpTo(rest)
    if (!isUtf8(rest.subarray(0, complete))) {
      const offset = Math.min(start + invalidUtf8At(rest), chunk.length - 1)
      return { offset, byte: chunk[offset]! }
    }
    utf8Carry = complete === rest.length ? EMPTY : Uint8Array.from(rest.subarray(complete))
    return undefined
  }

  const accept = (chunk: Uint8Array): Problem | undefined => {
    if (chunk.length === 0) return undefined
    const nul = chunk.indexOf(0)
    if (nul !== -1) {
      const line = lineOf(chunk, nul)
      return {
        reason: "NotCsv",
        message:
          `line ${line} contains a NUL byte, so this is a binary file, not CSV text (if it is UTF-16 text, save it as UTF-8)`,
        line
      }
    }
    const invalid = checkUtf8(chunk)
    if (invalid !== undefined) {
      const line = lineOf(chunk, invalid.offset)
      return {
        reason: "NotUtf8",
        message: `the file is not UTF-8 text: line ${line} has the byte 0x${
          invalid.byte.toString(16).toUpperCase()
        }, so it was probably saved in a legacy encoding such as Windows-1252 or Latin-1; save it as "CSV UTF-8"`,
        line
      }
    }
    newlines += countNewlines(chunk, chunk.length)
    bytes += chunk.length
    if (parser !== undefined) return parse(asBuffer(chunk), false)
    pending.push(chunk)
    return header === undefined || header.scan(chunk) ? startParser() : undefined
  }

  // The first bytes tell a workbook or UTF-16 text from CSV, and carry the byte order mark.
  const sniff = (start: Uint8Array): Problem | undefined => {
    const signature = SIGNATURES.find(([bytes]) => bytes.every((byte, i) => start[i] === byte))
    if (signature !== undefined) return signature[1]
    return accept(startsWith(start, BOM) ? start.subarray(BOM.length) : start)
  }

  const fail = (problem: Problem | undefined): Problem | undefined => {
    failed ??= problem
    return problem
  }

  return {
    write: (chunk) => {
      if (failed !== undefined) return failed
      if (head === undefined) return fail(accept(chunk))
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk])
      if (head.length < SNIFF_LENGTH) return undefined
      const start = head
      head = undefined
      return fail(sniff(start))
    },
    end: () => {
      if (failed !== undefined) return failed
      if (head !== undefined) {
        const start = head
        head = undefined
        const problem = sniff(start)
        if (problem !== undefined) return fail(problem)
      }
      if (utf8Carry.length > 0) {
        return fail({
          reason: "NotUtf8",
          message: `the file is not UTF-8 text: it ends in the middle of a character (line ${newlines + 1})`,
          line: newlines + 1
        })
      }
      if (parser === undefined) {
        const problem = startParser()
        if (problem !== undefined) return fail(problem)
      }
      return fail(parse(undefined, true))
    },
    delimiter: () => chosen,
    bytes: () => bytes
  }
}

// ---------------------------------------------------------------------------------------------------------------
// csv-parse

// `Parser#api` is csv-parse's synchronous core (`transform()` in its lib/api, which its Node Transform, its web
// TransformStream and its sync API all wrap); the typings leave it out. Driving it directly parses each chunk in
// the same call, with no Node stream between two Effect stream stages and errors returned as values, so the
// delimiter can be chosen once the header line is in. csv-parse is pinned at 7.0.3 and every import test runs
// through this.
interface ParserCore {
  readonly parse: (
    buffer: Buffer | undefined,
    end: boolean,
    push: (record: Array<string>) => void,
    close: () => void
  ) => unknown
}

// Bounds memory when a quote is never closed: the rest of the file would otherwise become one field.
const maxRecordSize = 1_000_000

const makeParser = (delimiter: CsvImport.Delimiter): ParserCore =>
  (new Parser({
    delimiter,
    // Any line ending, mixed within one file; csv-parse would otherwise settle on the first one it sees.
    record_delimiter: ["\r\n", "\n", "\r"],
    relax_column_count: true,
    // A stray quote inside an unquoted value (`5'11" tall`) is kept as written.
    relax_quotes: true,
    bom: false,
    encoding: "utf8",
    max_record_size: maxRecordSize
  }) as unknown as { readonly api: ParserCore }).api

const parseProblem = (error: unknown, line: number): Problem => {
  const code = typeof error === "object" && error !== null && "code" in error ? error.code : undefined
  switch (code) {
    case "CSV_QUOTE_NOT_CLOSED":
      return {
        reason: "Malformed",
        message:
          `the quoted value that starts on line ${line} is never closed; a value that contains a double quote (") must be wrapped in double quotes, with the inner quote doubled ("")`,
        line
      }
    case "CSV_MAX_RECORD_SIZE":
      return {
        reason: "Malformed",
        message: `the row that starts on line ${line} runs past ${
          maxRecordSize.toLocaleString("en-US")
        } characters, so a quoted value in it is probably never closed (or this is not a CSV file)`,
        line
      }
    default:
      return {
        reason: "Malformed",
        message: `line ${line} cannot be read as CSV: ${error instanceof Error ? error.message : String(error)}`,
        line
      }
  }
}

const noop = () => {}

const asBuffer = (chunk: Uint8Array): Buffer =>
  Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)

const lineBreaksIn = (fields: ReadonlyArray<string>): number => {
  let count = 0
  for (let f = 0; f < fields.length; f++) {
    const field = fields[f]!
    if (field.indexOf("\n") === -1 && field.indexOf("\r") === -1) continue
    for (let i = 0; i < field.length; i++) {
      const unit = field.charCodeAt(i)
      if (unit === LF) count++
      else if (unit === CR) {
        count++
        if (field.charCodeAt(i + 1) === LF) i++
      }
    }
  }
  return count
}

// ---------------------------------------------------------------------------------------------------------------
// Bytes

const EMPTY = new Uint8Array(0)
const LF = 0x0a
const CR = 0x0d
const QUOTE = 0x22
const BOM = Uint8Array.of(0xef, 0xbb, 0xbf)
const SNIFF_LENGTH = 4

const utf16: Problem = {
  reason: "NotUtf8",
  message: "the file is UTF-16 text; save it as UTF-8 (\"CSV UTF-8\" in Excel)"
}

const SIGNATURES: ReadonlyArray<readonly [ReadonlyArray<number>, Problem]> = [
  [[0x50, 0x4b, 0x03, 0x04], {
    reason: "NotCsv",
    message:
      "the file is a zip archive, which looks like an Excel workbook (.xlsx), not CSV text; open it in Excel and export it as CSV (UTF-8)"
  }],
  [[0xd0, 0xcf, 0x11, 0xe0], {
    reason: "NotCsv",
    message:
      "the file looks like an Excel 97-2003 workbook (.xls), not CSV text; open it in Excel and export it as CSV (UTF-8)"
  }],
  [[0xff, 0xfe], utf16],
  [[0xfe, 0xff], utf16]
]

const startsWith = (bytes: Uint8Array, prefix: Uint8Array): boolean =>
  bytes.length >= prefix.length && prefix.every((byte, i) => bytes[i] === byte)

const countNewlines = (chunk: Uint8Array, end: number): number => {
  let count = 0
  for (let i = 0; i < end; i++) if (chunk[i] === LF) count++
  return count
}

// Where a character cut by the end of the bytes starts (their length when none is).
const completeUpTo = (bytes: Uint8Array): number => {
  const end = bytes.length
  for (let back = 1; back <= 3 && back <= end; back++) {
    const byte = bytes[end - back]!
    if (byte < 0x80) return end
    if (byte >= 0xc0) return sequenceLength(byte) > back ? end - back : end
  }
  return end
}

const sequenceLength = (lead: number): number => lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2

// The offset of the first byte that breaks UTF-8 (RFC 3629); only run once `isUtf8` has said there is one.
const invalidUtf8At = (bytes: Uint8Array): number => {
  let i = 0
  while (i < bytes.length) {
    const lead = bytes[i]!
    if (lead < 0x80) {
      i++
      continue
    }
    if (lead < 0xc2 || lead > 0xf4) return i
    const length = sequenceLength(lead)
    // The second byte's range excludes overlong forms, surrogates and code points above U+10FFFF.
    const low = lead === 0xe0 ? 0xa0 : lead === 0xf0 ? 0x90 : 0x80
    const high = lead === 0xed ? 0x9f : lead === 0xf4 ? 0x8f : 0xbf
    const second = bytes[i + 1]
    if (second === undefined || second < low || second > high) return i
    for (let k = 2; k < length; k++) {
      const next = bytes[i + k]
      if (next === undefined || next < 0x80 || next > 0xbf) return i
    }
    i += length
  }
  return i
}

// ---------------------------------------------------------------------------------------------------------------
// The header line decides the delimiter: the one of `,` `;` tab it holds most often outside quotes (comma on a
// tie or when it holds none, as a one-column file does). Blank lines before it are skipped.

const DELIMITERS: ReadonlyArray<CsvImport.Delimiter> = [",", ";", "\t"]
const DELIMITER_BYTES = DELIMITERS.map((d) => d.charCodeAt(0))
// A first line this long without a line break is read with what was seen; csv-parse bounds the record.
const maxHeaderScan = 1_000_000

const makeHeaderScan = () => {
  const counts = [0, 0, 0]
  let quoted = false
  let content = false
  let done = false
  let scanned = 0
  return {
    /** Scans the next chunk; true once the header line is complete. */
    scan: (chunk: Uint8Array): boolean => {
      for (let i = 0; i < chunk.length && !done; i++) {
        const byte = chunk[i]!
        if (byte === QUOTE) {
          quoted = !quoted
          content = true
        } else if (quoted) continue
        else if (byte === LF || byte === CR) {
          if (content) done = true
          else counts.fill(0)
        } else {
          const d = DELIMITER_BYTES.indexOf(byte)
          if (d !== -1) counts[d]!++
          else if (byte !== 0x20) content = true
        }
      }
      scanned += chunk.length
      return done || scanned > maxHeaderScan
    },
    delimiter: (): CsvImport.Delimiter => {
      let best = 0
      for (let d = 1; d < counts.length; d++) if (counts[d]! > counts[best]!) best = d
      return DELIMITERS[best]!
    }
  }
}
