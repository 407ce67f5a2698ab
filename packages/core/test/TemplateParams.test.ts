import * as TemplateParams from "@crier/core/TemplateParams"
import * as TemplateSpec from "@crier/core/TemplateSpec"
import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"

const spec = (bodyText: string, options: Partial<TemplateSpec.FromTextOptions> = {}): TemplateSpec.TemplateSpec => {
  const result = TemplateSpec.fromText(bodyText, { name: "promo", language: "en", ...options })
  if (Result.isFailure(result)) assert.fail(result.failure.message)
  return result.success
}

const handWritten = (fields: Partial<typeof TemplateSpec.TemplateSpec.Encoded>): TemplateSpec.TemplateSpec => {
  const result = TemplateSpec.make({
    name: "promo",
    language: "en",
    body: { _tag: "positional", count: 1 },
    header: "none",
    buttons: [],
    ...fields
  })
  if (Result.isFailure(result)) assert.fail(result.failure.message)
  return result.success
}

const params = (
  body: TemplateParams.TemplateParams["body"],
  rest: { readonly header?: TemplateParams.Header; readonly buttons?: ReadonlyArray<string> } = {}
) =>
  new TemplateParams.TemplateParams({
    body,
    buttons: rest.buttons ?? [],
    ...(rest.header ? { header: rest.header } : {})
  })

const valid = (s: TemplateSpec.TemplateSpec, p: TemplateParams.TemplateParams): TemplateParams.TemplateParams => {
  const result = TemplateParams.validate(s, p)
  if (Result.isFailure(result)) assert.fail(JSON.stringify(result.failure))
  return result.success
}

const issues = (
  s: TemplateSpec.TemplateSpec,
  p: TemplateParams.TemplateParams
): ReadonlyArray<TemplateParams.Issue> => {
  const result = TemplateParams.validate(s, p)
  if (Result.isSuccess(result)) assert.fail("expected issues, got none")
  return result.failure
}

const fields = (found: ReadonlyArray<TemplateParams.Issue>) => found.map((issue) => issue.field)

const image = (link: string, filename?: string): TemplateParams.Header =>
  TemplateParams.MediaHeader.make({ kind: "image", link, ...(filename === undefined ? {} : { filename }) })
const document = (link: string, filename?: string): TemplateParams.Header =>
  TemplateParams.MediaHeader.make({ kind: "document", link, ...(filename === undefined ? {} : { filename }) })
const text = (value: string): TemplateParams.Header => TemplateParams.TextHeader.make({ text: value })

const positional = spec("Hi {{1}}, your code is {{2}}")
const named = spec("Hi {{first_name}}, your order {{order_id}} ships today")

