import * as Address from "@crier/core/Address"
import { assert, describe, it } from "@effect/vitest"
import { Result, Schema } from "effect"
import { type CountryCode, getCountries, parsePhoneNumberFromString } from "libphonenumber-js/max"
import examples from "libphonenumber-js/mobile/examples"
import { vi } from "vitest"

// Counts libphonenumber's parser calls, so a test can tell that the fast path answered alone.
vi.mock("libphonenumber-js/max", async (importOriginal) => {
  const original = await importOriginal<typeof import("libphonenumber-js/max")>()
  return { ...original, parsePhoneNumberFromString: vi.fn(original.parsePhoneNumberFromString) }
})

const ok = (input: string, options?: Address.ParseOptions): Address.Address => {
  const result = Address.parse(input, options)
  if (Result.isFailure(result)) assert.fail(`${JSON.stringify(input)}: ${result.failure.message}`)
  return result.success
}

const error = (input: string, options?: Address.ParseOptions): Address.AddressError => {
  const result = Address.parse(input, options)
  if (Result.isSuccess(result)) assert.fail(`${JSON.stringify(input)} parsed as ${result.success}`)
  return result.failure
}

const US = { defaultRegion: "US" }

describe("Address.parse: phone numbers", () => {
  it("writes one number the same way however it was written", () => {
    const ways: ReadonlyArray<readonly [string, Address.ParseOptions?]> = [
      ["+14155550123"],
      ["+1 415-555-0123"],
      ["  +1 (415) 555.0123  "],
      ["+1\u00a0415\u00a0555\u00a00123"],
      ["+1\u200b415\u200b555\u200b0123"],
      ["+1 415 555 0123\t"],
      ["tel:+1-415-555-0123"],
      ["TEL:+14155550123"],
      ["001 415 555 0123"],
      ["0014155550123"],
      ["14155550123"],
      ["1-415-555-0123"],
      ["(415) 555-0123", US],
      ["415.555.0123", US],
      ["4155550123", US],
      ["14155550123", US],
      ["+1 415 555 0123", { defaultRegion: "BR" }],
      ["011 1 415 555 0123", US],
      ["١٤١٥٥٥٥٠١٢٣"],
      ["+１ ４１５ ５５５ ０１２３"]
    ]
    for (const [input, options] of ways) assert.strictEqual(ok(input, options), "+14155550123", input)
  })

  it("normalizes other countries, dropping a national prefix written after the country code", () => {
    assert.strictEqual(ok("+44 20 7123 4567"), "+442071234567")
    assert.strictEqual(ok("+44 (0)20 7123 4567"), "+442071234567")
    assert.strictEqual(ok("020 7123 4567", { defaultRegion: "GB" }), "+442071234567")
    assert.strictEqual(ok("0044 20 7123 4567", { defaultRegion: "GB" }), "+442071234567")
    assert.strictEqual(ok("(11) 98765-4321", { defaultRegion: "BR" }), "+5511987654321")
    assert.strictEqual(ok("+55 11 98765-4321"), "+5511987654321")
    assert.strictEqual(ok("+54 9 11 1234-5678"), "+5491112345678")
    assert.strictEqual(ok("011 15-1234-5678", { defaultRegion: "AR" }), "+5491112345678")
  })

  it("reads digits without + as country code first when there is no default region", () => {
    assert.strictEqual(ok("5511987654321"), "+5511987654321")
    assert.strictEqual(ok("447911123456"), "+447911123456")
    // Without a region, ten US digits are not a number anywhere: ask for the region.
    assert.strictEqual(error("4155550123").reason, "MissingRegion")
  })

  it("with a default region, reads digits without + nationally first, then as country code", () => {
    assert.strictEqual(ok("4155550123", US), "+14155550123")
    assert.strictEqual(ok("5511987654321", US), "+5511987654321")
    // Valid both ways: the national reading wins when a region is given.
    assert.strictEqual(ok("3108002200"), "+318002200")
    assert.strictEqual(ok("3108002200", US), "+13108002200")
  })

  it("asks for the country code or a default region when the number is national", () => {
    const failure = error("(415) 555-0123")
    assert.strictEqual(failure.reason, "MissingRegion")
    assert.strictEqual(failure.input, "(415) 555-0123")
    assert.match(failure.message, /country code/)
    assert.match(failure.message, /default region/)
    // An area code in parentheses is national, so it is never re-read with a country code.
    assert.strictEqual(error("(55) 11 98765-4321", US).reason, "TooLong")
  })

  it("rejects a default region it does not know", () => {
    const unknown = error("4155550123", { defaultRegion: "XX" })
    assert.strictEqual(unknown.reason, "UnknownRegion")
    assert.match(unknown.message, /"XX"/)
    const lower = error("4155550123", { defaultRegion: "us" })
    assert.strictEqual(lower.reason, "UnknownRegion")
    assert.match(lower.message, /"US"/)
    assert.strictEqual(error("+14155550123", { defaultRegion: "USA" }).reason, "UnknownRegion")
  })

  it("names numbers a spreadsheet mangled", () => {
    for (const input of ["5.51199E+12", "5,51199E+12", "1.41555E+10", "1.41555e10", "+5.51199E+12", "14155550123.0"]) {
      const failure = error(input)
      assert.strictEqual(failure.reason, "SpreadsheetMangled", input)
      assert.match(failure.message, /spreadsheet/)
      assert.match(failure.message, /as text/)
    }
    assert.match(error("5.51199E+12").message, /scientific notation \(5\.51199E\+12\)/)
    assert.match(error("14155550123.0", US).message, /decimal \(14155550123\.0\)/)
  })

  it("rejects letters, emoji, other scripts and stray plus signs as not a number", () => {
    const inputs = [
      "hello",
      "abc123",
      "+1 415 555 0123 ext 12",
      "1-800-FLOWERS",
      "📞 +1 415 555 0123",
      "📞📞📞",
      "телефон",
      "電話番号",
      "+",
      "--",
      "()",
      "1+415",
      "++14155550123",
      "+1 415 555 0123, +1 415 555 0124"
    ]
    for (const input of inputs) assert.strictEqual(error(input, US).reason, "NotANumber", input)
    assert.match(error("電話番号").message, /"電"/)
    assert.match(error("📞📞").message, /"📞"/)
  })

  it("rejects empty input", () => {
    for (const input of ["", "   ", "\t\n"]) assert.strictEqual(error(input).reason, "Empty")
  })

  it("tells too short and too long apart from invalid", () => {
    assert.strictEqual(error("+1 415 555").reason, "TooShort")
    assert.strictEqual(error("+1").reason, "TooShort")
    assert.strictEqual(error("123", US).reason, "TooShort")
    assert.strictEqual(error("+1 415 555 01234").reason, "TooLong")
    assert.strictEqual(error("+44 1234 5678 9012 3456 78").reason, "TooLong")
    assert.strictEqual(error("+55 11 98765 43210").reason, "TooLong")
    assert.match(error("+1 415 555").message, /too few digits for \+1 numbers/)
    assert.match(error("123", US).message, /too few digits for US numbers/)
  })

  it("rejects numbers of the right shape that libphonenumber's metadata rules out", () => {
    // NANP exchange codes never start with 0; 555 is not an area code; Brazilian mobiles have 9 digits after
    // the area code; +999 is no country's calling code.
    const inputs = ["+1 415 000 0000", "+1 555 555 0123", "+55 11 8765 4321", "+999 123 456", "+44 0000 000000"]
    for (const input of inputs) assert.strictEqual(error(input).reason, "Invalid", input)
    assert.match(error("+999 123 456").message, /country calling code/)
  })
})

