import * as TemplateSpec from "@crier/core/TemplateSpec"
import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"

const options: TemplateSpec.FromTextOptions = { name: "order_update", language: "en_US" }

const success = <A, E>(result: Result.Result<A, E>): A => {
  if (Result.isFailure(result)) assert.fail(`expected a success, got ${String(result.failure)}`)
  return result.success
}

const failure = <A>(result: Result.Result<A, TemplateSpec.TemplateSpecError>): TemplateSpec.TemplateSpecError => {
  if (Result.isSuccess(result)) assert.fail(`expected a failure, got ${String(result.success)}`)
  return result.failure
}

const handWritten = {
  name: "order_update",
  language: "pt_BR",
  body: { _tag: "named", keys: ["first_name", "order_id"] },
  header: "document",
  buttons: [{ index: 0, kind: "url" }, { index: 1, kind: "quick_reply" }]
} as const

describe("TemplateSpec.fromText", () => {
  it("infers a positional spec, counting a repeated placeholder once", () => {
    const spec = success(TemplateSpec.fromText("Hi {{1}}, your code is {{2}}. Again: {{1}}", options))
    assert.deepStrictEqual(spec.body, { _tag: "positional", count: 2 })
    assert.strictEqual(spec.bodyText, "Hi {{1}}, your code is {{2}}. Again: {{1}}")
    assert.strictEqual(spec.header, "none")
    assert.deepStrictEqual(spec.buttons, [])
    assert.deepStrictEqual(TemplateSpec.parameterNames(spec), ["1", "2"])
  })

  it("accepts positional placeholders in any order as long as they run from 1 without gaps", () => {
    const spec = success(TemplateSpec.fromText("{{2}} then {{1}}", options))
    assert.deepStrictEqual(spec.body, { _tag: "positional", count: 2 })
  })

  it("infers a named spec with keys in order of first appearance", () => {
    const spec = success(
      TemplateSpec.fromText("Hi {{first_name}}, order {{order_id}} for {{first_name}} ships {{eta_2}}", options)
    )
    assert.deepStrictEqual(spec.body, { _tag: "named", keys: ["first_name", "order_id", "eta_2"] })
    assert.deepStrictEqual(TemplateSpec.parameterNames(spec), ["first_name", "order_id", "eta_2"])
  })

  it("accepts whitespace inside the braces", () => {
    assert.deepStrictEqual(
      success(TemplateSpec.fromText("Hi {{ first_name }} and {{  _code}}", options)).body,
      { _tag: "named", keys: ["first_name", "_code"] }
    )
    assert.deepStrictEqual(success(TemplateSpec.fromText("Hi {{ 1 }}", options)).body, {
      _tag: "positional",
      count: 1
    })
  })

  it("infers no parameters from a body without placeholders", () => {
    const spec = success(TemplateSpec.fromText("Our store opens at 9.", options))
    assert.deepStrictEqual(spec.body, { _tag: "positional", count: 0 })
    assert.deepStrictEqual(TemplateSpec.parameterNames(spec), [])
  })

  it("keeps the header and buttons it is given", () => {
    const buttons = [
      new TemplateSpec.Button({ index: 0, kind: "url" }),
      new TemplateSpec.Button({ index: 2, kind: "copy_code" })
    ]
    const spec = success(TemplateSpec.fromText("Hi {{1}}", { ...options, header: "image", buttons }))
    assert.strictEqual(spec.header, "image")
    assert.deepStrictEqual(spec.buttons.map((button) => [button.index, button.kind]), [[0, "url"], [2, "copy_code"]])
  })

  it("refuses gaps in positional parameters", () => {
    const error = failure(TemplateSpec.fromText("Hi {{1}}, code {{3}}", options))
    assert.strictEqual(error.reason, "NonSequentialPositional")
    assert.include(error.message, "{{1}}, {{3}}")
  })

  it("refuses positional parameters that do not start at 1", () => {
    assert.strictEqual(failure(TemplateSpec.fromText("Hi {{2}} {{3}}", options)).reason, "NonSequentialPositional")
    assert.strictEqual(failure(TemplateSpec.fromText("Hi {{0}} {{1}}", options)).reason, "NonSequentialPositional")
  })

  it("refuses positional and named parameters mixed", () => {
    const error = failure(TemplateSpec.fromText("Hi {{1}}, your code is {{code}}", options))
    assert.strictEqual(error.reason, "MixedParameters")
    assert.include(error.message, "{{1}}")
    assert.include(error.message, "{{code}}")
  })

  it("refuses invalid parameter names, naming the placeholder", () => {
    for (
      const placeholder of [
        "{{First_name}}",
        "{{first name}}",
        "{{1st}}",
        "{{first-name}}",
        "{{}}",
        "{{  }}",
        "{{01}}",
        "{{prénom}}"
      ]
    ) {
      const error = failure(TemplateSpec.fromText(`Hi ${placeholder}!`, options))
      assert.strictEqual(error.reason, "InvalidParameterName", placeholder)
      assert.include(error.message, placeholder)
    }
  })

  it("refuses an empty or blank body", () => {
    assert.strictEqual(failure(TemplateSpec.fromText("", options)).reason, "EmptyBody")
    assert.strictEqual(failure(TemplateSpec.fromText(" \n\t ", options)).reason, "EmptyBody")
  })

  it("refuses a body longer than 1024 characters, counted in code points", () => {
    assert.isTrue(Result.isSuccess(TemplateSpec.fromText("😀".repeat(1024), options)))
    const error = failure(TemplateSpec.fromText("😀".repeat(1025), options))
    assert.strictEqual(error.reason, "BodyTooLong")
    assert.include(error.message, "1025")
  })

  it("refuses an invalid template name", () => {
    for (const name of ["Order_update", "order-update", "order update", "", "a".repeat(513)]) {
      assert.strictEqual(failure(TemplateSpec.fromText("Hi", { ...options, name })).reason, "InvalidName", name)
    }
    assert.isTrue(Result.isSuccess(TemplateSpec.fromText("Hi", { ...options, name: "a".repeat(512) })))
    assert.isTrue(Result.isSuccess(TemplateSpec.fromText("Hi", { ...options, name: "promo_2024" })))
  })

  it("refuses an invalid language code", () => {
    for (const language of ["", "EN", "en-US", "en_us", "english", "e"]) {
      assert.strictEqual(
        failure(TemplateSpec.fromText("Hi", { ...options, language })).reason,
        "InvalidLanguage",
        language
      )
    }
    for (const language of ["en", "en_US", "pt_BR", "fil"]) {
      assert.isTrue(Result.isSuccess(TemplateSpec.fromText("Hi", { ...options, language })), language)
    }
  })

  it("refuses buttons sharing an index", () => {
    const buttons = [
      new TemplateSpec.Button({ index: 1, kind: "url" }),
      new TemplateSpec.Button({ index: 1, kind: "quick_reply" })
    ]
    assert.strictEqual(
      failure(TemplateSpec.fromText("Hi", { ...options, buttons })).reason,
      "DuplicateButtonIndex"
    )
  })
})

