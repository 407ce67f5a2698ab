// The template every benchmark broadcast sends: one positional body parameter, no header or buttons.
import * as TemplateSpec from "@crier/core/TemplateSpec"

export const template = new TemplateSpec.TemplateSpec({
  name: "spring_sale",
  language: "en",
  body: { _tag: "positional", count: 1 },
  header: "none",
  buttons: [],
  bodyText: "Hi {{1}}, our spring sale starts today"
})
