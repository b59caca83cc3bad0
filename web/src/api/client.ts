// One urql client for the page: queries and mutations over same-origin POST /graphql,
// subscriptions over wss://<same origin>/graphql (graphql-transport-ws). The browser's
// TLS layer presents the user's certificate on both; the app never sees keys.
// Every operation goes by the SHA-256 of its text (extensions.persistedQuery, the hashes
// of the build's persisted-documents.json); a server that does not know one answers
// PersistedQueryNotFound and gets the text once more with the hash.
import { Client, fetchExchange, subscriptionExchange } from '@urql/core'
import { persistedExchange } from '@urql/exchange-persisted'
import { createClient as createWsClient } from 'graphql-ws'
import { changed } from '../live'

export function websocketUrl(location: Pick<Location, 'protocol' | 'host'>): string {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`
}

export function createApiClient(location: Location = window.location): Client {
  const ws = createWsClient({
    url: websocketUrl(location),
    lazy: true,
    // A server restart or a network blip: keep trying, the subscriptions resume.
    retryAttempts: Number.POSITIVE_INFINITY,
    shouldRetry: () => true,
    // Events committed while the socket was down are not replayed: reload every view.
    on: { connected: (_socket, _payload, wasRetry) => wasRetry && changed() },
  })
  return new Client({
    url: '/graphql',
    // Every view reloads from the ledger when something changes (see live.ts): no cache.
    requestPolicy: 'network-only',
    preferGetMethod: false,
    exchanges: [
      persistedExchange({
        // All three kinds, so a server run with --persisted-only knows each by its hash.
        enableForMutation: true,
        enableForSubscriptions: true,
        // POST, as for every operation: variables (a child's id) in a URL reach access logs.
        preferGetForPersistedQueries: false,
      }),
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          // Sent by hash, the request has no text; graphql-ws wants a string all the same.
          const input = { ...request, query: request.query || '' }
          return {
            subscribe(sink) {
              const unsubscribe = ws.subscribe(input, sink)
              return { unsubscribe }
            },
          }
        },
      }),
    ],
  })
}
