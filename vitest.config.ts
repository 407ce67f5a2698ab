import { defineConfig } from "vitest/config"

// vitest 5 reads only this root config; each package contributes a project.
export default defineConfig({
  test: {
    projects: ["packages/*", "examples"],
    reporters: ["default", "./scripts/summary-reporter.ts"]
  }
})
