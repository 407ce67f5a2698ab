import * as CsvImport from "@crier/core/CsvImport"
import * as TemplateSpec from "@crier/core/TemplateSpec"
import { NodeFileSystem } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Result, Schema, Stream } from "effect"
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const fixture = (name: string) => join(import.meta.dirname, "fixtures", "csv", name)

const spec = Result.getOrThrow(
  TemplateSpec.fromText("Hi {{first_name}}, your order {{order_id}} ships today.", {
    name: "order_update",
    language: "en"
  })
)
const positional = Result.getOrThrow(
  TemplateSpec.fromText("Hi {{1}}, your order {{2}} ships today.", { name: "order_update", language: "en" })
)
const withMedia = Result.getOrThrow(
  TemplateSpec.fromText("Hi {{1}}, here is your invoice.", {
    name: "invoice",
    language: "en",
    header: "document",
    buttons: [{ index: 0, kind: "url" }]
  })
)
const withTextHeader = Result.getOrThrow(
  TemplateSpec.fromText("Hi {{1}}.", { name: "hello", language: "en", header: "text" })
)

const encoder = new TextEncoder()

const chunks = (bytes: Uint8Array, size: number): Array<Uint8Array> =>
  Array.from({ length: Math.ceil(bytes.length / size) }, (_, i) => bytes.subarray(i * size, (i + 1) * size))

/** Imports CSV text (or bytes), fed in chunks of `chunkSize` bytes. */
const read = (
  text: string | Uint8Array,
  options: Partial<CsvImport.Options> = {},
  chunkSize = 64 * 1024
): Effect.Effect<Array<CsvImport.Row>, CsvImport.ImportError> => {
  const bytes = typeof text === "string" ? encoder.encode(text) : text
  return Stream.runCollect(CsvImport.rows(Stream.fromIterable(chunks(bytes, chunkSize)), { spec, ...options }))
}

const readFile = (
  name: string,
  options: Partial<CsvImport.Options> = {}
): Effect.Effect<Array<CsvImport.Row>, CsvImport.ImportError> =>
  Stream.runCollect(CsvImport.fromFile(fixture(name), { spec, ...options })).pipe(
    Effect.provide(NodeFileSystem.layer)
  )

const lineOf = (row: CsvImport.Row): number => row._tag === "Accepted" ? row.recipient.line : row.line

/** Each row as "<line> <outcome>", the shape most tests compare. */
const outcomes = (rows: ReadonlyArray<CsvImport.Row>): Array<string> => rows.map((row) => `${lineOf(row)} ${row._tag}`)

const recipients = (rows: ReadonlyArray<CsvImport.Row>): Array<CsvImport.Recipient> =>
  rows.flatMap((row) => row._tag === "Accepted" ? [row.recipient] : [])

const rejections = (rows: ReadonlyArray<CsvImport.Row>): Array<CsvImport.Rejected> =>
  rows.flatMap((row) => row._tag === "Rejected" ? [row] : [])

const rejection = (rows: ReadonlyArray<CsvImport.Row>, line: number): CsvImport.Rejected => {
  const found = rejections(rows).find((row) => row.line === line)
  if (found === undefined) return assert.fail(`line ${line} was not rejected: ${outcomes(rows).join(", ")}`)
  return found
}

const header = "phone_number,first_name,order_id"