describe("TemplateSpec.make", () => {
  it("builds a hand-written spec", () => {
    const spec = success(TemplateSpec.make(handWritten))
    assert.instanceOf(spec, TemplateSpec.TemplateSpec)
    assert.instanceOf(spec.buttons[0], TemplateSpec.Button)
    assert.deepStrictEqual(TemplateSpec.parameterNames(spec), ["first_name", "order_id"])
    assert.isUndefined(spec.bodyText)
  })

  it("builds a positional spec and lists its parameter names", () => {
    const spec = success(TemplateSpec.make({ ...handWritten, body: { _tag: "positional", count: 3 } }))
    assert.deepStrictEqual(TemplateSpec.parameterNames(spec), ["1", "2", "3"])
  })

  it("refuses duplicate keys", () => {
    const error = failure(TemplateSpec.make({ ...handWritten, body: { _tag: "named", keys: ["code", "code"] } }))
    assert.strictEqual(error.reason, "DuplicateName")
  })

  it("refuses invalid keys", () => {
    for (const key of ["1", "First", "first name", "9lives", ""]) {
      const error = failure(TemplateSpec.make({ ...handWritten, body: { _tag: "named", keys: ["ok", key] } }))
      assert.strictEqual(error.reason, "InvalidParameterName", key)
    }
  })

  it("refuses an invalid name or language", () => {
    assert.strictEqual(failure(TemplateSpec.make({ ...handWritten, name: "Order" })).reason, "InvalidName")
    assert.strictEqual(failure(TemplateSpec.make({ ...handWritten, language: "pt-BR" })).reason, "InvalidLanguage")
  })

  it("refuses buttons sharing an index, and indexes outside 0..9", () => {
    assert.strictEqual(
      failure(TemplateSpec.make({ ...handWritten, buttons: [{ index: 0, kind: "url" }, { index: 0, kind: "url" }] }))
        .reason,
      "DuplicateButtonIndex"
    )
    for (const index of [-1, 10, 1.5]) {
      assert.strictEqual(
        failure(TemplateSpec.make({ ...handWritten, buttons: [{ index, kind: "url" }] })).reason,
        "InvalidSpec",
        String(index)
      )
    }
  })

  it("refuses a negative or fractional positional count", () => {
    for (const count of [-1, 1.5]) {
      assert.strictEqual(
        failure(TemplateSpec.make({ ...handWritten, body: { _tag: "positional", count } })).reason,
        "InvalidSpec"
      )
    }
  })

  it("checks a given body text against the declared parameters", () => {
    assert.isTrue(
      Result.isSuccess(TemplateSpec.make({ ...handWritten, bodyText: "Hi {{first_name}}, order {{order_id}}" }))
    )
    const error = failure(TemplateSpec.make({ ...handWritten, bodyText: "Hi {{first_name}}" }))
    assert.strictEqual(error.reason, "BodyTextMismatch")
    assert.strictEqual(
      failure(TemplateSpec.make({ ...handWritten, bodyText: "Hi {{1}} {{first_name}}" })).reason,
      "MixedParameters"
    )
  })
})

describe("TemplateSpec.decodeUnknown", () => {
  it("decodes a spec read from JSON", () => {
    const spec = success(TemplateSpec.decodeUnknown(JSON.parse(JSON.stringify(handWritten))))
    assert.deepStrictEqual(spec.body, { _tag: "named", keys: ["first_name", "order_id"] })
  })

  it("refuses a malformed spec", () => {
    assert.strictEqual(failure(TemplateSpec.decodeUnknown({ name: "promo" })).reason, "InvalidSpec")
    assert.strictEqual(failure(TemplateSpec.decodeUnknown({ ...handWritten, header: "audio" })).reason, "InvalidSpec")
    assert.strictEqual(failure(TemplateSpec.decodeUnknown("promo")).reason, "InvalidSpec")
  })
})

describe("TemplateSpec.characterCount", () => {
  it("counts code points, not UTF-16 units", () => {
    assert.strictEqual(TemplateSpec.characterCount("abc"), 3)
    assert.strictEqual(TemplateSpec.characterCount("😀👍"), 2)
    assert.strictEqual(TemplateSpec.characterCount("こんにちは"), 5)
    assert.strictEqual(TemplateSpec.characterCount("مرحبا"), 5)
    assert.strictEqual(TemplateSpec.characterCount(""), 0)
  })
})
