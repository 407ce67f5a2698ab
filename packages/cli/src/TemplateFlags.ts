/**
 * The template a command checks rows against, from `--template-text`, `--params N` or `--named k1,k2`, plus
 * `--header`. Shared by every command that reads a recipient file.
 */
import * as TemplateSpec from "@crier/core/TemplateSpec"
import { Effect, Option, Result } from "effect"
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

export interface Input {
  readonly templateText: Option.Option<string>
  readonly params: Option.Option<number>
  readonly named: Option.Option<string>
  readonly header: TemplateSpec.HeaderKind
}

/** Name and language do not matter for checking a file; they must only be valid. */
const placeholder = { name: "template", language: "en" } as const

export const toSpec = (input: Input): Effect.Effect<TemplateSpec.TemplateSpec, UsageError> => {
  const given = [Option.isSome(input.templateText), Option.isSome(input.params), Option.isSome(input.named)]
    .filter(Boolean).length
  if (given !== 1) {
    return Effect.fail(
      new UsageError({ message: "give the template's parameters with exactly one of --template-text, --params or --named" })
    )
  }
  const spec = Option.isSome(input.templateText)
    ? TemplateSpec.fromText(input.templateText.value, { ...placeholder, header: input.header })
    : TemplateSpec.make({
      ...placeholder,
      header: input.header,
      buttons: [],
      body: Option.isSome(input.params)
        ? { _tag: "positional", count: input.params.value }
        : {
          _tag: "named",
          keys: Option.getOrElse(input.named, () => "").split(",").map((key) => key.trim()).filter((key) => key !== "")
        }
    })
  return Result.match(spec, {
    onSuccess: Effect.succeed,
    onFailure: (error) => Effect.fail(new UsageError({ message: `template: ${error.message}` }))
  })
}