describe("CsvImport: encodings and line endings", () => {
  it.effect("drops a UTF-8 byte order mark without renaming the first column", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual([...readFileSync(fixture("bom.csv")).subarray(0, 3)], [0xef, 0xbb, 0xbf])
      const rows = yield* readFile("bom.csv")
      assert.deepStrictEqual(outcomes(rows), ["2 Accepted"])
      const [recipient] = recipients(rows)
      assert.strictEqual(recipient!.address, "+14155550123")
      assert.deepStrictEqual(recipient!.metadata, { city: "Lisbon" })
    }))

  it.effect("reads CRLF files without a trailing \\r in any value", () =>
    Effect.gen(function*() {
      assert.include(readFileSync(fixture("crlf.csv"), "latin1"), "\r\n")
      const rows = yield* readFile("crlf.csv")
      assert.deepStrictEqual(outcomes(rows), ["2 Accepted", "3 Accepted"])
      assert.deepStrictEqual(recipients(rows).map((r) => r.metadata["city"]), ["Lisbon", "Porto"])
      assert.deepStrictEqual(recipients(rows)[1]!.params.body, { first_name: "Bruno", order_id: "A-2" })
    }))

  it.effect("reads \\r\\n, \\n and \\r mixed in one file, split anywhere", () =>
    Effect.gen(function*() {
      const bytes = readFileSync(fixture("mixed-endings.csv"))
      for (const size of [1, 2, 3, 7, 64 * 1024]) {
        const rows = yield* read(bytes, {}, size)
        assert.deepStrictEqual(outcomes(rows), ["2 Accepted", "3 Accepted", "4 Accepted", "5 Accepted"], `${size}`)
        assert.deepStrictEqual(recipients(rows).map((r) => r.metadata["city"]), ["Lisbon", "Porto", "Faro", "Braga"])
      }
    }))

  it.effect("keeps emoji and Arabic, Japanese and Devanagari text byte for byte, even fed one byte at a time", () =>
    Effect.gen(function*() {
      const bytes = readFileSync(fixture("unicode.csv"))
      const expected = [
        ["فاطمة الزهراء", "طلب-١"],
        ["さくら 🌸", "注文-2"],
        ["प्रिया", "आदेश-3"],
        ["👩‍👩‍👧‍👦 🇧🇷", "Zoe\u0301-4"]
      ]
      for (const size of [1, 2, 3, 5, 64 * 1024]) {
        const values = recipients(yield* read(bytes, {}, size)).map((r) => {
          const body = r.params.body as Readonly<Record<string, string>>
          return [body["first_name"]!, body["order_id"]!]
        })
        assert.deepStrictEqual(values, expected, `chunks of ${size}`)
        assert.deepStrictEqual(
          values.map((pair) => Buffer.from(pair.join("|"))),
          expected.map((pair) => Buffer.from(pair.join("|")))
        )
      }
      // Every value is found in the file's own bytes.
      for (const [name] of expected) assert.isTrue(bytes.includes(Buffer.from(name!)))
    }))

  it.effect("rejects a Latin-1 file with the line of the first byte that is not UTF-8", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(readFile("latin1.csv"))
      assert.strictEqual(error.reason, "NotUtf8")
      assert.strictEqual(error.line, 3)
      assert.include(error.message, "line 3 has the byte 0xE9")
      assert.include(error.message, "CSV UTF-8")
      assert.strictEqual(error.path, fixture("latin1.csv"))
      // The same bytes cut right after the bad byte, and right before it.
      const bytes = readFileSync(fixture("latin1.csv"))
      const at = bytes.indexOf(0xe9)
      for (const cut of [at, at + 1]) {
        const split = Stream.fromIterable([bytes.subarray(0, cut), bytes.subarray(cut)])
        const failure = yield* Effect.flip(Stream.runCollect(CsvImport.rows(split, { spec })))
        assert.strictEqual(failure.reason, "NotUtf8")
        assert.strictEqual(failure.line, 3)
        assert.include(failure.message, "0xE9")
      }
    }))

  it.effect("rejects a file cut in the middle of a character", () =>
    Effect.gen(function*() {
      const bytes = encoder.encode(`${header}\n+14155550123,さくら,A-1\n+14155550124,さ`)
      const error = yield* Effect.flip(read(bytes.subarray(0, bytes.length - 1), {}, 1))
      assert.strictEqual(error.reason, "NotUtf8")
      assert.include(error.message, "middle of a character")
    }))

  it.effect("rejects UTF-16 text", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(readFile("utf16.csv"))
      assert.strictEqual(error.reason, "NotUtf8")
      assert.include(error.message, "UTF-16")
    }))
})

