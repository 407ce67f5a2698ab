/**
 * A broadcast run by this process: the engine's send loop lives in this process's `Broadcaster`, and this module
 * creates it from its file (`create`), gets it going (`start`, `proceed`), shows it until it is over (`watch`), and
 * turns how it ended into the summary and the exit status (`follow`):
 *
 * | ended as                              | exit |
 * |---------------------------------------|------|
 * | completed, every row sent             | 0    |
 * | completed with failed or in-doubt recipients, or with rows of the file rejected or duplicated | 1 |
 * | cancelled                             | 1    |
 * | paused (the breaker, or `crier pause`) — the reason is printed | 3 |
 * | interrupted (Ctrl-C, SIGTERM)         | 130  |
 *
 * An interruption pauses the broadcast, then waits (a few seconds at most) for the messages already handed to the
 * provider to be recorded, so that `crier resume` finds nothing in doubt. A scheduled broadcast stays scheduled.
 */
import type * as Broadcast from "@crier/core/Broadcast"
import * as Broadcaster from "@crier/core/Broadcaster"
import * as ProgressStore from "@crier/core/ProgressStore"
import type * as TemplateSpec from "@crier/core/TemplateSpec"
import { Console, Duration, Effect, Option, Result, Schedule } from "effect"
import { ExitCode, ExitWith, UsageError } from "./CliFailure.ts"
import * as Progress from "./Progress.ts"
import * as RecipientFile from "./RecipientFile.ts"
import * as Stores from "./Stores.ts"
import * as Summary from "./Summary.ts"
import * as Transports from "./Transports.ts"
import * as Workers from "./Workers.ts"

/** The pause reason of Ctrl-C while following. */
export const interruptedByUser = "interrupted by the user"

/** How long an interruption or `crier pause` waits for the messages in flight to be recorded. */
export const drainTimeout = Duration.seconds(10)

/** How long a broadcast whose statuses live in this process (memory) is followed after it completed. */
export const settleTimeout = Duration.seconds(5)

/**
 * Until no recipient of the broadcast has been claimed for a while (three reads, 100 ms apart: the send loop claims
 * its next batch the moment it recorded the last one), or `timeout` passed: true when none is. After a pause this
 * is the batch in flight being recorded; the loop then stops.
 */
export const drain = (id: Broadcast.BroadcastId, timeout: Duration.Duration = drainTimeout) =>
  Effect.gen(function*() {
    const store = yield* ProgressStore.ProgressStore
    let quiet = 0
    while (quiet < 3) {
      const counts = yield* store.counts(id)
      quiet = counts.submitting === 0 ? quiet + 1 : 0
      if (quiet < 3) yield* Effect.sleep(Duration.millis(100))
    }
  }).pipe(Effect.timeoutOption(timeout), Effect.map(Option.isSome))

// Messages accepted or sent still have statuses to come, which only this process produces.
const settle = (id: Broadcast.BroadcastId) =>
  Effect.gen(function*() {
    const store = yield* ProgressStore.ProgressStore
    yield* store.counts(id).pipe(
      Effect.repeat({
        schedule: Schedule.spaced(Duration.millis(100)),
        until: (counts) => counts.accepted + counts.sent === 0
      }),
      Effect.timeoutOption(settleTimeout)
    )
  })

/** What an interruption does: pause, let the batch in flight be recorded, say how to go on. */
const stop = (id: Broadcast.BroadcastId, reason: string, goOn: string) =>
  Effect.gen(function*() {
    const engine = yield* Broadcaster.Broadcaster
    const paused = yield* Effect.result(engine.pause(id, reason))
    if (Result.isFailure(paused)) {
      const broadcast = yield* engine.get(id)
      yield* Console.error(
        broadcast.status === "scheduled"
          ? `${id} stays scheduled, but no crier process will start it now: run crier resume ${id} --detach to have it sent on time, or crier cancel ${id}`
          : `${id} is ${broadcast.status}`
      )
      return
    }
    yield* Console.error(`Pausing ${id}: recording the messages in flight…`)
    const drained = yield* drain(id)
    yield* Console.error(
      `Paused ${id} (${reason}).${
        drained ? "" : " Some messages were still being handed over; resuming reports them in doubt."
      } ${goOn}`
    )
  }).pipe(Effect.ignore)

