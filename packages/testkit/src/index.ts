export {}
export * as KapsoEmulator from "./KapsoEmulator.ts"
export * as KeebaiEmulator from "./KeebaiEmulator.ts"
export * as MetaEmulator from "./MetaEmulator.ts"