describe("CsvImport: delimiters and quoting", () => {
  it.effect("detects ; from the header line and keeps commas inside values", () =>
    Effect.gen(function*() {
      const rows = yield* readFile("semicolon.csv")
      assert.deepStrictEqual(outcomes(rows), ["2 Accepted", "3 Accepted"])
      assert.deepStrictEqual(recipients(rows).map((r) => r.metadata["note"]), ["1,5 kg, fragile", "plain, with commas"])
    }))

  it.effect("detects tabs, and takes the delimiter from options", () =>
    Effect.gen(function*() {
      const detected = yield* readFile("tab.tsv")
      const given = yield* readFile("tab.tsv", { delimiter: "\t" })
      assert.deepStrictEqual(given, detected)
      assert.deepStrictEqual(recipients(detected).map((r) => r.metadata["note"]), [
        "commas, and; semicolons",
        "quoted\ttab"
      ])
      // Told the wrong delimiter, the header is one column with no phone column in it.
      const error = yield* Effect.flip(readFile("semicolon.csv", { delimiter: "," }))
      assert.strictEqual(error.reason, "MissingPhoneColumn")
    }))

  it.effect("counts only delimiters outside quotes on the header line", () =>
    Effect.gen(function*() {
      const rows = yield* read(`phone_number;first_name;order_id;"a,b,c,d,e"\n+14155550123;Ana;A-1;x\n`)
      assert.deepStrictEqual(recipients(rows)[0]!.metadata, { "a,b,c,d,e": "x" })
    }))

  it.effect("reads quoted commas, doubled quotes and line breaks, numbering rows by the line they start on", () =>
    Effect.gen(function*() {
      for (const size of [1, 4, 64 * 1024]) {
        const rows = yield* read(readFileSync(fixture("quoted.csv")), {}, size)
        assert.deepStrictEqual(outcomes(rows), ["2 Accepted", "3 Accepted", "5 Accepted", "8 Accepted"])
        const [first, second, third, fourth] = recipients(rows)
        assert.deepStrictEqual(first!.params.body, { first_name: "Ana, Maria", order_id: "A-\"1\"" })
        assert.strictEqual(second!.metadata["note"], "two\nlines")
        assert.strictEqual(third!.metadata["note"], "three\r\nlines\r\nhere")
        assert.strictEqual(fourth!.metadata["note"], "after")
      }
    }))

  it.effect("reports a quote that is never closed as a file error at the line it opens", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(read(`${header}\n+14155550123,Ana,A-1\n+14155550124,"Bruno,A-2\n+1415,x,y\n`))
      assert.strictEqual(error.reason, "Malformed")
      assert.strictEqual(error.line, 3)
      assert.include(error.message, "never closed")
    }))

  it.effect("stops at a quote left open in a large file instead of reading the rest into one value", () =>
    Effect.gen(function*() {
      const rest = "+14155550125,Chloé,A-3\n".repeat(60_000)
      const error = yield* Effect.flip(read(`${header}\n+14155550124,"Bruno,A-2\n${rest}`))
      assert.strictEqual(error.reason, "Malformed")
      assert.strictEqual(error.line, 2)
      assert.include(error.message, "runs past 1,000,000 characters")
    }))

  it.effect("keeps a stray quote inside an unquoted value", () =>
    Effect.gen(function*() {
      const rows = yield* read(`${header},note\n+14155550123,Ana,A-1,5'11" tall\n`)
      assert.strictEqual(recipients(rows)[0]!.metadata["note"], "5'11\" tall")
    }))
})

describe("CsvImport: blank lines", () => {
  it.effect("counts empty, whitespace-only and delimiter-only lines as blank, but not the final line break", () =>
    Effect.gen(function*() {
      const rows = yield* readFile("blank-lines.csv")
      assert.deepStrictEqual(outcomes(rows), [
        "2 Accepted",
        "3 Blank",
        "4 Blank",
        "5 Blank",
        "6 Accepted",
        "7 Blank"
      ])
    }))

  it.effect("skips blank lines above the header, counting them as blank rows", () =>
    Effect.gen(function*() {
      const rows = yield* read(`\n  \n${header}\n+14155550123,Ana,A-1`)
      assert.deepStrictEqual(outcomes(rows), ["1 Blank", "2 Blank", "4 Accepted"])
    }))

  it.effect("fails an empty file, and a file of only blank lines", () =>
    Effect.gen(function*() {
      const empty = yield* Effect.flip(readFile("empty.csv"))
      assert.strictEqual(empty.reason, "Empty")
      assert.include(empty.message, "is empty")
      const bomOnly = yield* Effect.flip(read(Uint8Array.of(0xef, 0xbb, 0xbf)))
      assert.strictEqual(bomOnly.reason, "Empty")
      const blank = yield* Effect.flip(read("\n \r\n,,\n"))
      assert.strictEqual(blank.reason, "Empty")
      assert.include(blank.message, "no header row")
    }))

  it.effect("imports a header-only file as no rows", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* readFile("header-only.csv"), [])
      const report = yield* CsvImport.report(
        "header-only.csv",
        CsvImport.fromFile(fixture("header-only.csv"), { spec })
      )
        .pipe(Effect.provide(NodeFileSystem.layer))
      assert.deepStrictEqual([report.rows, report.accepted], [0, 0])
    }))
})