describe("TemplateParams.validate: body", () => {
  it("accepts exactly the positional values and returns the same params when nothing needs trimming", () => {
    const given = params(["Ana", "X42"])
    assert.strictEqual(valid(positional, given), given)
  })

  it("trims surrounding whitespace and keeps everything else exactly", () => {
    const result = valid(positional, params(["  Ana 😀 María  ", "\tこんにちは مرحبا "]))
    assert.instanceOf(result, TemplateParams.TemplateParams)
    assert.deepStrictEqual(result.body, ["Ana 😀 María", "こんにちは مرحبا"])
    const namedResult = valid(named, params({ first_name: " 👩‍👩‍👧 ", order_id: "A1" }))
    assert.deepStrictEqual(namedResult.body, { first_name: "👩‍👩‍👧", order_id: "A1" })
  })

  it("reports each missing position", () => {
    const found = issues(spec("{{1}} {{2}} {{3}}"), params(["a"]))
    assert.deepStrictEqual(found, [
      { field: "body.2", reason: "missing" },
      { field: "body.3", reason: "missing" }
    ])
  })

  it("reports extra positional values, naming the positions", () => {
    const found = issues(positional, params(["a", "b", "c", "d"]))
    assert.strictEqual(found.length, 1)
    assert.strictEqual(found[0]!.field, "body")
    assert.include(found[0]!.reason, "positions 3, 4")
  })

  it("accepts exactly the named keys", () => {
    const given = params({ order_id: "A1", first_name: "Ana" })
    assert.strictEqual(valid(named, given), given)
  })

  it("reports each missing and each unknown key", () => {
    const found = issues(named, params({ first_name: "Ana", order: "A1", city: "Lima" }))
    assert.sameMembers(fields(found), ["body.order", "body.city", "body.order_id"])
    assert.strictEqual(found.find((issue) => issue.field === "body.order_id")!.reason, "missing")
    assert.include(found.find((issue) => issue.field === "body.city")!.reason, "unknown")
  })

  it("does not mistake inherited properties for values", () => {
    const found = issues(spec("Hi {{constructor}}"), params({}))
    assert.deepStrictEqual(found, [{ field: "body.constructor", reason: "missing" }])
  })

  it("refuses positional values for a named template and named values for a positional one", () => {
    assert.deepStrictEqual(fields(issues(named, params(["Ana", "A1"]))), ["body"])
    assert.include(issues(named, params(["Ana", "A1"]))[0]!.reason, "first_name, order_id")
    assert.deepStrictEqual(fields(issues(positional, params({ "1": "Ana", "2": "A1" }))), ["body"])
  })

  it("accepts no values, in either form, for a template without parameters", () => {
    const none = spec("Our store opens at 9.")
    assert.isTrue(Result.isSuccess(TemplateParams.validate(none, params([]))))
    assert.isTrue(Result.isSuccess(TemplateParams.validate(none, params({}))))
  })

  it("refuses empty and whitespace-only values", () => {
    assert.deepStrictEqual(issues(positional, params(["", " \t "])), [
      { field: "body.1", reason: "empty" },
      { field: "body.2", reason: "empty" }
    ])
    assert.deepStrictEqual(issues(named, params({ first_name: "Ana", order_id: "   " })), [
      { field: "body.order_id", reason: "empty" }
    ])
  })

  it("refuses line breaks, tabs and more than 4 consecutive spaces inside a value (Meta 132018)", () => {
    for (const value of ["a\nb", "a\r\nb", "a\tb", "a     b", "a\u2028b"]) {
      const found = issues(positional, params([value, "ok"]))
      assert.deepStrictEqual(fields(found), ["body.1"], JSON.stringify(value))
      assert.include(found[0]!.reason, "132018")
    }
    valid(positional, params(["a    b", "c d"]))
  })

  it("refuses a message body over 1024 characters after substitution, counting repeats and code points", () => {
    const repeated = spec("Hi {{1}}! {{1}}.") // 6 characters besides the placeholders
    valid(repeated, params(["😀".repeat(509)])) // 6 + 2 × 509 = 1024
    valid(repeated, params(["こ".repeat(509)]))
    const found = issues(repeated, params(["مر".repeat(255)])) // 6 + 2 × 510
    assert.deepStrictEqual(fields(found), ["body"])
    assert.include(found[0]!.reason, "1026")
  })

  it("caps each body value at 1024 characters when the template has other components", () => {
    const withHeader = handWritten({ header: "text" })
    valid(withHeader, params(["😀".repeat(1024)], { header: text("Hello") }))
    const found = issues(withHeader, params(["😀".repeat(1025)], { header: text("Hello") }))
    assert.deepStrictEqual(found, [{ field: "body.1", reason: "longer than 1024 characters" }])
  })

  it("caps each body value at 32768 characters when the body stands alone", () => {
    const alone = handWritten({})
    valid(alone, params(["a".repeat(32768)]))
    assert.deepStrictEqual(fields(issues(alone, params(["a".repeat(32769)]))), ["body.1"])
  })
})

describe("TemplateParams.validate: header", () => {
  const textHeader = spec("Hi {{1}}", { header: "text" })
  const imageHeader = spec("Hi {{1}}", { header: "image" })
  const documentHeader = spec("Hi {{1}}", { header: "document" })

  it("requires a header when the template has one", () => {
    assert.deepStrictEqual(issues(textHeader, params(["Ana"])), [{ field: "header.text", reason: "missing" }])
    assert.deepStrictEqual(issues(imageHeader, params(["Ana"])), [{ field: "header.link", reason: "missing" }])
  })

  it("forbids a header when the template has none", () => {
    assert.deepStrictEqual(fields(issues(positional, params(["a", "b"], { header: text("Hello") }))), ["header"])
    assert.deepStrictEqual(
      fields(issues(positional, params(["a", "b"], { header: image("https://cdn.example.com/a.png") }))),
      ["header"]
    )
  })

  it("accepts a text header up to 60 characters, counted in code points, and trims it", () => {
    const result = valid(textHeader, params(["Ana"], { header: text(` ${"😀".repeat(60)} `) }))
    assert.deepStrictEqual(result.header, { _tag: "text", text: "😀".repeat(60) })
    assert.deepStrictEqual(issues(textHeader, params(["Ana"], { header: text("ア".repeat(61)) })), [
      { field: "header.text", reason: "longer than 60 characters" }
    ])
    assert.deepStrictEqual(issues(textHeader, params(["Ana"], { header: text("  ") })), [
      { field: "header.text", reason: "empty" }
    ])
    assert.deepStrictEqual(fields(issues(textHeader, params(["Ana"], { header: text("a\nb") }))), ["header.text"])
  })

  it("requires the header kind the template declares", () => {
    assert.deepStrictEqual(
      issues(imageHeader, params(["Ana"], { header: document("https://cdn.example.com/a.pdf") })),
      [{ field: "header", reason: "expected an image header, got a document header" }]
    )
    assert.deepStrictEqual(fields(issues(imageHeader, params(["Ana"], { header: text("Hello") }))), ["header"])
    assert.deepStrictEqual(
      fields(issues(textHeader, params(["Ana"], { header: image("https://cdn.example.com/a.png") }))),
      ["header"]
    )
  })

  it("accepts an absolute https link and trims it", () => {
    const result = valid(imageHeader, params(["Ana"], { header: image(" https://cdn.example.com/a.png?v=1 ") }))
    assert.deepStrictEqual(result.header, { _tag: "media", kind: "image", link: "https://cdn.example.com/a.png?v=1" })
  })

  it("refuses a link that is not an absolute https URL", () => {
    for (
      const link of ["http://cdn.example.com/a.png", "ftp://cdn.example.com/a.png", "/a.png", "cdn.example.com/a.png"]
    ) {
      assert.deepStrictEqual(
        fields(issues(imageHeader, params(["Ana"], { header: image(link) }))),
        ["header.link"],
        link
      )
    }
    assert.deepStrictEqual(issues(imageHeader, params(["Ana"], { header: image("  ") })), [
      { field: "header.link", reason: "empty" }
    ])
  })

  it("takes a filename for a document only", () => {
    const result = valid(
      documentHeader,
      params(["Ana"], { header: document("https://x.example/a.pdf", " Factura.pdf ") })
    )
    assert.deepStrictEqual(result.header, {
      _tag: "media",
      kind: "document",
      link: "https://x.example/a.pdf",
      filename: "Factura.pdf"
    })
    assert.deepStrictEqual(
      issues(imageHeader, params(["Ana"], { header: image("https://x.example/a.png", "a.png") })),
      [{ field: "header.filename", reason: "only a document header takes a filename" }]
    )
    assert.deepStrictEqual(
      issues(documentHeader, params(["Ana"], { header: document("https://x.example/a.pdf", " ") })),
      [{ field: "header.filename", reason: "empty" }]
    )
  })
})

