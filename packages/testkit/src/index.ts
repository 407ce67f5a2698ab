export {}
export * as MetaEmulator from "./MetaEmulator.ts"
export * as KapsoEmulator from "./KapsoEmulator.ts"
export * as KeebaiEmulator from "./KeebaiEmulator.ts"