describe("CsvImport: the header", () => {
  const failure = (text: string, template = spec) => Effect.flip(read(text, { spec: template }))

  it.effect("matches names trimmed and case-insensitively, and accepts phone and to", () =>
    Effect.gen(function*() {
      for (const phone of ["phone_number", " Phone ", "TO"]) {
        const rows = yield* read(`${phone}, First_Name ,ORDER_ID,City\n+14155550123,Ana,A-1,Lisbon\n`)
        assert.deepStrictEqual(outcomes(rows), ["2 Accepted"], phone)
        assert.deepStrictEqual(recipients(rows)[0]!.metadata, { City: "Lisbon" })
      }
    }))

  it.effect("takes positional parameters as param1..N or 1..N", () =>
    Effect.gen(function*() {
      for (const names of ["param1,param2", "1,2", "Param2,PARAM1"]) {
        const rows = yield* read(`phone,${names}\n+14155550123,x,y\n`, { spec: positional })
        const body = recipients(rows)[0]!.params.body
        assert.deepStrictEqual(body, names.toLowerCase().startsWith("param2") ? ["y", "x"] : ["x", "y"])
      }
    }))

  it.effect("names repeated columns", () =>
    Effect.gen(function*() {
      const error = yield* failure(`${header},City,note,city\n`)
      assert.strictEqual(error.reason, "DuplicateColumns")
      assert.strictEqual(error.line, 1)
      assert.include(error.message, "\"City\" (columns 4 and 6)")
    }))

  it.effect("refuses two phone columns, and two columns for one parameter", () =>
    Effect.gen(function*() {
      const phones = yield* failure(`phone,to,first_name,order_id\n`)
      assert.strictEqual(phones.reason, "DuplicateColumns")
      assert.include(phones.message, "\"phone\", \"to\" both hold the phone number")
      const params = yield* failure(`phone,param1,1,param2\n`, positional)
      assert.strictEqual(params.reason, "DuplicateColumns")
      assert.include(params.message, "\"param1\", \"1\" both give param1")
    }))

  it.effect("names the columns found when there is no phone column", () =>
    Effect.gen(function*() {
      const error = yield* failure(`mobile,first_name,order_id\n`)
      assert.strictEqual(error.reason, "MissingPhoneColumn")
      assert.include(error.message, "\"phone_number\"")
      assert.include(error.message, "\"mobile\", \"first_name\", \"order_id\"")
    }))

  it.effect("names the parameter columns the template needs and the file lacks", () =>
    Effect.gen(function*() {
      const named = yield* failure(`phone_number,first_name\n`)
      assert.strictEqual(named.reason, "MissingParameterColumns")
      assert.include(named.message, "needs a column the file does not have: order_id")
      const media = yield* failure(`phone,param1\n`, withMedia)
      assert.strictEqual(media.reason, "MissingParameterColumns")
      assert.include(media.message, "header_url, button_0")
      const text = yield* failure(`phone,param1\n`, withTextHeader)
      assert.include(text.message, "header_text")
    }))

  it.effect("names parameter columns the template does not take", () =>
    Effect.gen(function*() {
      const positionalExtra = yield* failure(`phone,param1,param2,param3\n`, positional)
      assert.strictEqual(positionalExtra.reason, "UnexpectedParameterColumns")
      assert.include(positionalExtra.message, "does not take: param3")
      assert.include(positionalExtra.message, "it takes 2 body parameters, no header")
      const extra = yield* failure(`${header},param1,header_url,button_2\n`)
      assert.strictEqual(extra.reason, "UnexpectedParameterColumns")
      assert.include(extra.message, "param1, header_url, button_2")
      const filename = yield* failure(`phone,param1,header_url,header_filename,button_0,button_1\n`, withMedia)
      assert.include(filename.message, "does not take: button_1")
    }))

  it.effect("refuses an unknown default region and delimiter", () =>
    Effect.gen(function*() {
      for (const defaultRegion of ["us", "XX"]) {
        const error = yield* Effect.flip(read(`${header}\n`, { defaultRegion }))
        assert.strictEqual(error.reason, "InvalidOptions")
        assert.include(error.message, defaultRegion)
      }
      const delimiter = yield* Effect.flip(read(`${header}\n`, { delimiter: "|" as CsvImport.Delimiter }))
      assert.strictEqual(delimiter.reason, "InvalidOptions")
    }))
})

