// The `crier` command as a person runs it: real child processes, each test in its own folder with its own SQLite
// store and a clean environment (no provider setting leaks in from the machine), emulators in the test process.
import * as TemplateSpec from "@crier/core/TemplateSpec"
import type { MetaEmulator } from "@crier/testkit"
import { Duration, Effect, Result, Schedule, type Scope } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

export const bin = join(import.meta.dirname, "..", "src", "bin.ts")

export interface Run {
  readonly status: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

export type Env = Readonly<Record<string, string>>

/** A folder of its own: a store in it, files written to it. */
export interface Workspace {
  readonly dir: string
  readonly store: string
  readonly env: (extra?: Env) => Env
  readonly file: (name: string, content: string) => string
}

export const workspace = (): Workspace => {
  const dir = mkdtempSync(join(tmpdir(), "crier-cli-"))
  const store = `sqlite:${join(dir, "crier.db")}`
  return {
    dir,
    store,
    env: (extra = {}) => ({ PATH: process.env.PATH ?? "", HOME: dir, NO_COLOR: "1", CRIER_STORE: store, ...extra }),
    file: (name, content) => {
      const path = join(dir, name)
      writeFileSync(path, content)
      return path
    }
  }
}

/** A started command: its output so far, and its end. Killed when the scope closes, if still running. */
export interface Started {
  readonly child: ChildProcess
  readonly output: () => { readonly stdout: string; readonly stderr: string }
  readonly exit: Effect.Effect<Run>
}

export const start = (
  args: ReadonlyArray<string>,
  options: { readonly env: Env; readonly cwd: string }
): Effect.Effect<Started, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(process.execPath, [bin, ...args], { env: options.env, cwd: options.cwd })
      let stdout = ""
      let stderr = ""
      child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
      child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
      const ended = new Promise<Run>((resolve) =>
        child.on("close", (status, signal) => resolve({ status, signal, stdout, stderr }))
      )
      return {
        child,
        output: () => ({ stdout, stderr }),
        exit: Effect.promise(() => ended)
      } satisfies Started
    }),
    (started) => Effect.sync(() => started.child.exitCode === null && started.child.kill("SIGKILL"))
  )

/** Runs a command to its end. */
export const crier = (args: ReadonlyArray<string>, options: { readonly env: Env; readonly cwd: string }) =>
  Effect.scoped(Effect.flatMap(start(args, options), (started) => started.exit))

/** Waits until `check` holds (polling), or fails after `timeout`. */
export const eventually = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  check: (a: A) => boolean,
  timeout: Duration.Input = Duration.seconds(15)
) =>
  effect.pipe(
    Effect.repeat({ schedule: Schedule.spaced(Duration.millis(150)), until: check }),
    Effect.timeoutOrElse({
      duration: timeout,
      orElse: () => Effect.die(new Error(`not so within ${Duration.format(Duration.fromInputUnsafe(timeout))}`))
    })
  )

/** `status --json`, parsed. */
export const statusOf = (ws: Workspace, id: string, env?: Env) =>
  Effect.map(crier(["status", id, "--json"], { env: env ?? ws.env(), cwd: ws.dir }), (run) => {
    if (run.status !== 0) throw new Error(`status failed: ${run.stderr}`)
    return JSON.parse(run.stdout) as Summary
  })

export interface Summary {
  readonly id: string
  readonly name: string
  readonly transport: string
  readonly status: string
  readonly total: number
  readonly pending: number
  readonly submitting: number
  readonly accepted: number
  readonly sent: number
  readonly delivered: number
  readonly read: number
  readonly replied: number
  readonly failed: number
  readonly skipped: number
  readonly in_doubt: number
  readonly delivery_rate: number
  readonly read_rate: number
  readonly response_rate: number
  readonly started_at: string | null
  readonly completed_at: string | null
  readonly failures: ReadonlyArray<{ readonly reason: string; readonly code: string | null; readonly count: number }>
}

export const summaryKeys = [
  "accepted",
  "completed_at",
  "delivered",
  "delivery_rate",
  "failed",
  "failures",
  "id",
  "in_doubt",
  "name",
  "pending",
  "read",
  "read_rate",
  "replied",
  "response_rate",
  "sent",
  "skipped",
  "started_at",
  "status",
  "submitting",
  "total",
  "transport"
]

const countKeys = [
  "pending",
  "submitting",
  "accepted",
  "sent",
  "delivered",
  "read",
  "replied",
  "failed",
  "skipped",
  "in_doubt"
] as const

/** The per-status counts add up to the total. */
export const countsAddUp = (summary: Summary): boolean =>
  countKeys.reduce((sum, key) => sum + summary[key], 0) === summary.total

/** `n` distinct US numbers, from `from`. */
export const phone = (i: number) => `+1415555${String(1000 + i).padStart(4, "0")}`

/** A recipient file for a one-parameter template. */
export const csv = (count: number, from = 0) =>
  ["phone_number,first_name", ...Array.from({ length: count }, (_, i) => `${phone(from + i)},Name ${from + i}`)].join(
    "\n"
  ) + "\n"

export const template = Result.getOrThrow(
  TemplateSpec.fromText("Hi {{first_name}}, your order ships today.", { name: "order_update", language: "en_US" })
)

export const templateFlags = [
  "--template",
  template.name,
  "--language",
  template.language,
  "--template-text",
  template.bodyText!
]

/** Emulator lifecycles of a few milliseconds. */
export const fastMeta: MetaEmulator.Timing = {
  sent: { min: 5, max: 20 },
  delivered: { min: 5, max: 20 },
  read: { min: 5, max: 20 },
  replied: { min: 5, max: 20 },
  failed: { min: 5, max: 20 }
}

/** The summary `--json` printed. */
export const json = (run: Run): Summary => {
  try {
    return JSON.parse(run.stdout) as Summary
  } catch {
    throw new Error(`not JSON on stdout (exit ${run.status}):\n${run.stdout}\n${run.stderr}`)
  }
}
