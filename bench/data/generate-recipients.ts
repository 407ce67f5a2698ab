// Deterministic recipient CSV generator for the sample data, the import benchmark and large tests.
// Usage: node bench/data/generate-recipients.ts --rows 10000 --out examples/data/recipients.csv [--seed 7]
import { once } from "node:events"
import { createWriteStream } from "node:fs"
import { parseArgs } from "node:util"

export interface GenerateOptions {
  readonly rows: number
  readonly seed?: number
  /** Share of rows (0..1) with an address that must be rejected. */
  readonly invalidShare?: number
  /** Share of rows (0..1) repeating an earlier address, written differently. */
  readonly duplicateShare?: number
}

// mulberry32: tiny, seedable, good enough to make reproducible files.
const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const firstNames = [
  "Ana",
  "Bruno",
  "Chloé",
  "Dmitri",
  "Émilie",
  "Fatima",
  "Gustavo",
  "Hiro",
  "Ingrid",
  "José",
  "Kwame",
  "Lucía",
  "Mateus",
  "Nadia",
  "Olu",
  "Priya",
  "Quentin",
  "Rania",
  "Søren",
  "Tomás",
  "Uma",
  "Valentina",
  "Wei",
  "Yusuf",
  "Zoë",
  "さくら",
  "فاطمة",
  "Олег",
  "प्रिया",
  "Ana 🌻",
  "李雷"
]
const cities = ["São Paulo", "New York", "Ciudad de México", "London", "Mumbai", "Madrid", "Lagos", "東京"]

// Numbers that libphonenumber's metadata accepts as valid mobiles, in several countries and writings.
const validNumber = (n: number, pick: number): { readonly e164: string; readonly written: string } => {
  const line = String(n % 10_000).padStart(4, "0")
  const mid = String(200 + (Math.floor(n / 10_000) % 800))
  switch (pick % 4) {
    case 0: {
      const e164 = `+1415${mid}${line}`
      return { e164, written: pick % 3 === 0 ? `(415) ${mid}-${line}` : e164 }
    }
    case 1: {
      const sub = String(n % 100_000_000).padStart(8, "0")
      const e164 = `+55119${sub}`
      return { e164, written: pick % 3 === 0 ? `+55 11 9${sub.slice(0, 4)}-${sub.slice(4)}` : e164 }
    }
    case 2: {
      const sub = String(n % 1_000_000).padStart(6, "0")
      const e164 = `+447400${sub}`
      return { e164, written: pick % 3 === 0 ? `+44 7400 ${sub.slice(0, 3)} ${sub.slice(3)}` : e164 }
    }
    default: {
      const sub = String(n % 100_000_000).padStart(8, "0")
      const e164 = `+5255${sub}`
      return { e164, written: e164 }
    }
  }
}
const invalidNumbers = [
  "12345",
  "+1 415 555",
  "not a number",
  "5.51199E+12",
  "+999 1234 5678",
  "+1 (000) 000-0000",
  "+44 1"
]

const quote = (value: string) => /[",\n\r]/.test(value) ? `"${value.replaceAll("\"", "\"\"")}"` : value

export function* generateLines(options: GenerateOptions): Generator<string> {
  const random = prng(options.seed ?? 7)
  const invalidShare = options.invalidShare ?? 0.02
  const duplicateShare = options.duplicateShare ?? 0.01
  const earlier: Array<string> = []
  yield "phone_number,first_name,order_id,city"
  for (let row = 0; row < options.rows; row++) {
    const dice = random()
    let phone: string
    if (dice < invalidShare) {
      phone = invalidNumbers[row % invalidNumbers.length]!
    } else if (dice < invalidShare + duplicateShare && earlier.length > 0) {
      // The same number again, written in canonical form: still one recipient.
      phone = earlier[Math.floor(random() * earlier.length)]!
    } else {
      const number = validNumber(row, Math.floor(random() * 1_000_000))
      phone = number.written
      if (earlier.length < 10_000) earlier.push(number.e164)
    }
    const name = firstNames[row % firstNames.length]!
    const order = `A-${String(100_000 + row)}`
    yield `${quote(phone)},${quote(name)},${order},${quote(cities[row % cities.length]!)}`
  }
}

const main = async () => {
  const { values } = parseArgs({
    options: { rows: { type: "string" }, out: { type: "string" }, seed: { type: "string", default: "7" } }
  })
  if (values.rows === undefined || values.out === undefined) {
    process.stderr.write("usage: node bench/data/generate-recipients.ts --rows N --out FILE [--seed S]\n")
    process.exit(2)
  }
  const out = createWriteStream(values.out)
  let buffer = ""
  for (const line of generateLines({ rows: Number(values.rows), seed: Number(values.seed) })) {
    buffer += `${line}\n`
    if (buffer.length > 1 << 16) {
      if (!out.write(buffer)) await once(out, "drain")
      buffer = ""
    }
  }
  out.end(buffer)
  await once(out, "finish")
}

if (import.meta.url === `file://${process.argv[1]}`) void main()