describe("CsvImport: rows", () => {
  it.effect("trims values", () =>
    Effect.gen(function*() {
      const rows = yield* read(`${header},city\n  +14155550123 , Ana Maria ,\tA-1 ,  Lisbon  \n`)
      const [recipient] = recipients(rows)
      assert.strictEqual(recipient!.address, "+14155550123")
      assert.deepStrictEqual(recipient!.params.body, { first_name: "Ana Maria", order_id: "A-1" })
      assert.deepStrictEqual(recipient!.metadata, { city: "Lisbon" })
    }))

  it.effect("rejects rows with too few or too many fields, and allows empty trailing ones", () =>
    Effect.gen(function*() {
      const rows = yield* read(
        `${header},city\n+14155550123,Ana\n+14155550124,Bruno,A-2,Porto,Portugal\n+14155550125,Chloé,A-3,Faro,,\n`
      )
      assert.deepStrictEqual(outcomes(rows), ["2 Rejected", "3 Rejected", "4 Accepted"])
      const short = rejection(rows, 2)
      assert.strictEqual(short.column, "order_id")
      assert.include(short.reason, "ends after 2 of the header's 4 fields (no order_id, city)")
      const long = rejection(rows, 3)
      assert.strictEqual(long.column, "column 5")
      assert.include(long.reason, "the row has 5 fields but the header has 4")
      assert.include(long.reason, "double quotes")
    }))

  it.effect("rejects a value under a column with no name", () =>
    Effect.gen(function*() {
      const rows = yield* read(`${header},\n+14155550123,Ana,A-1,\n+14155550124,Bruno,A-2,stray\n`)
      assert.deepStrictEqual(outcomes(rows), ["2 Accepted", "3 Rejected"])
      assert.strictEqual(rejection(rows, 3).column, "column 4")
    }))

  it.effect("rejects a number a spreadsheet turned into scientific notation", () =>
    Effect.gen(function*() {
      const rows = yield* read(`${header}\n5.51199E+12,Ana,A-1\n`)
      const row = rejection(rows, 2)
      assert.strictEqual(row.column, "phone_number")
      assert.include(row.reason, "spreadsheet turned the number into scientific notation")
    }))

  it.effect("rejects invalid and impossible numbers, naming the column", () =>
    Effect.gen(function*() {
      const bad = ["", "12345", "+1 415 555 0123 4567 890", "not a number", "+1 200 555 0123", "+999 1234 5678"]
      const rows = yield* read([header, ...bad.map((phone, i) => `${phone},Ana,A-${i}`)].join("\n"))
      assert.deepStrictEqual(outcomes(rows), bad.map((_, i) => `${i + 2} Rejected`))
      for (const row of rejections(rows)) {
        assert.strictEqual(row.column, "phone_number")
        assert.isAbove(row.reason.length, 20)
      }
      assert.include(rejection(rows, 2).reason, "empty")
      assert.include(rejection(rows, 3).reason, "\"12345\"")
    }))

  it.effect("reads national numbers with a default region", () =>
    Effect.gen(function*() {
      const rows = yield* read(`${header}\n(415) 555-0123,Ana,A-1\n`, { defaultRegion: "US" })
      assert.strictEqual(recipients(rows)[0]!.address, "+14155550123")
    }))

  it.effect("names the column of each parameter problem and reports them all", () =>
    Effect.gen(function*() {
      const rows = yield* read(`phone_number,param1,param2\n+14155550123,Ana,\n12345,,A-1\n`, { spec: positional })
      const empty = rejection(rows, 2)
      assert.deepStrictEqual([empty.column, empty.reason], ["param2", "empty"])
      const both = rejection(rows, 3)
      assert.strictEqual(both.column, "phone_number")
      assert.include(both.reason, "\"12345\"")
      assert.include(both.reason, "; param1: empty")
    }))

  it.effect("builds media headers and button values, and maps their problems to their columns", () =>
    Effect.gen(function*() {
      const rows = yield* read(
        [
          "phone,param1,header_url,header_filename,button_0",
          "+14155550123,Ana,https://example.com/a.pdf,Invoice.pdf,track/1",
          "+14155550124,Bruno,https://example.com/b.pdf,,track/2",
          "+14155550125,Chloé,http://example.com/c.pdf,,"
        ].join("\n"),
        { spec: withMedia }
      )
      assert.deepStrictEqual(outcomes(rows), ["2 Accepted", "3 Accepted", "4 Rejected"])
      const [first, second] = recipients(rows)
      assert.deepStrictEqual(first!.params.header, {
        _tag: "media",
        kind: "document",
        link: "https://example.com/a.pdf",
        filename: "Invoice.pdf"
      })
      assert.deepStrictEqual(first!.params.buttons, ["track/1"])
      assert.deepStrictEqual(second!.params.header, {
        _tag: "media",
        kind: "document",
        link: "https://example.com/b.pdf"
      })
      const bad = rejection(rows, 4)
      assert.strictEqual(bad.column, "header_url")
      assert.include(bad.reason, "https")
      assert.include(bad.reason, "button_0: empty")
    }))

  it.effect("builds text headers", () =>
    Effect.gen(function*() {
      const rows = yield* read(`phone,param1,header_text\n+14155550123,Ana,Your order\n`, { spec: withTextHeader })
      assert.deepStrictEqual(recipients(rows)[0]!.params.header, { _tag: "text", text: "Your order" })
    }))
})

