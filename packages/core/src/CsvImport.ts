/**
 * Imports a CSV file of recipients: a `Stream` of row outcomes (accepted recipient, rejected row, duplicate, blank
 * line), each with the line it starts on, and a report folded from them. The file is read incrementally; memory
 * grows only with the set of accepted addresses kept for dedupe.
 *
 * The file must be UTF-8 (a byte order mark is dropped) with a header row. Columns, matched case-insensitively:
 * - `phone_number` (or `phone`, or `to`): a phone number or a BSUID, read by `Address.parse`;
 * - body parameters: `param1`..`paramN` (or `1`..`N`) for a positional template, the parameter names for a named one;
 * - `header_text` for a text header, `header_url` (and, for a document, `header_filename`) for a media header;
 * - `button_<index>` for each button that takes a value;
 * - any other column is kept as the recipient's metadata.
 *
 * Lines: the header row is line 1 (after any blank lines above it); a row is numbered by the line it starts on, and
 * line breaks inside quoted values count. A file's final line break ends its last line and does not start a blank
 * one; any other empty line, whitespace-only line or line of only delimiters is a `Blank` row. So every line of the
 * file below the header is either the start of exactly one row or a continuation of a quoted value.
 */
import { Array as Arr, Effect, FileSystem, type PlatformError, Result, Schema, Stream } from "effect"
import * as Address from "./Address.ts"
import * as Columns from "./internal/csvColumns.ts"
import * as Reader from "./internal/csvReader.ts"
import type * as TemplateParams from "./TemplateParams.ts"
import type * as TemplateSpec from "./TemplateSpec.ts"

export type Delimiter = "," | ";" | "\t"

export interface Options {
  readonly spec: TemplateSpec.TemplateSpec
  /** Region for numbers written without a country code, e.g. `US` (see `Address.parse`). */
  readonly defaultRegion?: string | undefined
  /** Default `auto`: the one of `,` `;` tab found most often on the header line, outside quotes. */
  readonly delimiter?: Delimiter | "auto" | undefined
}

export interface Recipient {
  readonly line: number
  readonly address: Address.Address
  readonly params: TemplateParams.TemplateParams
  /** The file's other columns, header name as written → trimmed value. */
  readonly metadata: Readonly<Record<string, string>>
}

export interface Accepted {
  readonly _tag: "Accepted"
  readonly recipient: Recipient
}

/** A row that cannot be sent: `column` is the one to fix first, `reason` names every problem of the row. */
export interface Rejected {
  readonly _tag: "Rejected"
  readonly line: number
  readonly column: string
  readonly reason: string
}

/** A row whose address was already accepted, on `firstLine`. */
export interface Duplicate {
  readonly _tag: "Duplicate"
  readonly line: number
  readonly firstLine: number
  readonly address: Address.Address
}

export interface Blank {
  readonly _tag: "Blank"
  readonly line: number
}

export type Row = Accepted | Rejected | Duplicate | Blank

export const Reason = Schema.Literals([
  "NotFound",
  "Unreadable",
  "NotUtf8",
  "NotCsv",
  "Malformed",
  "Empty",
  "MissingPhoneColumn",
  "DuplicateColumns",
  "MissingParameterColumns",
  "UnexpectedParameterColumns",
  "InvalidOptions"
])
export type Reason = typeof Reason.Type

/** The file cannot be imported at all. Row problems are `Rejected` rows instead. */
export class ImportError extends Schema.TaggedError<ImportError>()("ImportError", {
  reason: Reason,
  message: Schema.String,
  /** The line the problem is on, when it is on one. */
  line: Schema.optional(Schema.Int),
  /** The file, when read with `fromFile`. */
  path: Schema.optional(Schema.String)
}) {}

const DELIMITER_OPTIONS: ReadonlyArray<unknown> = ["auto", ",", ";", "\t"]

