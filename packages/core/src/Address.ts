/**
 * Recipient addresses: E.164 phone numbers (normalized with libphonenumber-js's max metadata) and Meta's
 * business-scoped user IDs (BSUIDs). The normalized string is a broadcast's dedupe key, so every way of writing
 * one number must normalize to the same string.
 */
import { Brand, Result, Schema } from "effect"
import {
  type CountryCode,
  isSupportedCountry,
  Metadata,
  parsePhoneNumberFromString,
  validatePhoneNumberLength,
  type ValidatePhoneNumberLengthResult
} from "libphonenumber-js/max"

/** A valid phone number in canonical E.164, e.g. `+14155550123`. */
export type PhoneNumber = string & Brand.Brand<"PhoneNumber">

/** A business-scoped user ID, e.g. `US.13491208655302741918` or `US.ENT.11815799212886844830`. */
export type Bsuid = string & Brand.Brand<"Bsuid">

export type Address = PhoneNumber | Bsuid

export type Kind = "phone" | "bsuid"

export const kind = (address: Address): Kind => address.startsWith("+") ? "phone" : "bsuid"

// Brands values that this module has just checked; everything from outside goes through the schemas or `parse`.
const asPhoneNumber = Brand.nominal<PhoneNumber>()
const asBsuid = Brand.nominal<Bsuid>()

const canonical = (wanted: Kind, example: string) =>
  Schema.makeFilter<string>((value) => {
    const parsed = parse(value)
    if (Result.isFailure(parsed)) return parsed.failure.message
    if (kind(parsed.success) !== wanted) return `expected a ${wanted === "phone" ? "phone number" : "BSUID"}`
    return parsed.success === value || `not in canonical form; write it as ${parsed.success}`
  }, {
    expected: `a ${wanted === "phone" ? "phone number in canonical E.164" : "canonical BSUID"}, such as ${example}`
  })

/** Decodes only a valid phone number already in canonical E.164; use `parse` to normalize one. */
export const PhoneNumber = Schema.String.pipe(
  Schema.check(canonical("phone", "+14155550123")),
  Schema.brand("PhoneNumber")
)

/** Decodes only a BSUID already in canonical form (upper-case country); use `parse` to normalize one. */
export const Bsuid = Schema.String.pipe(
  Schema.check(canonical("bsuid", "US.13491208655302741918")),
  Schema.brand("Bsuid")
)

/** Decodes either kind, each only in canonical form. */
export const Address = Schema.Union([PhoneNumber, Bsuid])

export class AddressError extends Schema.TaggedError<AddressError>()("AddressError", {
  input: Schema.String,
  reason: Schema.Literals([
    "Empty",
    "SpreadsheetMangled",
    "NotANumber",
    "MissingRegion",
    "UnknownRegion",
    "TooShort",
    "TooLong",
    "Invalid",
    "InvalidBsuid"
  ]),
  message: Schema.String
}) {}

type Reason = AddressError["reason"]

export interface ParseOptions {
  /** ISO 3166 alpha-2 region for numbers written without a country code, e.g. `US`. */
  readonly defaultRegion?: string | undefined
}

const REGION = /^[A-Z]{2}$/

const toCountry = (code: string): CountryCode | undefined =>
  REGION.test(code) && isSupportedCountry(code) ? code : undefined

/** Whether `code` is an upper-case ISO 3166 alpha-2 region that libphonenumber knows ("US", "BR"). */
export const isRegion = (code: string): boolean => toCountry(code) !== undefined

/**
 * Reads a phone number or a BSUID as a person or a spreadsheet wrote it.
 *
 * Phone numbers may carry spaces, dashes, dots, parentheses, a `tel:` prefix and `+` or `00` before the country
 * code. Digits written without `+` or `00` are ambiguous, and are read by this rule:
 * - without a default region they are read as country code + number (`5511987654321` is +55 11 98765-4321);
 *   failing that the country is unknown (`MissingRegion`);
 * - with a default region they are first read as a national number of that region (`4155550123` with US), and if
 *   that is not a valid number, as country code + number (`5511987654321` with US is still the Brazilian number);
 *   when both readings fail, the national reading's error is reported;
 * - a number that opens with a parenthesis, as in `(415) 555-0123`, is national only.
 */
export const parse = (input: string, options?: ParseOptions): Result.Result<Address, AddressError> =>
  parseWith(input, options, true)

/**
 * `parse` without its fast path: every phone number goes through libphonenumber's own parser. It returns what
 * `parse` returns, only slower; it exists so tests can hold the fast path to it.
 */