describe("CsvImport: duplicates", () => {
  it.effect("counts one number written two ways once, pointing at its first line", () =>
    Effect.gen(function*() {
      const rows = yield* read(`${header}\n+1 415-555-0123,Ana,A-1\n14155550123,Ana,A-2\n+14155550124,Bruno,A-3\n`)
      assert.deepStrictEqual(outcomes(rows), ["2 Accepted", "3 Duplicate", "4 Accepted"])
      assert.deepStrictEqual<unknown>(rows[1], { _tag: "Duplicate", line: 3, firstLine: 2, address: "+14155550123" })
    }))

  it.effect("accepts a number whose first row was rejected", () =>
    Effect.gen(function*() {
      const rows = yield* read(`${header}\n+14155550123,,A-1\n+14155550123,Ana,A-2\n+14155550123,Ana,A-3\n`)
      assert.deepStrictEqual(outcomes(rows), ["2 Rejected", "3 Accepted", "4 Duplicate"])
      assert.deepStrictEqual<unknown>(rows[2], { _tag: "Duplicate", line: 4, firstLine: 3, address: "+14155550123" })
    }))

  it.effect("dedupes BSUIDs and numbers alike over many rows", () =>
    Effect.gen(function*() {
      const lines = [header]
      for (let i = 0; i < 20_000; i++) lines.push(`+1415${String(2_000_000 + (i % 10_000))},A,B`)
      lines.push("US.13491208655302741918,A,B", "us.13491208655302741918,A,B")
      const rows = yield* read(lines.join("\n"))
      const counts = { Accepted: 0, Duplicate: 0 } as Record<string, number>
      for (const row of rows) counts[row._tag] = (counts[row._tag] ?? 0) + 1
      assert.deepStrictEqual(counts, { Accepted: 10_001, Duplicate: 10_001 })
      assert.deepStrictEqual<unknown>(rows.at(-1), {
        _tag: "Duplicate",
        line: 20_003,
        firstLine: 20_002,
        address: "US.13491208655302741918"
      })
    }))
})

