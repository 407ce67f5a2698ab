// `crier validate` as a person runs it: a real child process, its output and its exit status.
import { assert, describe, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const bin = join(import.meta.dirname, "..", "src", "bin.ts")
const sample = join(import.meta.dirname, "..", "..", "..", "examples", "data", "recipients.csv")
const sampleTemplate = "Hi {{first_name}}, your order {{order_id}} ships today."

const crier = (...args: ReadonlyArray<string>) => {
  const result = spawnSync(process.execPath, [bin, ...args], {
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1" }
  })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

const dir = mkdtempSync(join(tmpdir(), "crier-validate-"))
const file = (name: string, content: string | Uint8Array) => {
  const path = join(dir, name)
  writeFileSync(path, content)
  return path
}

describe("crier validate", () => {
  it("reports the sample file: counts that add up, every rejection, exit 1", () => {
    const run = crier("validate", sample, "--template-text", sampleTemplate, "--default-region", "US", "--json")
    assert.strictEqual(run.status, 1, run.stderr)
    const report = JSON.parse(run.stdout)
    assert.deepStrictEqual(Object.keys(report).sort(), [
      "accepted",
      "blank",
      "duplicateRows",
      "duplicates",
      "errors",
      "file",
      "rejected",
      "rows"
    ])
    assert.strictEqual(report.rows, 10_000)
    assert.strictEqual(report.rows, report.accepted + report.rejected + report.duplicates + report.blank)
    assert.strictEqual(report.errors.length, report.rejected)
    assert.strictEqual(report.duplicateRows.length, report.duplicates)
    assert.isAbove(report.rejected, 0)
    assert.isAbove(report.duplicates, 0)
    for (const error of report.errors) {
      assert.deepStrictEqual(Object.keys(error).sort(), ["column", "line", "reason"])
      assert.isAtLeast(error.line, 2)
    }
    for (const duplicate of report.duplicateRows) assert.isBelow(duplicate.firstLine, duplicate.line)
  })

  it("prints counts and the first rejections for a person", () => {
    const run = crier("validate", sample, "--template-text", sampleTemplate, "--default-region", "US")
    assert.strictEqual(run.status, 1)
    assert.include(run.stdout, "10,000 rows")
    assert.match(run.stdout, /accepted\s+9,\d{3}/)
    assert.match(run.stdout, /line \d+, phone_number: /)
    assert.include(run.stdout, "--json lists every one")
  })

  it("exits 0 when every row is accepted, with named parameters and a media header", () => {
    const path = file(
      "clean.csv",
      "phone_number,first_name,header_url\n+14155550123,Ana,https://example.com/a.png\n+5511987654321,Zoë 🌻,https://example.com/b.png\n"
    )
    const run = crier("validate", path, "--named", "first_name", "--header", "image", "--json")
    assert.strictEqual(run.status, 0, run.stdout + run.stderr)
    assert.deepStrictEqual(JSON.parse(run.stdout), {
      file: path,
      rows: 2,
      accepted: 2,
      rejected: 0,
      duplicates: 0,
      blank: 0,
      errors: [],
      duplicateRows: []
    })
  })

  it("detects a semicolon delimiter and reads national numbers with a default region", () => {
    const path = file("semicolon.csv", "phone;param1\n(415) 555-0123;Ana\n415.555.0124;Bruno\n")
    const run = crier("validate", path, "--params", "1", "--default-region", "us", "--json")
    assert.strictEqual(run.status, 0, run.stdout + run.stderr)
    assert.strictEqual(JSON.parse(run.stdout).accepted, 2)
  })

  it("counts the same number written two ways once, and names the first line", () => {
    const path = file("dupes.csv", "to,param1\n+1 415-555-0123,Ana\n14155550123,Ana again\n")
    const run = crier("validate", path, "--params", "1", "--json")
    assert.strictEqual(run.status, 1)
    assert.deepStrictEqual(JSON.parse(run.stdout).duplicateRows, [{ line: 3, firstLine: 2 }])
  })

  const usageErrors: ReadonlyArray<readonly [string, ReadonlyArray<string>, RegExp]> = [
    ["a missing file", [join(dir, "nope.csv"), "--params", "1"], /no such file/],
    ["no template flag", [sample], /exactly one of --template-text, --params or --named/],
    ["two template flags", [sample, "--params", "1", "--named", "a"], /exactly one of/],
    ["mixed placeholders", [sample, "--template-text", "Hi {{1}} {{name}}"], /template/],
    ["an unknown region", [sample, "--params", "1", "--default-region", "XX"], /not a known country code/],
    ["an unknown flag", [sample, "--params", "1", "--bogus"], /--bogus/],
    ["a file without a phone column", [file("nophone.csv", "name,param1\nAna,x\n"), "--params", "1"], /phone/],
    [
      "a binary file",
      [file("binary.csv", new Uint8Array([0x50, 0x4b, 3, 4, 0, 0, 1, 2])), "--params", "1"],
      /Excel|CSV/
    ]
  ]
  for (const [what, args, message] of usageErrors) {
    it(`exits 2 with one clear line for ${what}`, () => {
      const run = crier("validate", ...args)
      assert.strictEqual(run.status, 2, run.stdout + run.stderr)
      assert.match(run.stdout + run.stderr, message)
      assert.notMatch(run.stderr, /\n\s+at /, "no stack trace")
    })
  }
})
