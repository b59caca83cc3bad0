// Live updates: every committed event the user may see (and every change they make)
// bumps `revision`, which every view watches to reload; events also become notices.
import type { Client } from '@urql/core'
import { reactive, ref } from 'vue'
import { EventsSubscription } from './api/operations'
import { eventSentence } from './domain/events'
import type { Role } from './gql/graphql'

export interface Notice {
  id: number
  text: string
}

export const revision = ref(0)
export const notices = reactive<Notice[]>([])
let nextNotice = 1
const MAX_NOTICES = 3
const NOTICE_SECONDS = 10

export function changed(): void {
  revision.value += 1
}

export function notify(text: string): void {
  const id = nextNotice++
  notices.unshift({ id, text })
  notices.splice(MAX_NOTICES)
  setTimeout(() => dismiss(id), NOTICE_SECONDS * 1000)
}

export function dismiss(id: number): void {
  const index = notices.findIndex((n) => n.id === id)
  if (index >= 0) notices.splice(index, 1)
}

/** Listens on each of the user's channels until the page goes away; returns a stop function. */
export function listen(client: Client, channels: string[], role: Role): () => void {
  const subscriptions = channels.map((channel) =>
    client.subscription(EventsSubscription, { channel }).subscribe((result) => {
      const event = result.data?.events
      if (!event) return
      notify(eventSentence(event.name, role))
      changed()
    }),
  )
  return () => subscriptions.forEach((s) => s.unsubscribe())
}

/**
 * Reloads every view each `seconds` while the caller is mounted, for changes no event
 * announces to this user; returns a stop function.
 */
export function reloadEvery(seconds: number): () => void {
  const timer = setInterval(changed, seconds * 1000)
  return () => clearInterval(timer)
}