describe("CsvImport: files that cannot be imported", () => {
  const fileError = (path: string) =>
    Effect.flip(Stream.runCollect(CsvImport.fromFile(path, { spec }))).pipe(Effect.provide(NodeFileSystem.layer))

  it.effect("a missing file", () =>
    Effect.gen(function*() {
      const path = fixture("no-such-file.csv")
      const error = yield* fileError(path)
      assert.strictEqual(error.reason, "NotFound")
      assert.strictEqual(error.path, path)
      assert.strictEqual(error.message, `${path}: there is no such file`)
    }))

  it.effect("a directory", () =>
    Effect.gen(function*() {
      const error = yield* fileError(mkdtempSync(join(tmpdir(), "crier-csv-")))
      assert.strictEqual(error.reason, "Unreadable")
      assert.include(error.message, "is a directory")
    }))

  it.effect("a binary file", () =>
    Effect.gen(function*() {
      const error = yield* fileError(fixture("binary.bin"))
      assert.strictEqual(error.reason, "NotCsv")
      assert.include(error.message, "NUL byte")
    }))

  it.effect("an Excel workbook", () =>
    Effect.gen(function*() {
      const error = yield* fileError(fixture("workbook.xlsx"))
      assert.strictEqual(error.reason, "NotCsv")
      assert.include(error.message, "looks like an Excel workbook")
      assert.include(error.message, "export it as CSV")
    }))

  it.effect("an old Excel workbook, told apart from its first bytes even when they arrive one at a time", () =>
    Effect.gen(function*() {
      const bytes = Uint8Array.of(0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1, 0, 0)
      const error = yield* Effect.flip(read(bytes, {}, 1))
      assert.strictEqual(error.reason, "NotCsv")
      assert.include(error.message, ".xls")
    }))
})

describe("CsvImport.report", () => {
  it.effect("counts every row once, with each rejection and duplicate", () =>
    Effect.gen(function*() {
      const text = [
        header,
        "+14155550123,Ana,A-1",
        "14155550123,Ana,A-1",
        "",
        "5.51199E+12,Bruno,A-2",
        "+14155550124,Chloé,"
      ].join("\r\n")
      const bytes = encoder.encode(text)
      const report = yield* CsvImport.report("list.csv", CsvImport.rows(Stream.make(bytes), { spec }))
      assert.deepStrictEqual(
        { ...report, errors: report.errors.map((e) => `${e.line} ${e.column}`) },
        {
          file: "list.csv",
          rows: 5,
          accepted: 1,
          rejected: 2,
          duplicates: 1,
          blank: 1,
          errors: ["5 phone_number", "6 order_id"],
          duplicateRows: [{ line: 3, firstLine: 2 }]
        }
      )
      assert.deepStrictEqual(report.errors[1], { line: 6, column: "order_id", reason: "empty" })
    }))
})

// ---------------------------------------------------------------------------------------------------------------
// Generated files

const Kind = Schema.Literals([
  "valid",
  "duplicate",
  "mangled",
  "emptyParam",
  "blank",
  "spaces",
  "delimiters",
  "multiline",
  "short",
  "long"
])
type Kind = typeof Kind.Type

const expectedTag: Record<Kind, CsvImport.Row["_tag"]> = {
  valid: "Accepted",
  duplicate: "Duplicate",
  mangled: "Rejected",
  emptyParam: "Rejected",
  blank: "Blank",
  spaces: "Blank",
  delimiters: "Blank",
  multiline: "Accepted",
  short: "Rejected",
  long: "Rejected"
}