/** Starts a draft broadcast. A provider that refuses to open it pauses it with the reason, which `follow` reports. */
const start = (id: Broadcast.BroadcastId) =>
  Effect.gen(function*() {
    const engine = yield* Broadcaster.Broadcaster
    yield* engine.start(id).pipe(
      Effect.catchTag("TransportError", () => Effect.void),
      Effect.catchTag("BroadcastRefused", (refused) => Effect.fail(new UsageError({ message: refused.message })))
    )
  })

export interface NewBroadcast {
  readonly name: string
  readonly template: TemplateSpec.TemplateSpec
  readonly sender: string
  readonly policy: Broadcast.Policy
  readonly csv: string
  readonly file: RecipientFile.Options
}

/**
 * Creates a broadcast and imports its file, reporting the rows on stderr as `validate` does. An import that is
 * interrupted, fails, or accepts no row cancels the broadcast (the last exits with status 1). `importProblems`:
 * the rows rejected or duplicated.
 */
export const create = Effect.fn("Runner.create")(function*(input: NewBroadcast) {
  const engine = yield* Broadcaster.Broadcaster
  const broadcast = yield* engine.create({
    name: input.name,
    template: input.template,
    sender: input.sender,
    policy: input.policy
  }).pipe(
    Effect.catchTag("BroadcastRefused", (refused) => Effect.fail(new UsageError({ message: refused.message })))
  )
  const id = broadcast.id
  yield* Console.error(`${id} "${broadcast.name}" via ${broadcast.transport}`)

  const discard = (why: string) =>
    engine.cancel(id).pipe(Effect.ignore, Effect.andThen(Console.error(`${why}; broadcast ${id} was cancelled`)))
  const added = yield* engine.addRecipients(id, { csv: input.csv, ...input.file }).pipe(
    Effect.onInterrupt(() => discard("The import was interrupted")),
    Effect.catchTag("ImportError", (error) =>
      Effect.andThen(
        discard(`${input.csv} could not be imported`),
        Effect.fail(new UsageError({ message: error.message }))
      ))
  )
  const report = RecipientFile.fromAddReport(input.csv, added)
  yield* Console.error(RecipientFile.human(report))
  if (report.accepted === 0) {
    yield* discard("Nothing to send: no row of the file was accepted")
    return yield* new ExitWith({ code: ExitCode.problems })
  }
  return { id, importProblems: report.rejected + report.duplicates }
})

/**
 * Gets a stored broadcast going in this process, whatever stopped it: a draft starts, a paused one resumes, and a
 * sending or scheduled one whose process died is recovered. `takeOver`: no other process can be working on its
 * rows, so rows left mid-hand-off are recovered at once instead of when their lease runs out.
 */
export const proceed = Effect.fn("Runner.proceed")(function*(id: Broadcast.BroadcastId, takeOver: boolean) {
  const engine = yield* Broadcaster.Broadcaster
  const store = yield* ProgressStore.ProgressStore
  const broadcast = yield* engine.get(id)
  switch (broadcast.status) {
    case "draft":
      return yield* start(id)
    case "paused":
      // Not `engine.resume`, whose send loop would start before `recover` could release the rows an interrupted
      // or dead process left mid-hand-off: moved through the store, `recover` releases them and starts the loop.
      yield* store.transitionBroadcast(id, { from: ["paused"], to: "sending", patch: { statusReason: null } })
      break
    case "sending":
    case "scheduled":
      break
    default:
      return yield* new UsageError({ message: `broadcast ${id} is ${broadcast.status}: there is nothing to resume` })
  }
  const [recovered] = yield* engine.recover({ takeOver })
  if (recovered !== undefined && recovered.inDoubt > 0) {
    yield* Console.error(
      `${recovered.inDoubt} recipients were being handed over when the broadcast stopped: they are in doubt and not sent again (at-most-once); list them with crier recipients ${id} --status in_doubt`
    )
  }
})