const checkOptions = (options: Options): ImportError | undefined => {
  if (options.defaultRegion !== undefined && !Address.isRegion(options.defaultRegion)) {
    return new ImportError({
      reason: "InvalidOptions",
      message:
        `the default region "${options.defaultRegion}" is not a region code; pass an upper-case ISO 3166 alpha-2 code such as US or BR`
    })
  }
  if (options.delimiter !== undefined && !DELIMITER_OPTIONS.includes(options.delimiter)) {
    return new ImportError({
      reason: "InvalidOptions",
      message: `the delimiter ${JSON.stringify(options.delimiter)} is not supported; use ",", ";", "\\t" or "auto"`
    })
  }
  return undefined
}

interface Importer {
  readonly write: (chunk: Uint8Array) => Result.Result<ReadonlyArray<Row>, ImportError>
  readonly end: () => Result.Result<ReadonlyArray<Row>, ImportError>
}

// The importer is synchronous: each chunk in, the rows it completes out. The stream around it only moves chunks.
const makeImporter = (options: Options): Result.Result<Importer, ImportError> => {
  const invalid = checkOptions(options)
  if (invalid !== undefined) return Result.fail(invalid)
  let rows: Array<Row> = []
  let toRow: ((fields: Array<string>, line: number) => Row) | undefined
  let headerProblem: Reader.Problem | undefined
  const blankAboveHeader: Array<number> = []

  const onHeader = (fields: ReadonlyArray<string>, line: number) => {
    if (fields.every((field) => field.trim() === "")) {
      blankAboveHeader.push(line)
      return
    }
    const columns = Columns.plan(fields, options.spec)
    if (Result.isFailure(columns)) {
      headerProblem = { ...columns.failure, line }
      return
    }
    toRow = Columns.makeRows({
      spec: options.spec,
      columns: columns.success,
      delimiter: reader.delimiter(),
      defaultRegion: options.defaultRegion
    })
    for (const blank of blankAboveHeader) rows.push({ _tag: "Blank", line: blank })
  }

  const reader = Reader.make(options.delimiter ?? "auto", (fields, line) => {
    if (toRow !== undefined) rows.push(toRow(fields, line))
    else if (headerProblem === undefined) onHeader(fields, line)
  })

  const take = (problem: Reader.Problem | undefined): Result.Result<ReadonlyArray<Row>, ImportError> => {
    const failure = problem ?? headerProblem
    if (failure !== undefined) return Result.fail(new ImportError(failure))
    const taken = rows
    rows = []
    return Result.succeed(taken)
  }

  return Result.succeed({
    write: (chunk) => take(reader.write(chunk)),
    end: () => {
      const problem = reader.end()
      if (problem === undefined && headerProblem === undefined && toRow === undefined) {
        return Result.fail(
          new ImportError({
            reason: "Empty",
            message: reader.bytes() === 0
              ? "the file is empty"
              : "the file has no header row: it holds only blank lines"
          })
        )
      }
      return take(problem)
    }
  })
}

// Chunks are cut into slices whose rows reach the consumer before the next slice is parsed. A whole 64 KiB chunk
// (~2,000 rows, megabytes of short-lived objects) keeps its rows alive across young-generation collections, which
// promotes them to the old generation: that took the 1M-row benchmark from ~245 MB to ~370 MB peak RSS.
const sliceSize = 4 * 1024

const slices = (chunks: Arr.NonEmptyReadonlyArray<Uint8Array>): Arr.NonEmptyReadonlyArray<Uint8Array> =>
  Arr.flatMap(chunks, (chunk) =>
    chunk.length <= sliceSize
      ? Arr.of(chunk)
      : Arr.makeBy(Math.ceil(chunk.length / sliceSize), (i) => chunk.subarray(i * sliceSize, (i + 1) * sliceSize)))

/**
 * Reads CSV bytes into rows, one chunk at a time: each chunk is parsed and validated before the next one is pulled.
 * Fails with an `ImportError` when the file cannot be imported at all (not UTF-8, not CSV, a bad header).
 */
