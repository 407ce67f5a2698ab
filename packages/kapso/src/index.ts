export * as KapsoApi from "./KapsoApi.ts"
export * as KapsoBroadcasts from "./KapsoBroadcasts.ts"
export * as KapsoTemplateSend from "./KapsoTemplateSend.ts"
export * as KapsoWebhook from "./KapsoWebhook.ts"
