// Offline style lint for library code: the rules from ARCHITECTURE.md ("Style") that a formatter cannot see.
// The CLI's edge (packages/cli/src/bin.ts) may print; everything else goes through Effect services.
import { readdirSync, readFileSync, statSync } from "node:fs"
import { join, relative } from "node:path"

const root = new URL("..", import.meta.url).pathname
const rules: ReadonlyArray<{ readonly pattern: RegExp; readonly why: string }> = [
  { pattern: /\bDate\.now\s*\(/, why: "use Clock / DateTime so tests can drive time" },
  { pattern: /\bnew Date\s*\(\s*\)/, why: "use Clock / DateTime so tests can drive time" },
  { pattern: /\bconsole\./, why: "use Console or Effect.log" },
  { pattern: /\btry\s*\{/, why: "use Effect.try / Result instead of try/catch" },
  { pattern: /\basync\s+(function\b|\(|[A-Za-z_$][\w$]*\s*=>)/, why: "use Effect instead of async/await" },
  { pattern: /\bawait\s/, why: "use Effect instead of async/await" }
]
const allowed = new Set(["packages/cli/src/bin.ts"])

const walk = (dir: string): Array<string> =>
  readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    if (name === "node_modules" || name === "dist") return []
    return statSync(path).isDirectory() ? walk(path) : path.endsWith(".ts") ? [path] : []
  })

const packagesDir = join(root, "packages")
const files = readdirSync(packagesDir).flatMap((pkg) => {
  const src = join(packagesDir, pkg, "src")
  return statSync(src, { throwIfNoEntry: false })?.isDirectory() ? walk(src) : []
})

const problems = files.flatMap((file) => {
  const rel = relative(root, file)
  if (allowed.has(rel)) return []
  return readFileSync(file, "utf8").split("\n").flatMap((line, index) =>
    line.trimStart().startsWith("//") || line.trimStart().startsWith("*")
      ? []
      : rules.filter((rule) => rule.pattern.test(line)).map((rule) =>
        `${rel}:${index + 1}: ${rule.why}\n  ${line.trim()}`
      )
  )
})

if (problems.length > 0) {
  process.stderr.write(`${problems.join("\n")}\n${problems.length} style problem(s) in library code\n`)
  process.exit(1)
}
process.stdout.write(`style: ${files.length} library files checked, no problems\n`)
