// Live updates: every committed event the user may see (and every change they make)
// bumps `revision`, which every view watches to reload; events also become notices.
// A read recorded in a child's access log bumps only `accessRevision`, which the access log
// watches: were it to reload every view, each guardian's page would read the child's records
// again, that read would be announced to the other guardian, and so on without end.
import type { Client } from '@urql/core'
import { onBeforeUnmount, reactive, ref } from 'vue'
import type { Ref } from 'vue'
import { EventsSubscription } from './api/operations'
import { eventSentence } from './domain/events'
import type { Role } from './gql/graphql'

export interface Notice {
  id: number
  text: string
}

export const revision = ref(0)
export const accessRevision = ref(0)
export const notices = reactive<Notice[]>([])
let nextNotice = 1
const MAX_NOTICES = 3
const NOTICE_SECONDS = 10

export function changed(): void {
  revision.value += 1
}

export function notify(text: string): void {
  // The same sentence again (one event on each channel, as an erasure is) says nothing more:
  // the notice moves to the top and stays its full time.
  const same = notices.findIndex((n) => n.text === text)
  if (same >= 0) notices.splice(same, 1)
  const id = nextNotice++
  notices.unshift({ id, text })
  notices.splice(MAX_NOTICES)
  setTimeout(() => dismiss(id), NOTICE_SECONDS * 1000)
}

export function dismiss(id: number): void {
  const index = notices.findIndex((n) => n.id === id)
  if (index >= 0) notices.splice(index, 1)
}

/** The event of a read recorded in an access log (see the top of this module). */
const ACCESS_RECORDED = 'AccessRecorded'

/** Listens on each of the user's channels until the page goes away; returns a stop function. */
export function listen(client: Client, channels: string[], role: Role): () => void {
  const subscriptions = channels.map((channel) =>
    client.subscription(EventsSubscription, { channel }).subscribe((result) => {
      const event = result.data?.events
      if (!event) return
      if (event.name === ACCESS_RECORDED) {
        accessRevision.value += 1
        return
      }
      notify(eventSentence(event.name, role))
      changed()
    }),
  )
  return () => subscriptions.forEach((s) => s.unsubscribe())
}

/**
 * The time (epoch milliseconds), renewed every `seconds` while the calling component is
 * mounted: for what ends at a moment no event announces, such as an emergency access running out.
 */
export function useNow(seconds: number): Ref<number> {
  const now = ref(Date.now())
  const timer = setInterval(() => (now.value = Date.now()), seconds * 1000)
  onBeforeUnmount(() => clearInterval(timer))
  return now
}