describe("Address.parse: BSUIDs", () => {
  it("reads BSUIDs and upper-cases their country and ENT", () => {
    assert.strictEqual(ok("US.13491208655302741918"), "US.13491208655302741918")
    assert.strictEqual(ok(" us.13491208655302741918 "), "US.13491208655302741918")
    assert.strictEqual(ok("US.ENT.11815799212886844830"), "US.ENT.11815799212886844830")
    assert.strictEqual(ok("br.ent.abc123"), "BR.ENT.abc123")
    // Meta says to send the ID back exactly as received, so its letters keep their case.
    assert.strictEqual(ok("US.AbC123"), "US.AbC123")
    assert.strictEqual(ok(`US.${"a".repeat(128)}`), `US.${"a".repeat(128)}`)
  })

  it("rejects anything else after the dot", () => {
    const inputs = [
      "US.12-34",
      "US.",
      "US.ENT.",
      "US.ENT.a.b",
      "US.abc def",
      "US.ñandú",
      "US.123📞",
      `US.${"a".repeat(129)}`
    ]
    for (const input of inputs) {
      const failure = error(input)
      assert.strictEqual(failure.reason, "InvalidBsuid", input)
      assert.match(failure.message, /two-letter country code/)
    }
  })

  it("tells the two kinds apart", () => {
    assert.strictEqual(Address.kind(ok("+14155550123")), "phone")
    assert.strictEqual(Address.kind(ok("US.13491208655302741918")), "bsuid")
    assert.strictEqual(Address.kind(ok("US.ENT.abc")), "bsuid")
  })
})

