// Each channel's log verifier key, as the server publishes it (GET /log/CHANNEL.pub, the line
// of the network's log/CHANNEL.pub), pinned in this browser on first use (domain/logKeys.ts).
import { keyLabel, pinLogKey } from '../domain/logKeys'

export type LogKeyAnswer =
  | { key: string; firstUse: boolean }
  /** Why no key can be trusted, a fragment after "not verified: ". */
  | { problem: string }

/** The key to verify `channel`'s checkpoints with, or why there is none. */
export async function trustedLogKey(
  channel: string,
  storage: Storage = localStorage,
): Promise<LogKeyAnswer> {
  let response: Response
  try {
    response = await fetch(`/log/${encodeURIComponent(channel)}.pub`, { cache: 'no-store' })
  } catch {
    return { problem: 'the log’s key could not be fetched from the server' }
  }
  if (!response.ok) {
    return { problem: `the server did not give the log’s key (HTTP ${response.status})` }
  }
  const pinning = pinLogKey(storage, channel, await response.text())
  if ('changed' in pinning) {
    return {
      problem:
        `the log’s key changed: this browser trusts ${keyLabel(pinning.pinned)} since it first ` +
        `used it, and the server now gives ${keyLabel(pinning.served)}`,
    }
  }
  return pinning
}