export interface WatchOptions {
  /** `lines` for a worker, whose output is a log file. */
  readonly display: "auto" | "lines"
  /** What an interruption pauses the broadcast with. */
  readonly interruptReason: string
  /** What to tell the person once an interruption paused it. Default: how to resume it. */
  readonly afterInterrupt?: string | undefined
}

export interface FollowOptions extends WatchOptions {
  /** Print the JSON summary instead of the funnel. */
  readonly json: boolean
  /** Rows of the file that were not added: the run then ends with status 1 even if every message went. */
  readonly importProblems: number
}

export const exitCode = (summary: Summary.Summary, importProblems: number): number => {
  switch (summary.status) {
    case "completed":
      return summary.failed + summary.in_doubt + importProblems > 0 ? ExitCode.problems : ExitCode.ok
    case "paused":
      return ExitCode.paused
    case "cancelled":
    case "failed":
      return ExitCode.problems
    default:
      // Not over yet: reported by a detached start, or by `status` without --watch.
      return ExitCode.ok
  }
}

/** Prints where the broadcast stands and, unless `query`, ends with its exit status. */
export const report = Effect.fn("Runner.report")(function*(
  id: Broadcast.BroadcastId,
  options: { readonly json: boolean; readonly importProblems: number; readonly query?: boolean }
) {
  const { broadcast, summary } = yield* Summary.load(id)
  yield* Console.log(options.json ? JSON.stringify(summary) : Summary.human(summary, broadcast))
  if (broadcast.status === "paused") {
    yield* Console.error(
      `Paused: ${broadcast.statusReason ?? "no reason given"}. Once that is dealt with: crier resume ${id}`
    )
  }
  const code = exitCode(summary, options.importProblems)
  if (code !== ExitCode.ok && options.query !== true) return yield* new ExitWith({ code })
})

/**
 * How often a running broadcast's expired leases are looked for: rows a process elsewhere claimed and never
 * answered for (it died) are released once their lease runs out, so the broadcast can finish.
 */
export const reapEvery = Duration.minutes(1)

/**
 * Shows the broadcast until it is over (completed, paused, cancelled); an interruption pauses it. Then waits for
 * what is still on its way in this process: the statuses of an in-process transport, or the batch in flight of a
 * broadcast paused or cancelled from elsewhere.
 */
export const watch = Effect.fn("Runner.watch")(function*(id: Broadcast.BroadcastId, options: WatchOptions) {
  const engine = yield* Broadcaster.Broadcaster
  // The engine sees this broadcast alone (`Stores.focus`), so its recovery touches nothing else.
  yield* engine.recover().pipe(Effect.delay(reapEvery), Effect.forever, Effect.ignore, Effect.forkScoped)
  const mode = yield* Progress.mode(options.display)
  yield* Progress.show(engine.progress(id, { every: Progress.every(mode) }), mode).pipe(
    Effect.onInterrupt(() =>
      stop(id, options.interruptReason, options.afterInterrupt ?? `Resume with: crier resume ${id}`)
    )
  )
  const broadcast = yield* engine.get(id)
  if (broadcast.status === "completed" && Transports.statusesLiveInProcess(broadcast.transport)) yield* settle(id)
  // Paused or cancelled from elsewhere: the batch in flight is recorded before this process (and its loop) ends.
  if (broadcast.status === "paused" || broadcast.status === "cancelled") yield* drain(id)
})

/** Shows the broadcast until it is over (`watch`), then reports it. */
export const follow = Effect.fn("Runner.follow")(function*(id: Broadcast.BroadcastId, options: FollowOptions) {
  yield* watch(id, options)
  return yield* report(id, options)
})

