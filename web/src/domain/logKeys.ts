// The log's public key, pinned in this browser on first use (trust on first use): a server
// that later signs with another key cannot have its checkpoints taken for the log's.

/** Where a channel's pinned verifier key line is kept in the browser's local storage. */
export const PIN_PREFIX = 'healthledger.logKey.'

export type Pinning =
  /** The key to check with; `firstUse` when it was pinned just now. */
  | { key: string; firstUse: boolean }
  /** The server gives another key than the one pinned: nothing is verified with either. */
  | { changed: true; pinned: string; served: string }

/** The key line to trust for `channel`: the pinned one, or `served`, pinned now if none is. */
export function pinLogKey(storage: Storage, channel: string, served: string): Pinning {
  const line = served.trim()
  const pinned = storage.getItem(PIN_PREFIX + channel)
  if (pinned === null) {
    storage.setItem(PIN_PREFIX + channel, line)
    return { key: line, firstUse: true }
  }
  return pinned === line ? { key: line, firstUse: false } : { changed: true, pinned, served: line }
}

/** A verifier key line's name and key id (NAME+KEYID), as people compare them. */
export function keyLabel(line: string): string {
  return line.split('+').slice(0, 2).join('+')
}