describe("TemplateParams.validate: buttons", () => {
  const buttons = [
    new TemplateSpec.Button({ index: 0, kind: "url" }),
    new TemplateSpec.Button({ index: 2, kind: "copy_code" }),
    new TemplateSpec.Button({ index: 1, kind: "quick_reply" })
  ]
  const withButtons = spec("Hi {{1}}", { buttons })

  it("accepts one value per button, in spec order, trimmed", () => {
    const result = valid(withButtons, params(["Ana"], { buttons: [" order/42 ", "SAVE😀20", "stop"] }))
    assert.deepStrictEqual(result.buttons, ["order/42", "SAVE😀20", "stop"])
  })

  it("names missing button values by index", () => {
    assert.deepStrictEqual(issues(withButtons, params(["Ana"], { buttons: ["order/42"] })), [
      { field: "button.2", reason: "missing" },
      { field: "button.1", reason: "missing" }
    ])
  })

  it("refuses extra button values", () => {
    assert.deepStrictEqual(
      fields(issues(withButtons, params(["Ana"], { buttons: ["a", "b", "c", "d"] }))),
      ["buttons"]
    )
  })

  it("refuses empty button values", () => {
    assert.deepStrictEqual(issues(withButtons, params(["Ana"], { buttons: ["a", " ", "c"] })), [
      { field: "button.2", reason: "empty" }
    ])
  })

  it("caps a coupon at 15, a quick-reply payload at 128 and a URL suffix at 2000 characters", () => {
    valid(withButtons, params(["Ana"], { buttons: ["u".repeat(2000), "😀".repeat(15), "q".repeat(128)] }))
    assert.deepStrictEqual(
      issues(withButtons, params(["Ana"], { buttons: ["u".repeat(2001), "😀".repeat(16), "q".repeat(129)] })),
      [
        { field: "button.0", reason: "longer than 2000 characters" },
        { field: "button.2", reason: "longer than 15 characters" },
        { field: "button.1", reason: "longer than 128 characters" }
      ]
    )
  })
})

describe("TemplateParams.validate: all issues at once", () => {
  it("reports every problem in the row, not just the first", () => {
    const full = spec("Hi {{first_name}}, code {{code}}", {
      header: "document",
      buttons: [new TemplateSpec.Button({ index: 0, kind: "copy_code" })]
    })
    const found = issues(
      full,
      params({ first_name: "", extra: "x" }, {
        header: TemplateParams.MediaHeader.make({ kind: "document", link: "http://x.example/a.pdf" }),
        buttons: ["WAY-TOO-LONG-COUPON"]
      })
    )
    assert.sameMembers(fields(found), ["body.extra", "body.first_name", "body.code", "header.link", "button.0"])
  })

  it("reuses one plan per spec and still validates each row on its own", () => {
    for (let i = 0; i < 3; i++) {
      valid(positional, params([`Ana ${i}`, `X${i}`]))
      assert.deepStrictEqual(fields(issues(positional, params([`Ana ${i}`]))), ["body.2"])
    }
  })
})