/**
 * Runs a stored broadcast in this process until it is over: this process holds its run file, gets it going
 * (`proceed`) in an engine of its own transport that sees it alone, and follows it.
 *
 * Rows a dead process left mid-hand-off are recovered at once only on SQLite, where holding the run file proves no
 * other process works on them (every process that opens the file is on this machine); on PostgreSQL, workers may
 * run elsewhere, so such rows are released when their lease runs out.
 */
export const runHere = Effect.fn("Runner.runHere")(function*(
  location: Stores.Location,
  id: Broadcast.BroadcastId,
  options: FollowOptions
) {
  return yield* runWith(location, id, follow(id, options))
})

/** `runHere` with `then` in place of `follow`: `then` runs in the broadcast's engine while this process holds it. */
export const runWith = Effect.fn("Runner.runWith")(function*<A, E, R>(
  location: Stores.Location,
  id: Broadcast.BroadcastId,
  then: Effect.Effect<A, E, R>
) {
  const store = yield* ProgressStore.ProgressStore
  yield* Workers.claim(Stores.folder(location), id)
  // Read now that this process holds it: the status decides what `proceed` does.
  const engine = yield* Transports.engineFor(yield* store.getBroadcast(id))
  return yield* Effect.gen(function*() {
    yield* proceed(id, location._tag === "Sqlite")
    return yield* then
  }).pipe(Effect.scoped, Effect.provide(engine))
})

/** How long a detached start waits for its worker to take the broadcast over. */
export const takeOverTimeout = Duration.seconds(15)

/**
 * `--detach`: starts the broadcast's worker, waits until it runs the broadcast (or is gone), and reports: the id
 * on stdout (the JSON summary with `--json`), how to follow it on stderr; status 3 if it paused at once (the
 * provider refused to open it), 1 if the worker stopped without taking it.
 */
export const detach = Effect.fn("Runner.detach")(function*(
  id: Broadcast.BroadcastId,
  location: Stores.Location,
  json: boolean
) {
  const folder = Stores.folder(location)
  const store = yield* ProgressStore.ProgressStore
  const before = (yield* store.getBroadcast(id)).status
  const worker = yield* Workers.spawn(folder, id, Stores.url(location))
  const state = Effect.all({
    status: Effect.map(store.getBroadcast(id), (broadcast) => broadcast.status),
    runner: Workers.runner(folder, id),
    alive: Workers.isRunning(worker.pid)
  })
  const taken = (now: Effect.Success<typeof state>) =>
    !now.alive || (Option.contains(now.runner, worker.pid) && now.status !== "draft" && now.status !== "paused")
  const last = yield* state.pipe(
    Effect.repeat({ schedule: Schedule.spaced(Duration.millis(100)), until: taken }),
    Effect.timeoutOption(takeOverTimeout),
    Effect.flatMap(Option.match({ onNone: () => state, onSome: Effect.succeed }))
  )
  if (!last.alive && last.status === before) {
    yield* Console.error(
      `The background worker stopped before it took ${id} over. The end of its log (${worker.log}):\n${
        Workers.lastLines(worker.log, 5)
      }`
    )
    return yield* new ExitWith({ code: ExitCode.problems })
  }
  yield* Console.error(
    `${id} runs in the background (worker ${worker.pid}, log ${worker.log}).\n  follow it: crier status ${id} --watch\n  pause it:  crier pause ${id}`
  )
  if (json) return yield* report(id, { json, importProblems: 0 })
  yield* Console.log(id)
  const broadcast = yield* store.getBroadcast(id)
  if (broadcast.status === "paused") {
    yield* Console.error(
      `Paused: ${broadcast.statusReason ?? "no reason given"}. Once that is dealt with: crier resume ${id}`
    )
    return yield* new ExitWith({ code: ExitCode.paused })
  }
})
