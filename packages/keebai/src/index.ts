export * as KeebaiBulk from "./KeebaiBulk.ts"
export * as KeebaiWebhook from "./KeebaiWebhook.ts"