export const parseWithoutFastPath = (input: string, options?: ParseOptions): Result.Result<Address, AddressError> =>
  parseWith(input, options, false)

const parseWith = (
  input: string,
  options: ParseOptions | undefined,
  fast: boolean
): Result.Result<Address, AddressError> => {
  const region = options?.defaultRegion
  const country = region === undefined ? undefined : toCountry(region)
  if (region !== undefined && country === undefined) return unknownRegion(input, region)
  const written = dialled(input)
  if (Result.isFailure(written)) return Result.fail(written.failure)
  if (typeof written.success === "string") return Result.succeed(written.success)
  const { digits, international, national } = written.success
  if (international) return settle(input, readInternational(digits, fast))
  if (country === undefined) {
    const asInternational = national ? undefined : readInternational(digits, fast)
    return asInternational?._tag === "Valid" ? settle(input, asInternational) : fail(
      input,
      "MissingRegion",
      `${quote(input)} has no country code; write it with + and the country code, or pass a default region`
    )
  }
  const asNational = readNational(digits, country, fast)
  if (asNational._tag === "Valid" || national) return settle(input, asNational)
  const asInternational = readInternational(digits, fast)
  return settle(input, asInternational._tag === "Valid" ? asInternational : asNational)
}

const unknownRegion = (input: string, region: string) =>
  fail(
    input,
    "UnknownRegion",
    isRegion(region.toUpperCase())
      ? `region codes are upper case: pass "${region.toUpperCase()}", not "${region}"`
      : `"${region}" is not a region code libphonenumber knows; pass an ISO 3166 alpha-2 code such as US or BR`
  )

// ---------------------------------------------------------------------------------------------------------------
// What was written: a BSUID, or the digits of a phone number

interface Dialled {
  readonly digits: string
  /** Written with `+` or `00` before the country code. */
  readonly international: boolean
  /** Written in a national style that rules out the country-code reading. */
  readonly national: boolean
}

const PLAIN = /^\+?\d+$/
const BSUID_START = /^[A-Za-z]{2}\./
const TEL = /^tel:/i
const SCIENTIFIC = /^\+?\d+(?:[.,]\d+)?e\+?\d+$/i
const DECIMAL = /^\+?\d+[.,]0+$/
// Also the invisible characters that copying from a web page leaves behind.
const SEPARATORS = /[\s\u00AD\u200B\u2060\-\u2010-\u2015\u2212.()/]/gu
// libphonenumber reads these digits too; Arabic and Persian spreadsheets write them.
const FOREIGN_DIGITS = /[\uFF10-\uFF19\u0660-\u0669\u06F0-\u06F9]/g
const NOT_DIALLABLE = /[^\d+]/u

const dialled = (input: string): Result.Result<Dialled | Bsuid, AddressError> => {
  if (PLAIN.test(input)) return Result.succeed(digitsOf(input, false))
  const trimmed = input.trim()
  if (trimmed === "") return fail(input, "Empty", "the address is empty; fill in a phone number or a BSUID")
  if (BSUID_START.test(trimmed)) return readBsuid(input, trimmed)
  const text = trimmed.replace(TEL, "")
  if (SCIENTIFIC.test(text)) {
    return fail(
      input,
      "SpreadsheetMangled",
      `looks like a spreadsheet turned the number into scientific notation (${text}); format the column as text and export again`
    )
  }
  if (DECIMAL.test(text)) {
    return fail(
      input,
      "SpreadsheetMangled",
      `looks like a spreadsheet turned the number into a decimal (${text}); format the column as text and export again`
    )
  }
  const bare = text.replace(FOREIGN_DIGITS, westernDigit).replace(SEPARATORS, "")
  if (!PLAIN.test(bare)) {
    const stray = NOT_DIALLABLE.exec(bare)
    return fail(
      input,
      "NotANumber",
      stray === null
        ? `${quote(input)} is not a phone number; write digits with at most one + at the start`
        : `${quote(input)} is not a phone number: it contains "${
          stray[0]
        }"; write only digits, a leading + and separators such as spaces or dashes`
    )
  }
  return Result.succeed(digitsOf(bare, text.startsWith("(")))
}

const digitsOf = (plain: string, national: boolean): Dialled =>
  plain.startsWith("+")
    ? { digits: plain.slice(1), international: true, national: false }
    : plain.startsWith("00")
    ? { digits: plain.slice(2), international: true, national: false }
    : { digits: plain, international: false, national }

const westernDigit = (digit: string): string => {
  const code = digit.charCodeAt(0)
  return String(code - (code >= 0xFF10 ? 0xFF10 : code >= 0x06F0 ? 0x06F0 : 0x0660))
}

