export * as MetaCloud from "./MetaCloud.ts"
export * as MetaWebhook from "./MetaWebhook.ts"
export * as TemplateMessage from "./TemplateMessage.ts"