describe("Address.isRegion", () => {
  it("knows upper-case ISO 3166 alpha-2 regions only", () => {
    for (const code of ["US", "BR", "GB", "IN", "XK"]) assert.isTrue(Address.isRegion(code), code)
    for (const code of ["us", "XX", "USA", "001", "", "U"]) assert.isFalse(Address.isRegion(code), code)
  })
})

describe("Address schemas", () => {
  it("decodes canonical E.164 and nothing else as a PhoneNumber", () => {
    const decode = Schema.decodeUnknownSync(Address.PhoneNumber)
    assert.strictEqual(decode("+14155550123"), "+14155550123")
    assert.strictEqual(decode("+5511987654321"), "+5511987654321")
    for (const input of ["+1 415 555 0123", "14155550123", " +14155550123", "+4402071234567", "+14150000000"]) {
      assert.throws(() => decode(input), undefined, undefined, input)
    }
    assert.throws(() => decode("US.13491208655302741918"), /expected a phone number/)
    assert.throws(() => decode(14155550123))
    assert.strictEqual(Schema.encodeSync(Address.PhoneNumber)(decode("+14155550123")), "+14155550123")
  })

  it("decodes canonical BSUIDs and nothing else as a Bsuid", () => {
    const decode = Schema.decodeUnknownSync(Address.Bsuid)
    assert.strictEqual(decode("US.ENT.abc123"), "US.ENT.abc123")
    assert.throws(() => decode("us.abc123"), /US\.abc123/)
    assert.throws(() => decode("+14155550123"))
  })

  it("decodes either kind as an Address", () => {
    const decode = Schema.decodeUnknownSync(Address.Address)
    assert.strictEqual(decode("+14155550123"), "+14155550123")
    assert.strictEqual(decode("US.13491208655302741918"), "US.13491208655302741918")
    for (const input of ["nope", "+1 415 555 0123", "us.123", ""]) {
      assert.throws(() => decode(input), undefined, undefined, input)
    }
  })

  it("keeps the error's fields for callers and for the wire", () => {
    const failure = error("5.51199E+12")
    assert.strictEqual(failure._tag, "AddressError")
    assert.strictEqual(failure.input, "5.51199E+12")
    const encoded = Schema.encodeSync(Address.AddressError)(failure)
    assert.deepStrictEqual(encoded, {
      _tag: "AddressError",
      input: "5.51199E+12",
      reason: "SpreadsheetMangled",
      message: failure.message
    })
  })
})

// ---------------------------------------------------------------------------------------------------------------
// The fast path against libphonenumber's own parser

// A fixed-seed generator, so a failure can be replayed.
const generator = (seed: number) => {
  let state = seed
  return (below: number): number => {
    state = (state * 1103515245 + 12345) % 2147483648
    return state % below
  }
}