const quote = (input: string): string => `"${input.trim()}"`

const fail = (input: string, reason: Reason, message: string): Result.Result<never, AddressError> =>
  Result.fail(new AddressError({ input, reason, message }))

// ---------------------------------------------------------------------------------------------------------------
// BSUIDs

// Meta: an ISO 3166 alpha-2 country code, a dot, then up to 128 letters and digits; a parent BSUID has `ENT.`
// between the two. Meta says to send the ID back exactly as received, so only the country and ENT are upper-cased.
// The country is not checked against libphonenumber's regions: Meta's list is its own.
const BSUID = /^([A-Za-z]{2})\.(?:([Ee][Nn][Tt])\.)?([A-Za-z0-9]{1,128})$/

const readBsuid = (input: string, trimmed: string): Result.Result<Bsuid, AddressError> => {
  const match = BSUID.exec(trimmed)
  if (match === null) {
    return fail(
      input,
      "InvalidBsuid",
      `${
        quote(input)
      } is not a BSUID; a BSUID is a two-letter country code, a dot, then 1 to 128 letters or digits (US.13491208655302741918), with ENT. before them for a parent BSUID`
    )
  }
  const [, country = "", ent, id = ""] = match
  return Result.succeed(asBsuid(`${country.toUpperCase()}.${ent === undefined ? "" : "ENT."}${id}`))
}

// ---------------------------------------------------------------------------------------------------------------
// Phone numbers: what libphonenumber makes of the digits (the general path)

/** libphonenumber's verdict on a string of digits, from either path. */
type Reading =
  | { readonly _tag: "Valid"; readonly number: PhoneNumber }
  | {
    readonly _tag: "Rejected"
    /** What validatePhoneNumberLength says; undefined when the length is possible. */
    readonly length: ValidatePhoneNumberLengthResult | undefined
    /** The region (or +calling code) libphonenumber placed the number in, when it got that far. */
    readonly country: string | undefined
  }

const valid = (number: string): Reading => ({ _tag: "Valid", number: asPhoneNumber(number) })

const rejected = (length: ValidatePhoneNumberLengthResult | undefined, country: string | undefined): Reading => ({
  _tag: "Rejected",
  length,
  country
})

const readNational = (digits: string, country: CountryCode, fast: boolean): Reading =>
  (fast ? fastNational(digits, country) : undefined) ?? libphonenumber(digits, country)

const readInternational = (digits: string, fast: boolean): Reading =>
  (fast ? fastInternational(digits) : undefined) ?? libphonenumber(`+${digits}`, undefined)

const libphonenumber = (text: string, country: CountryCode | undefined): Reading => {
  const number = parsePhoneNumberFromString(text, country)
  if (number?.isValid()) return valid(number.number)
  return rejected(
    validatePhoneNumberLength(text, country),
    number === undefined ? undefined : number.country ?? `+${number.countryCallingCode}`
  )
}

