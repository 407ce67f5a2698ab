/**
 * Which process runs which broadcast, and the background workers `--detach` leaves behind.
 *
 * A process that runs a broadcast's send loop (`send`, `resume`, a worker) holds its run file,
 * `<store folder>/run/<broadcast id>.json` (its pid and script), for as long as it runs it; the file is created
 * exclusively, so two processes never both run one broadcast from one machine. A run file whose process is gone
 * (killed, crashed) is stale and taken over. Holding it is what makes a take-over recovery safe on SQLite: every
 * process that can open the file is on this machine, so no other one still works on the broadcast's claimed rows.
 *
 * A worker is `crier worker ID` (hidden), started with this same Node and script, detached in its own process
 * group (Ctrl-C in the terminal does not reach it), its output appended to `<store folder>/logs/<id>.log`.
 */
import type * as Broadcast from "@crier/core/Broadcast"
import { Effect, Option, Redacted, Result, Schema, type Scope } from "effect"
import { spawn as spawnProcess } from "node:child_process"
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { UsageError } from "./CliFailure.ts"

/** `started`: the process's start time as /proc gives it, where there is a /proc (pids are reused). */
const RunFile = Schema.fromJsonString(Schema.Struct({ pid: Schema.Int, started: Schema.optional(Schema.String) }))
type RunFile = typeof RunFile.Type
const decodeRunFile = Schema.decodeUnknownOption(RunFile)
const encodeRunFile = Schema.encodeSync(RunFile)

const runFile = (folder: string, id: Broadcast.BroadcastId) => join(folder, "run", `${id}.json`)

/** Where a broadcast's worker writes. */
export const logFile = (folder: string, id: Broadcast.BroadcastId) => join(folder, "logs", `${id}.log`)

const script = (): string => process.argv[1] ?? ""

const readRunFile = (path: string): Option.Option<RunFile> =>
  Result.match(Result.try(() => readFileSync(path, "utf8")), {
    onFailure: () => Option.none(),
    onSuccess: decodeRunFile
  })

/** State and start time from /proc/<pid>/stat (after the command name, which may hold anything). */
const procStat = (pid: number | "self"): Option.Option<{ readonly state: string; readonly started: string }> =>
  Option.flatMap(Result.getSuccess(Result.try(() => readFileSync(`/proc/${pid}/stat`, "utf8"))), (stat) => {
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    const [state, started] = [fields[0], fields[19]]
    return state === undefined || started === undefined ? Option.none() : Option.some({ state, started })
  })

/**
 * Whether the process a run file names still runs: it exists, is not a zombie left unreaped (as a detached worker
 * may be in a container), and, where /proc tells, started when the run file says (it is not a reused pid).
 */
const isAlive = ({ pid, started }: RunFile): boolean => {
  const exists = Result.match(Result.try(() => process.kill(pid, 0)), {
    onSuccess: () => true,
    // EPERM: it exists, as another user's.
    onFailure: (error) => (error as NodeJS.ErrnoException).code === "EPERM"
  })
  return exists && Option.match(procStat(pid), {
    onNone: () => true,
    onSome: (stat) => stat.state !== "Z" && (started === undefined || stat.started === started)
  })
}

/** The live process that runs the broadcast, if any. */
export const runner = (folder: string, id: Broadcast.BroadcastId): Effect.Effect<Option.Option<number>> =>
  Effect.sync(() => Option.map(Option.filter(readRunFile(runFile(folder, id)), isAlive), (run) => run.pid))

const busy = (id: Broadcast.BroadcastId, pid: number) =>
  new UsageError({
    message:
      `broadcast ${id} is being sent by process ${pid}: follow it with crier status ${id} --watch, or pause it with crier pause ${id}`
  })

/**
 * Makes this process the broadcast's runner for the life of the scope. Fails when another live process is; a stale
 * run file is replaced.
 */
export const claim = (folder: string, id: Broadcast.BroadcastId): Effect.Effect<void, UsageError, Scope.Scope> => {
  const path = runFile(folder, id)
  const mine: RunFile = { pid: process.pid, started: Option.getOrUndefined(procStat("self"))?.started }
  const create = () =>
    Result.try(() => {
      mkdirSync(join(folder, "run"), { recursive: true })
      writeFileSync(path, encodeRunFile(mine), { flag: "wx" })
    })
  const acquire = Effect.suspend(() => {
    if (Result.isSuccess(create())) return Effect.void
    const holder = readRunFile(path)
    if (Option.isSome(holder) && holder.value.pid !== process.pid && isAlive(holder.value)) {
      return Effect.fail(busy(id, holder.value.pid))
    }
    // Stale (or unreadable): replace it, still exclusively, so of two processes replacing it one wins.
    rmSync(path, { force: true })
    return Result.isSuccess(create()) ? Effect.void : Effect.fail(
      new UsageError({ message: `cannot write ${path}: another process is taking broadcast ${id} over` })
    )
  })
  const release = Effect.sync(() => {
    if (Option.exists(readRunFile(path), (run) => run.pid === process.pid)) rmSync(path, { force: true })
  })
  return Effect.acquireRelease(acquire, () => release)
}

export interface Spawned {
  readonly pid: number
  readonly log: string
}

/**
 * Starts `crier worker ID` in the background and returns at once; the worker outlives this process. It finds the
 * store through `CRIER_STORE` (an absolute path for SQLite) and everything else in the inherited environment.
 */
export const spawn = (
  folder: string,
  id: Broadcast.BroadcastId,
  storeUrl: Redacted.Redacted<string>
): Effect.Effect<Spawned, UsageError> => {
  const failed = (why: string) => new UsageError({ message: `cannot start a background worker for ${id}: ${why}` })
  const log = logFile(folder, id)
  return Effect.try({
    try: () => {
      mkdirSync(join(folder, "logs"), { recursive: true })
      const fd = openSync(log, "a")
      const child = spawnProcess(process.execPath, [...process.execArgv, script(), "worker", id], {
        detached: true,
        stdio: ["ignore", fd, fd],
        env: { ...process.env, CRIER_STORE: Redacted.value(storeUrl) }
      })
      closeSync(fd)
      // A failed start is reported below (no pid); the event must not end this process.
      child.once("error", () => undefined)
      child.unref()
      return child.pid
    },
    catch: (cause) => failed(cause instanceof Error ? cause.message : String(cause))
  }).pipe(
    Effect.flatMap((pid) =>
      pid === undefined ? Effect.fail(failed("the process did not start")) : Effect.succeed({ pid, log })
    )
  )
}

/** The last `n` lines of a worker's log. */
export const lastLines = (path: string, n: number): string =>
  Result.match(Result.try(() => readFileSync(path, "utf8")), {
    onFailure: () => "",
    onSuccess: (text) => text.trimEnd().split("\n").slice(-n).join("\n")
  })

/** Whether a process (the worker just spawned) is still there. */
export const isRunning = (pid: number): Effect.Effect<boolean> => Effect.sync(() => isAlive({ pid }))
