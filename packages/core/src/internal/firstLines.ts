/**
 * The import's dedupe set: the line each accepted address was first seen on.
 *
 * A million addresses in a `Map` cost about 100 MB and a million objects for the GC to trace on every major
 * collection. A phone number in E.164 has at most 15 digits, so it is exact as a double: phone numbers live in an
 * open-addressing table in one typed array (16 bytes a slot, at most half full) instead. BSUIDs use a `Map`.
 */
import type * as Address from "../Address.ts"

export interface FirstLines {
  readonly get: (address: Address.Address) => number | undefined
  readonly set: (address: Address.Address, line: number) => void
}

const PLUS = 0x2b
const initialCapacity = 1 << 12

// E.164 allows 15 digits; doubles are exact to 2^53, about 9 × 10^15.
const maxDigits = 15

// The digits of a phone number as a number; NaN for a BSUID (or a number too long to be exact).
const numberOf = (address: string): number => {
  if (address.charCodeAt(0) !== PLUS || address.length > maxDigits + 1) return NaN
  let value = 0
  for (let i = 1; i < address.length; i++) value = value * 10 + (address.charCodeAt(i) - 0x30)
  return value
}

// Spreads the low and high 32 bits over the table; numbers of one country share their leading digits.
const hash = (key: number): number => {
  const low = key >>> 0
  const high = (key / 4294967296) >>> 0
  let h = Math.imul(low ^ Math.imul(high, 0x9e3779b1), 0x85ebca6b)
  h ^= h >>> 13
  return Math.imul(h, 0xc2b2ae35) ^ (h >>> 16)
}

export const make = (): FirstLines => {
  // Slot i holds a number at 2i and its line at 2i + 1, so a lookup touches one cache line. 0 marks an empty slot:
  // no phone number is +0.
  let table = new Float64Array(initialCapacity * 2)
  let mask = initialCapacity - 1
  let size = 0
  const bsuids = new Map<string, number>()

  // Where `key` is, or the empty slot where it goes: the index of its number in `table`.
  const find = (key: number): number => {
    let slot = hash(key) & mask
    while (table[slot * 2] !== 0 && table[slot * 2] !== key) slot = (slot + 1) & mask
    return slot * 2
  }

  const grow = () => {
    const old = table
    table = new Float64Array(old.length * 2)
    mask = old.length - 1
    for (let i = 0; i < old.length; i += 2) {
      const key = old[i]!
      if (key === 0) continue
      const at = find(key)
      table[at] = key
      table[at + 1] = old[i + 1]!
    }
  }

  return {
    get: (address) => {
      const key = numberOf(address)
      if (Number.isNaN(key)) return bsuids.get(address)
      const at = find(key)
      return table[at] === 0 ? undefined : table[at + 1]
    },
    set: (address, line) => {
      const key = numberOf(address)
      if (Number.isNaN(key)) {
        bsuids.set(address, line)
        return
      }
      if ((size + 1) * 4 > table.length) grow()
      const at = find(key)
      if (table[at] === 0) size++
      table[at] = key
      table[at + 1] = line
    }
  }
}