interface Case {
  readonly input: string
  readonly options?: Address.ParseOptions
}

// Every region's example mobile number, as is and mutated (a wrong digit, one digit less or more, a random tail),
// written as E.164, with 00, as bare international digits, as national digits and with a trunk prefix 0; and
// random digits of every length.
const generatedCases = (): ReadonlyArray<Case> => {
  const random = generator(20260521)
  const digit = () => String(random(10))
  return getCountries().flatMap((country: CountryCode) => {
    const example = examples[country]
    const number = example === undefined ? undefined : parsePhoneNumberFromString(example, country)
    if (number === undefined) return []
    const code = number.countryCallingCode
    const national = number.nationalNumber
    const at = random(national.length)
    const variants = [
      national,
      national.slice(0, -1) + digit(),
      national.slice(0, at) + digit() + national.slice(at + 1),
      national.slice(0, at) + national.slice(at + 1),
      national + digit(),
      national.slice(0, 2) + Array.from({ length: national.length - 2 }, digit).join("")
    ]
    const region = { defaultRegion: country }
    const noise = Array.from({ length: 1 + random(20) }, digit).join("")
    const noisy: ReadonlyArray<Case> = [
      { input: noise },
      { input: `+${noise}` },
      { input: noise, options: region },
      { input: `${code}${noise}`, options: region }
    ]
    return noisy.concat(variants.flatMap((variant): ReadonlyArray<Case> => [
      { input: `+${code}${variant}` },
      { input: `00${code}${variant}` },
      { input: `${code}${variant}` },
      { input: `${code}${variant}`, options: region },
      { input: variant, options: region },
      { input: `0${variant}`, options: region },
      { input: `+${code}0${variant}` },
      { input: variant, options: US }
    ]))
  })
}

const summary = (result: Result.Result<Address.Address, Address.AddressError>): string =>
  Result.isSuccess(result) ? `ok ${result.success}` : `${result.failure.reason}: ${result.failure.message}`

describe("Address fast path", () => {
  const cases = generatedCases()

  it("gives libphonenumber's answer on thousands of generated numbers", () => {
    const mismatches = cases.flatMap(({ input, options }) => {
      const fast = summary(Address.parse(input, options))
      const general = summary(Address.parseWithoutFastPath(input, options))
      return fast === general ? [] : [`${input} ${options?.defaultRegion ?? ""}: fast ${fast} / general ${general}`]
    })
    assert.isAbove(cases.length, 10_000)
    assert.deepStrictEqual(mismatches.slice(0, 20), [])
    const valid = cases.filter(({ input, options }) => Result.isSuccess(Address.parse(input, options))).length
    assert.isAbove(valid, cases.length / 5, "enough valid numbers")
    assert.isAbove(cases.length - valid, cases.length / 5, "enough invalid numbers")
  })

  it("normalizes to a fixed point", () => {
    for (const { input, options } of cases) {
      const result = Address.parse(input, options)
      if (Result.isSuccess(result)) assert.strictEqual(ok(result.success), result.success, input)
    }
  })

  it("answers E.164, valid or not, and plain national digits without libphonenumber's parser", () => {
    const parser = vi.mocked(parsePhoneNumberFromString)
    const canonical = cases.flatMap(({ input, options }) => {
      const result = Address.parseWithoutFastPath(input, options)
      return Result.isSuccess(result) ? [result.success] : []
    })
    const invalid = cases.filter(({ input, options }) =>
      /^\+\d{3,20}$/.test(input) && Result.isFailure(Address.parseWithoutFastPath(input, options))
    )
    const national = getCountries().flatMap((country) => {
      const example = examples[country]
      return example === undefined ? [] : [{ input: example, options: { defaultRegion: country } }]
    })
    parser.mockClear()
    for (const address of canonical) ok(address)
    for (const { input } of invalid) error(input)
    assert.isAbove(invalid.length, 1000)
    assert.strictEqual(parser.mock.calls.length, 0)
    for (const { input, options } of national) ok(input, options)
    assert.isBelow(parser.mock.calls.length, national.length / 50)
  })
})
