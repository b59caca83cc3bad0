// GraphiQL with the query-builder explorer, bundled here so the page loads nothing from
// another host. It speaks to the API on this origin: queries and mutations by POST to
// /graphql, subscriptions over the graphql-transport-ws websocket at the same path.
import 'graphiql/setup-workers/vite'
import 'graphiql/style.css'
import '@graphiql/plugin-explorer/style.css'
import './page.css'
import { explorerPlugin } from '@graphiql/plugin-explorer'
import { createGraphiQLFetcher } from '@graphiql/toolkit'
import { GraphiQL } from 'graphiql'
import { createElement } from 'react'
import { createRoot } from 'react-dom/client'

const ENDPOINT = '/graphql'
const FIRST_QUERY = `# Who the server takes you for: the user of the certificate your browser presented.
{
  me {
    uid
    role
  }
}
`

const websocketScheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:'
const fetcher = createGraphiQLFetcher({
  url: ENDPOINT,
  subscriptionUrl: `${websocketScheme}//${window.location.host}${ENDPOINT}`,
})
const plugins = [explorerPlugin()]

const container = document.getElementById('graphiql')
if (!container) throw new Error('graphiql.html has no #graphiql element')
createRoot(container).render(createElement(GraphiQL, { fetcher, plugins, defaultQuery: FIRST_QUERY }))