export const rows = <E, R>(
  source: Stream.Stream<Uint8Array, E, R>,
  options: Options
): Stream.Stream<Row, ImportError | E, R> =>
  Stream.suspend(() => {
    const importer = makeImporter(options)
    if (Result.isFailure(importer)) return Stream.fail(importer.failure)
    const { end, write } = importer.success
    return source.pipe(
      Stream.mapArray(slices),
      Stream.mapEffect((chunk) => Effect.fromResult(write(chunk))),
      Stream.concat(Stream.fromEffect(Effect.suspend(() => Effect.fromResult(end())))),
      Stream.filter(Arr.isReadonlyArrayNonEmpty),
      Stream.flattenArray
    )
  })

const withPath = (path: string) => (error: ImportError): ImportError =>
  new ImportError({ reason: error.reason, message: `${path}: ${error.message}`, line: error.line, path })

const fileError = (path: string, method: string) => (error: PlatformError.PlatformError): ImportError => {
  const system = error.reason._tag === "BadArgument" ? undefined : error.reason._tag
  return withPath(path)(
    system === "NotFound"
      ? new ImportError({ reason: "NotFound", message: "there is no such file" })
      : system === "PermissionDenied"
      ? new ImportError({ reason: "Unreadable", message: "permission denied: the file cannot be read" })
      : new ImportError({ reason: "Unreadable", message: `the file cannot be read (${method}: ${error.message})` })
  )
}

/** Reads a CSV file into rows (see `rows`). Every error message starts with the path. */
export const fromFile = (path: string, options: Options): Stream.Stream<Row, ImportError, FileSystem.FileSystem> =>
  Stream.unwrap(Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const info = yield* Effect.mapError(fs.stat(path), fileError(path, "stat"))
    if (info.type === "Directory") {
      return yield* withPath(path)(
        new ImportError({ reason: "Unreadable", message: "this is a directory, not a file" })
      )
    }
    return rows(Stream.mapError(fs.stream(path), fileError(path, "read")), options).pipe(
      Stream.mapError((error) => error.path === undefined ? withPath(path)(error) : error)
    )
  }))

// ---------------------------------------------------------------------------------------------------------------
// Report

export interface RowError {
  readonly line: number
  readonly column: string
  readonly reason: string
}

export interface DuplicateRow {
  readonly line: number
  readonly firstLine: number
}

/** Counts of a whole import. `rows = accepted + rejected + duplicates + blank`. */
export interface Report {
  readonly file: string
  readonly rows: number
  readonly accepted: number
  readonly rejected: number
  readonly duplicates: number
  readonly blank: number
  readonly errors: ReadonlyArray<RowError>
  readonly duplicateRows: ReadonlyArray<DuplicateRow>
}

interface Tally {
  file: string
  rows: number
  accepted: number
  rejected: number
  duplicates: number
  blank: number
  errors: Array<RowError>
  duplicateRows: Array<DuplicateRow>
}

const count = (tally: Tally, row: Row): Tally => {
  tally.rows++
  switch (row._tag) {
    case "Accepted":
      tally.accepted++
      break
    case "Rejected":
      tally.rejected++
      tally.errors.push({ line: row.line, column: row.column, reason: row.reason })
      break
    case "Duplicate":
      tally.duplicates++
      tally.duplicateRows.push({ line: row.line, firstLine: row.firstLine })
      break
    case "Blank":
      tally.blank++
  }
  return tally
}

/** Folds rows into a report; `file` is the name to show. */
export const report: <E, R>(file: string, rows: Stream.Stream<Row, E, R>) => Effect.Effect<Report, E, R> = Effect.fn(
  "CsvImport.report"
)(function*<E, R>(file: string, rows: Stream.Stream<Row, E, R>) {
  const tally: Report = yield* Stream.runFold(
    rows,
    (): Tally => ({ file, rows: 0, accepted: 0, rejected: 0, duplicates: 0, blank: 0, errors: [], duplicateRows: [] }),
    count
  )
  return tally
})