const settle = (input: string, reading: Reading): Result.Result<PhoneNumber, AddressError> => {
  if (reading._tag === "Valid") return Result.succeed(reading.number)
  const what = `${reading.country ?? "phone"} number`
  const numbers = reading.country === undefined ? "a phone number" : `${reading.country} numbers`
  switch (reading.length) {
    case "NOT_A_NUMBER":
      return fail(input, "NotANumber", `${quote(input)} is not a phone number; write it with digits`)
    case "INVALID_COUNTRY":
      return fail(
        input,
        "Invalid",
        `${quote(input)} does not start with a country calling code; check the digits after the +`
      )
    case "TOO_SHORT":
      return fail(input, "TooShort", `${quote(input)} has too few digits for ${numbers}; check for missing digits`)
    case "TOO_LONG":
      return fail(
        input,
        "TooLong",
        `${quote(input)} has too many digits for ${numbers}; check for extra digits or two numbers in one cell`
      )
    case "INVALID_LENGTH":
      return fail(input, "Invalid", `${quote(input)} has a number of digits that no ${what} has; check the digits`)
    case undefined:
      return fail(input, "Invalid", `${quote(input)} is not a valid ${what}; check the digits`)
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Phone numbers: the fast path
//
// libphonenumber builds a RegExp from its metadata for every match it tries, which holds parse + isValid near
// 125k numbers/s, and an invalid +1 number near 12k/s (it tries all 25 NANP regions, twice). This path takes the
// same steps as libphonenumber's parse, isValid and validatePhoneNumberLength for a string of digits (country code,
// national prefix, which country of those sharing a calling code, number types, possible lengths) with each RegExp
// built once, and reaches the same verdict. The rare branches it does not copy (fewer than 3 or more than 20
// digits, an IDD prefix in national input) it leaves to libphonenumber.

// The runtime Metadata has more methods than libphonenumber-js declares; these are the ones read here.
interface MetadataView {
  selectNumberingPlan(countryOrCallingCode: string): void
  hasCallingCode(callingCode: string): boolean | undefined
  getCountryCodesForCallingCode(callingCode: string): ReadonlyArray<string> | undefined
  countryCallingCode(): string
  IDDPrefix(): string | undefined
  nationalNumberPattern(): string
  possibleLengths(): ReadonlyArray<number> | undefined
  /** 0 where the compact metadata leaves the slot empty. */
  nationalPrefixForParsing(): string | number | undefined
  nationalPrefixTransformRule(): string | undefined
  leadingDigits(): string | undefined
  hasTypes(): boolean
  type(name: string): { pattern(): string; possibleLengths(): ReadonlyArray<number> | undefined } | undefined
}

const metadata = new Metadata() as unknown as MetadataView

const TYPES = [
  "FIXED_LINE",
  "MOBILE",
  "PREMIUM_RATE",
  "TOLL_FREE",
  "SHARED_COST",
  "VOIP",
  "PERSONAL_NUMBER",
  "PAGER",
  "UAN",
  "VOICEMAIL"
]

interface NumberType {
  readonly pattern: RegExp
  readonly lengths: ReadonlyArray<number> | undefined
}

interface Plan {
  /** The region whose plan this is; for a bare calling code, its one region, if it has exactly one. */
  readonly region: string | undefined
  readonly callingCode: string
  readonly idd: RegExp | undefined
  readonly nationalNumber: RegExp
  readonly possibleLengths: ReadonlyArray<number> | undefined
  /** Empty when the metadata has no number types: then the national number pattern alone decides. */
  readonly types: ReadonlyArray<NumberType>
  readonly leadingDigits: RegExp | undefined
  readonly nationalPrefix: RegExp | undefined
  readonly nationalPrefixTransform: string | undefined
}

interface CallingCode {
  /** The plan libphonenumber picks for the bare calling code: its main region's, or a non-geographic one. */
  readonly main: Plan
  /** The regions sharing the code, in libphonenumber's order; empty when there is only one. */
  readonly countries: ReadonlyArray<Plan>
}

const whole = (pattern: string) => new RegExp(`^(?:${pattern})$`)

const compilePlan = (countryOrCallingCode: string, region: string | undefined): Plan => {
  metadata.selectNumberingPlan(countryOrCallingCode)
  const idd = metadata.IDDPrefix()
  const nationalPrefix = metadata.nationalPrefixForParsing()
  const leadingDigits = metadata.leadingDigits()
  const types = metadata.hasTypes()
    ? TYPES.flatMap((name) => {
      const type = metadata.type(name)
      return type === undefined || !type.pattern()
        ? []
        : [{ pattern: whole(type.pattern()), lengths: type.possibleLengths() }]
    })
    : []
  return {
    region,
    callingCode: metadata.countryCallingCode(),
    idd: idd ? new RegExp(idd) : undefined,
    nationalNumber: whole(metadata.nationalNumberPattern()),
    possibleLengths: metadata.possibleLengths(),
    types,
    leadingDigits: leadingDigits ? new RegExp(leadingDigits) : undefined,
    nationalPrefix: nationalPrefix ? new RegExp(`^(?:${nationalPrefix})`) : undefined,
    nationalPrefixTransform: metadata.nationalPrefixTransformRule() || undefined
  }
}

const callingCodes = new Map<string, CallingCode | null>()

const callingCode = (code: string): CallingCode | null => {
  const cached = callingCodes.get(code)
  if (cached !== undefined) return cached
  const shared = metadata.getCountryCodesForCallingCode(code) ?? []
  const compiled = metadata.hasCallingCode(code)
    ? {
      main: compilePlan(code, shared.length === 1 ? shared[0] : undefined),
      countries: shared.length > 1 ? shared.map((country) => compilePlan(country, country)) : []
    }
    : null
  callingCodes.set(code, compiled)
  return compiled
}

const regions = new Map<CountryCode, Plan>()

const regionPlan = (country: CountryCode): Plan => {
  const cached = regions.get(country)
  if (cached !== undefined) return cached
  const compiled = compilePlan(country, country)
  regions.set(country, compiled)
  return compiled
}

const hasType = (plan: Plan, national: string): boolean =>
  plan.nationalNumber.test(national) &&
  plan.types.some((type) =>
    (type.lengths === undefined || type.lengths.includes(national.length)) && type.pattern.test(national)
  )

const isValidIn = (plan: Plan, national: string): boolean =>
  plan.types.length === 0 ? plan.nationalNumber.test(national) : hasType(plan, national)

// libphonenumber's getCountryByCallingCode; undefined only where regions share the code and none claims it.
const countryOf = (code: CallingCode, national: string): Plan | undefined =>
  code.countries.length === 0 ?
    code.main :
    code.countries.find((plan) =>
      plan.leadingDigits === undefined ? hasType(plan, national) : national.search(plan.leadingDigits) === 0
    )

// libphonenumber's checkNumberLength; undefined when the length is possible.
const lengthIn = (plan: Plan, length: number): ValidatePhoneNumberLengthResult | undefined => {
  const lengths = plan.possibleLengths
  if (lengths === undefined) return undefined
  const shortest = lengths[0]
  const longest = lengths[lengths.length - 1]
  if (length === shortest) return undefined
  if (shortest !== undefined && length < shortest) return "TOO_SHORT"
  if (longest !== undefined && length > longest) return "TOO_LONG"
  return lengths.includes(length) ? undefined : "INVALID_LENGTH"
}

// libphonenumber's extractNationalNumber: strips a national prefix (0, a carrier code, Argentina's 15) when what
// is left still looks like a number of the plan, also after a country code (+44 020 → +44 20).
const withoutNationalPrefix = (code: CallingCode, plan: Plan, digits: string): string => {
  const prefix = plan.nationalPrefix
  const match = prefix?.exec(digits)
  if (prefix === undefined || match === undefined || match === null) return digits
  const captured = match.length > 1 && Boolean(match[match.length - 1])
  const national = plan.nationalPrefixTransform !== undefined && captured
    ? digits.replace(prefix, plan.nationalPrefixTransform)
    : digits.slice(match[0].length)
  if (national === digits) return digits
  if (plan.nationalNumber.test(digits) && !plan.nationalNumber.test(national)) return digits
  if (plan.possibleLengths !== undefined) {
    const length = lengthIn(countryOf(code, national) ?? plan, national.length)
    if (length === "TOO_SHORT" || length === "INVALID_LENGTH") return digits
  }
  return national
}

// libphonenumber's parse from the calling code on, then isValid and validatePhoneNumberLength. `plan` is the one
// selected before the exact region is known: the calling code's main plan, or the default region's.
const readIn = (code: CallingCode, plan: Plan, fallbackCountry: string, digits: string): Reading => {
  const national = withoutNationalPrefix(code, plan, digits)
  if (national.length < 2) return rejected("TOO_SHORT", undefined)
  if (national.length > 17) return rejected("TOO_LONG", undefined)
  const exact = countryOf(code, national)
  const numberPlan = exact ?? plan
  return isValidIn(numberPlan, national)
    ? valid(`+${plan.callingCode}${national}`)
    : rejected(lengthIn(numberPlan, national.length), exact?.region ?? fallbackCountry)
}

const fastInternational = (digits: string): Reading | undefined => {
  if (digits.length < 3 || digits.length > 20) return undefined
  // libphonenumber looks for no calling code after "+0".
  for (let length = 1; length <= 3 && !digits.startsWith("0"); length++) {
    const code = callingCode(digits.slice(0, length))
    if (code !== null) return readIn(code, code.main, `+${code.main.callingCode}`, digits.slice(length))
  }
  return rejected("INVALID_COUNTRY", undefined)
}

// Digits that open with the region's calling code are read with that code when libphonenumber would
// (extractCountryCallingCodeFromInternationalNumberWithoutPlusSign); digits that open with its IDD are left to it.
const fastNational = (digits: string, country: CountryCode): Reading | undefined => {
  const plan = regionPlan(country)
  const code = callingCode(plan.callingCode)
  const idd = plan.idd?.exec(digits)
  const opensWithIdd = idd !== undefined && idd !== null && idd.index === 0 && idd[0] !== ""
  if (code === null || digits.length < 2 || digits.length > 20 || opensWithIdd) return undefined
  if (digits.startsWith(plan.callingCode)) {
    const shorter = digits.slice(plan.callingCode.length)
    const national = withoutNationalPrefix(code, plan, digits)
    const withCode = (!plan.nationalNumber.test(national) &&
      plan.nationalNumber.test(withoutNationalPrefix(code, plan, shorter))) ||
      lengthIn(plan, national.length) === "TOO_LONG"
    if (withCode) return readIn(code, code.main, `+${plan.callingCode}`, shorter)
  }
  return readIn(code, plan, country, digits)
}
