/**
 * Starts `worker.ts` in its own process group and kills the group with SIGKILL at a planned point: after a delay,
 * or when a progress line (see `protocol.ts`) shows up. The real binary (`process.execPath`), never
 * node_modules/.bin/node, whose wrapper script would take the kill and leave the real process running
 * (TOOLCHAIN.md); the group kill is a second guard, and the group is checked empty afterwards.
 */
import { spawn } from "node:child_process"
import { join } from "node:path"
import * as Protocol from "./protocol.ts"

export type KillPlan =
  /** Kill this long after the spawn: lands in start-up (loading, migrations, recovery) or the first batches. */
  | { readonly _tag: "Timer"; readonly millis: number }
  /** Kill when `event` is printed once this run journaled at least `afterMessages` messages, `delayMillis` later. */
  | {
    readonly _tag: "Event"
    readonly event: Protocol.Event
    readonly afterMessages: number
    readonly delayMillis: number
  }
  /** Let it finish. */
  | { readonly _tag: "None" }

export interface Options {
  readonly args: ReadonlyArray<string>
  readonly plan: KillPlan
  /** Kill anyway once the run journaled this many messages, so no killed run can finish the broadcast. */
  readonly capMessages: number
  readonly timeoutMillis: number
  /** A folder for Node's compile cache, shared by the runs. */
  readonly compileCache: string
}

export interface Outcome {
  readonly pid: number
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  /** We sent the SIGKILL (by plan or cap, not by timeout). */
  readonly killed: boolean
  readonly timedOut: boolean
  /** The last progress event printed before the kill (`spawned` when none): where the kill landed. */
  readonly killedAfter: string
  /** Messages the provider journaled in this run, as the child reported them. */
  readonly journaled: number
  readonly recovered: { readonly inDoubt: number; readonly requeued: number } | undefined
  /** The broadcast's status the child reported at its end. */
  readonly done: string | undefined
  /** Anything else the child printed, for failure messages. */
  readonly output: string
}

export const workerPath = join(import.meta.dirname, "worker.ts")

/** Whether any process of the group `pgid` is still alive (signal 0 checks without sending). */
export const groupAlive = (pgid: number): boolean => {
  try {
    process.kill(-pgid, 0)
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ESRCH") return false
    throw error
  }
}

export const run = (options: Options): Promise<Outcome> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [workerPath, ...options.args], {
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      // Compiled code cached across runs: loading the engine is most of a run's time.
      env: { ...process.env, NODE_COMPILE_CACHE: options.compileCache }
    })
    const pid = child.pid
    if (pid === undefined) {
      child.once("error", reject)
      return
    }
    let exited = false
    let killed = false
    let timedOut = false
    let triggered = false
    let journaled = 0
    let last = "spawned"
    let killedAfter = ""
    let recovered: Outcome["recovered"]
    let done: string | undefined
    let output = ""
    let partial = ""
    const timers: Array<NodeJS.Timeout> = []

    const kill = () => {
      if (exited || killed) return
      killed = true
      killedAfter = last
      process.kill(-pid, "SIGKILL")
    }

    const onEvent = (event: Protocol.Event, values: ReadonlyArray<string>) => {
      last = event
      if (event === "journaled") journaled += Number(values[0])
      if (event === "recovered") recovered = { inDoubt: Number(values[0]), requeued: Number(values[1]) }
      if (event === "done") done = values[0]
      const plan = options.plan
      if (plan._tag === "None") return
      if (journaled >= options.capMessages) return kill()
      if (plan._tag === "Event" && !triggered && event === plan.event && journaled >= plan.afterMessages) {
        triggered = true
        if (plan.delayMillis === 0) kill()
        else timers.push(setTimeout(kill, plan.delayMillis))
      }
    }

    child.stdout.setEncoding("utf8")
    child.stdout.on("data", (chunk: string) => {
      const lines = (partial + chunk).split("\n")
      partial = lines.pop() ?? ""
      for (const line of lines) {
        const parsed = Protocol.parseEventLine(line)
        if (parsed === undefined) output += `${line}\n`
        else onEvent(parsed.event, parsed.values)
      }
    })
    child.stderr.setEncoding("utf8")
    child.stderr.on("data", (chunk: string) => (output += chunk))
    if (options.plan._tag === "Timer") timers.push(setTimeout(kill, options.plan.millis))
    timers.push(setTimeout(() => {
      timedOut = true
      kill()
    }, options.timeoutMillis))

    child.once("close", (code, signal) => {
      exited = true
      for (const timer of timers) clearTimeout(timer)
      resolve({
        pid,
        code,
        signal,
        killed: killed && !timedOut,
        timedOut,
        killedAfter,
        journaled,
        recovered,
        done,
        output: output.slice(-4000)
      })
    })
  })