/** A file from a list of row kinds: its text, and for each row the line it starts on and its expected outcome. */
const generate = (kinds: ReadonlyArray<Kind>, ending: string, finalBreak: boolean) => {
  const lines: Array<string> = [`${header},note`]
  const expected: Array<string> = []
  const accepted: Array<string> = []
  let line = 2
  for (const kind of kinds) {
    const fresh = `+1415${String(2_000_000 + line)}`
    const again = accepted.length === 0 ? undefined : accepted[line % accepted.length]!
    const [text, tag, spans] = ((): readonly [string, CsvImport.Row["_tag"], number] => {
      switch (kind) {
        case "valid":
          accepted.push(fresh)
          return [`${fresh},Ana,A-${line},`, expectedTag[kind], 1]
        case "duplicate":
          // An accepted number written another way; before any is accepted, a mangled one stands in.
          return again === undefined
            ? [`5.5E+12,Ana,A,`, "Rejected", 1]
            : [`${again.slice(1, 2)} (${again.slice(2, 5)}) ${again.slice(5)},Ana,A,`, expectedTag[kind], 1]
        case "mangled":
          return ["5.51199E+12,Ana,A,", expectedTag[kind], 1]
        case "emptyParam":
          return [`${fresh},,A,`, expectedTag[kind], 1]
        case "blank":
          return ["", expectedTag[kind], 1]
        case "spaces":
          return ["  \t ", expectedTag[kind], 1]
        case "delimiters":
          return [",,,", expectedTag[kind], 1]
        case "multiline":
          accepted.push(fresh)
          return [`${fresh},Ana,A,"one${ending}two\nthree"`, expectedTag[kind], 3]
        case "short":
          return [`${fresh},Ana`, expectedTag[kind], 1]
        case "long":
          return [`${fresh},Ana,A,note,extra`, expectedTag[kind], 1]
      }
    })()
    lines.push(text)
    expected.push(`${line} ${tag}`)
    line += spans
  }
  // An empty last line exists only when a line break follows it.
  const text = lines.join(ending) + (finalBreak || kinds.at(-1) === "blank" ? ending : "")
  return { text, expected, lines: line - 1 }
}

describe("CsvImport: generated files", () => {
  it.effect.prop(
    "accounts for every line once, whatever the rows, line endings and chunking",
    [
      Schema.Array(Kind).check(Schema.isMaxLength(40)),
      Schema.Literals(["\n", "\r\n", "\r"]),
      Schema.Boolean,
      Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 200 }))
    ],
    ([kinds, ending, finalBreak, chunkSize]) =>
      Effect.gen(function*() {
        const { expected, lines, text } = generate(kinds, ending, finalBreak)
        const rows = yield* read(text, {}, chunkSize)
        assert.deepStrictEqual(outcomes(rows), expected)
        const report = yield* CsvImport.report(
          "generated.csv",
          CsvImport.rows(Stream.make(encoder.encode(text)), { spec })
        )
        assert.strictEqual(report.rows, report.accepted + report.rejected + report.duplicates + report.blank)
        assert.strictEqual(report.rows, kinds.length)
        assert.strictEqual(report.errors.length, report.rejected)
        assert.strictEqual(report.duplicateRows.length, report.duplicates)
        // Every line below the header starts one row, or continues a multi-line value.
        const starts = new Set(rows.map(lineOf))
        assert.strictEqual(starts.size, rows.length)
        const continuations = kinds.filter((kind) => kind === "multiline").length * 2
        assert.strictEqual(rows.length + continuations + 1, lines)
      }),
    60_000
  )
})

describe("CsvImport: streaming", () => {
  it.effect(
    "reads 200,000 rows incrementally: rows arrive before the source is read, a chunk behind at most",
    () =>
      Effect.gen(function*() {
        const total = 200_000
        const perChunk = 500
        const chunkCount = total / perChunk
        let produced = 0
        let firstRowAt: number | undefined
        let maxAhead = 0
        let count = 0
        const source = Stream.fromIterable({
          *[Symbol.iterator]() {
            yield encoder.encode(`${header}\n`)
            for (let c = 0; c < chunkCount; c++) {
              let text = ""
              for (let i = c * perChunk; i < (c + 1) * perChunk; i++) text += `+1415${2_000_000 + i},Ana,A-${i}\n`
              produced++
              yield encoder.encode(text)
            }
          }
        }, { chunkSize: 1 })
        yield* CsvImport.rows(source, { spec }).pipe(
          Stream.runForEach((row) =>
            Effect.sync(() => {
              count++
              firstRowAt ??= produced
              // Row n (line n + 1) comes from chunk ceil(n / perChunk); the source may be at most one chunk ahead.
              const chunkOfRow = Math.ceil((lineOf(row) - 1) / perChunk)
              maxAhead = Math.max(maxAhead, produced - chunkOfRow)
            })
          )
        )
        assert.strictEqual(count, total)
        assert.strictEqual(firstRowAt, 1)
        assert.isAtMost(maxAhead, 1)
      }),
    60_000
  )
})
