/**
 * The template a command checks rows against, from `--template-text`, `--params N` or `--named k1,k2`, plus
 * `--header`. Shared by every command that reads a recipient file; `send` also names the approved template
 * (`--template NAME --language CODE`) and may describe it with a JSON file instead (`--template-spec`).
 */
import * as TemplateSpec from "@crier/core/TemplateSpec"
import { Effect, FileSystem, Option, Result, Schema } from "effect"
import { Flag } from "effect/cli"
import { UsageError } from "./CliFailure.ts"

export const flags = {
  templateText: Flag.String("template-text").pipe(
    Flag.withDescription("The template body, e.g. \"Hi {{first_name}}\"; parameters are inferred from it"),
    Flag.optional
  ),
  params: Flag.Int("params").pipe(
    Flag.withDescription("The template takes N positional parameters ({{1}}..{{N}})"),
    Flag.optional
  ),
  named: Flag.String("named").pipe(
    Flag.withDescription("The template takes these named parameters, comma-separated"),
    Flag.optional
  ),
  header: Flag.Literals("header", ["none", "text", "image", "video", "document"]).pipe(
    Flag.withDescription("The template's header kind"),
    Flag.withDefault("none")
  )
} as const

/** The flags of a command that sends: the approved template by name, and its shape. */
export const sendFlags = {
  template: Flag.String("template").pipe(Flag.withDescription("The approved template's name, e.g. order_update")),
  language: Flag.String("language").pipe(Flag.withDescription("The template's language code, e.g. en_US")),
  ...flags,
  templateSpec: Flag.String("template-spec").pipe(
    Flag.withDescription("A JSON file with the template's spec (body, header, buttons), instead of the flags above"),
    Flag.optional
  )
} as const

export interface Input {
  readonly templateText: Option.Option<string>
  readonly params: Option.Option<number>
  readonly named: Option.Option<string>
  readonly header: TemplateSpec.HeaderKind
}

export interface SendInput extends Input {
  readonly template: string
  readonly language: string
  readonly templateSpec: Option.Option<string>
}

interface Identity {
  readonly name: string
  readonly language: string
}

/** Name and language do not matter for checking a file; they must only be valid. */
const placeholder: Identity = { name: "template", language: "en" }

const checked = (spec: Result.Result<TemplateSpec.TemplateSpec, TemplateSpec.TemplateSpecError>) =>
  Result.match(spec, {
    onSuccess: Effect.succeed,
    onFailure: (error) => Effect.fail(new UsageError({ message: `template: ${error.message}` }))
  })

const exactlyOne = (given: ReadonlyArray<readonly [string, boolean]>): Effect.Effect<void, UsageError> => {
  if (given.filter(([, isGiven]) => isGiven).length === 1) return Effect.void
  const names = given.map(([name]) => name)
  return Effect.fail(
    new UsageError({
      message: `give the template's parameters with exactly one of ${names.slice(0, -1).join(", ")} or ${names.at(-1)}`
    })
  )
}

const namedKeys = (text: string): ReadonlyArray<string> =>
  text.split(",").map((key) => key.trim()).filter((key) => key !== "")

const fromFlags = (input: Input, identity: Identity): Effect.Effect<TemplateSpec.TemplateSpec, UsageError> =>
  checked(
    Option.isSome(input.templateText)
      ? TemplateSpec.fromText(input.templateText.value, { ...identity, header: input.header })
      : TemplateSpec.make({
        ...identity,
        header: input.header,
        buttons: [],
        body: Option.isSome(input.params)
          ? { _tag: "positional", count: input.params.value }
          : { _tag: "named", keys: namedKeys(Option.getOrElse(input.named, () => "")) }
      })
  )

/** The flags that give the template's shape, and whether each was given; `--template-spec` where a command has it. */
const shapeFlags = (
  input: Input,
  templateSpec?: Option.Option<string>
): ReadonlyArray<readonly [string, boolean]> => [
  ["--template-text", Option.isSome(input.templateText)],
  ...(templateSpec === undefined ? [] : [["--template-spec", Option.isSome(templateSpec)] as const]),
  ["--params", Option.isSome(input.params)],
  ["--named", Option.isSome(input.named)]
]

/** The spec to check a file against (`validate`). */
export const toSpec = (input: Input): Effect.Effect<TemplateSpec.TemplateSpec, UsageError> =>
  Effect.andThen(exactlyOne(shapeFlags(input)), fromFlags(input, placeholder))

const SpecFile = Schema.fromJsonString(Schema.Record(Schema.String, Schema.Unknown))
const decodeSpecFile = Schema.decodeUnknownResult(SpecFile)

/**
 * A `--template-spec` file: a `TemplateSpec` in JSON. Name and language come from the flags when the file leaves
 * them out, and must agree with the flags when it has them; `header` defaults to `--header`, `buttons` to none.
 */
const fromFile = Effect.fnUntraced(function*(path: string, input: SendInput) {
  const problem = (message: string) => new UsageError({ message: `--template-spec ${path}: ${message}` })
  const fs = yield* FileSystem.FileSystem
  const text = yield* fs.readFileString(path).pipe(
    Effect.mapError((error) =>
      problem(error.reason._tag === "NotFound" ? "there is no such file" : `cannot be read (${error.message})`)
    )
  )
  const json = yield* Effect.fromResult(decodeSpecFile(text)).pipe(
    Effect.mapError((error) => problem(`is not a JSON object: ${error.message}`))
  )
  const fromTheFlags = [
    { key: "name", flag: "--template", value: input.template },
    { key: "language", flag: "--language", value: input.language }
  ]
  const clash = fromTheFlags.find(({ key, value }) => json[key] !== undefined && json[key] !== value)
  if (clash !== undefined) {
    return yield* problem(`its ${clash.key} is ${JSON.stringify(json[clash.key])} but ${clash.flag} is ${clash.value}`)
  }
  return yield* Result.match(
    TemplateSpec.decodeUnknown({
      header: input.header,
      buttons: [],
      ...json,
      name: input.template,
      language: input.language
    }),
    {
      onSuccess: Effect.succeed,
      onFailure: (error) => Effect.fail(problem(error.message))
    }
  )
})

/** The approved template a broadcast sends: its name and language, and its shape from the flags or a spec file. */
export const toNamedSpec = (
  input: SendInput
): Effect.Effect<TemplateSpec.TemplateSpec, UsageError, FileSystem.FileSystem> =>
  Effect.andThen(
    exactlyOne(shapeFlags(input, input.templateSpec)),
    Option.match(input.templateSpec, {
      onNone: () => fromFlags(input, { name: input.template, language: input.language }),
      onSome: (path) => fromFile(path, input)
    })
  )
