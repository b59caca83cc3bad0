// Paged lists (Relay connections): the first page, more on request, reloaded live.
import type { TypedDocumentNode } from '@graphql-typed-document-node/core'
import { useClientHandle } from '@urql/vue'
import type { AnyVariables } from '@urql/vue'
import { ref, watch } from 'vue'
import type { Ref } from 'vue'
import { revision } from '../live'
import { describeError } from './errors'
import type { Problem } from './errors'

/** Items a list shows at first, and adds each time the user asks for more. */
export const PAGE_SIZE = 50
/** The most the server gives in one page. */
export const MAX_PAGE_SIZE = 200
/** The answers that say the caller may not read the list (any more). */
const REFUSALS = new Set<Problem['code']>(['NOT_FOUND', 'FORBIDDEN', 'UNAUTHENTICATED'])

/** The part of a connection the app reads. */
export interface Page<Node> {
  edges: { node: Node }[]
  pageInfo: { hasNextPage: boolean; endCursor?: string | null }
}

/** The node type of a connection's edges. */
export type NodeOf<Connection extends { edges: { node: unknown }[] }> =
  Connection['edges'][number]['node']

export interface PageVariables {
  first: number
  after?: string | null
}

export interface PagedQuery<Node> {
  /** Every item loaded so far, in the list's order (newest first where it is by time). */
  items: Ref<Node[]>
  /** Whether the list holds more items than are loaded. */
  hasMore: Ref<boolean>
  /** Whether the first page has arrived (an empty list is then really empty). */
  loaded: Ref<boolean>
  fetching: Ref<boolean>
  problems: Ref<Problem[]>
  /** Loads the next page after the items shown. */
  more: () => Promise<void>
  /** Loads the list afresh, as many items as are shown (it does so itself when the ledger changes). */
  reload: () => Promise<void>
}

/**
 * A paged list that reloads whenever the ledger changes (see live.ts). A reload keeps as
 * many items as were shown, so a list the user has opened further does not shrink.
 */
export function usePagedQuery<Data, Node>(
  query: TypedDocumentNode<Data, PageVariables>,
  pageOf: (data: Data) => Page<Node>,
): PagedQuery<Node>
export function usePagedQuery<Data, Variables extends AnyVariables & PageVariables, Node>(
  query: TypedDocumentNode<Data, Variables>,
  pageOf: (data: Data) => Page<Node>,
  variables: () => Omit<Variables, keyof PageVariables>,
): PagedQuery<Node>
export function usePagedQuery<Data, Variables extends AnyVariables & PageVariables, Node>(
  query: TypedDocumentNode<Data, Variables>,
  pageOf: (data: Data) => Page<Node>,
  // Only the first signature omits them, and there the list has no arguments but the page's.
  variables: () => Omit<Variables, keyof PageVariables> = () =>
    ({}) as Omit<Variables, keyof PageVariables>,
): PagedQuery<Node> {
  const client = useClientHandle().client
  const items = ref([]) as Ref<Node[]>
  const hasMore = ref(false)
  const loaded = ref(false)
  const fetching = ref(false)
  const problems = ref<Problem[]>([])
  let endCursor: string | null = null
  // Answers to a request older than the newest reload are dropped.
  let generation = 0

  /** A page, or null when it failed (then `problems` says why) or a reload began meanwhile. */
  async function fetchPage(
    first: number,
    after: string | null,
    run: number,
  ): Promise<Page<Node> | null> {
    const asked = { ...variables(), first, after } as Variables
    const result = await client.query(query, asked, { requestPolicy: 'network-only' }).toPromise()
    if (run !== generation) return null
    if (result.error || !result.data) {
      problems.value = result.error ? describeError(result.error) : []
      return null
    }
    problems.value = []
    return pageOf(result.data)
  }

  async function reload(): Promise<void> {
    const run = ++generation
    fetching.value = true
    const wanted = Math.max(PAGE_SIZE, items.value.length)
    const found: Node[] = []
    let after: string | null = null
    let next = true
    while (next && found.length < wanted) {
      const page = await fetchPage(Math.min(MAX_PAGE_SIZE, wanted - found.length), after, run)
      if (run !== generation) return
      if (!page) {
        // What may no longer be read (an access that ended) must not stay on screen; a list
        // the ledger merely could not give right now stays as it was.
        if (problems.value.some((p) => REFUSALS.has(p.code))) {
          items.value = []
          endCursor = null
          hasMore.value = false
          loaded.value = false
        }
        fetching.value = false
        return
      }
      found.push(...page.edges.map((edge) => edge.node))
      after = page.pageInfo.endCursor ?? null
      next = page.pageInfo.hasNextPage
    }
    items.value = found
    endCursor = after
    hasMore.value = next
    loaded.value = true
    fetching.value = false
  }

  async function more(): Promise<void> {
    if (!hasMore.value || fetching.value) return
    const run = generation
    fetching.value = true
    const page = await fetchPage(PAGE_SIZE, endCursor, run)
    if (run !== generation) return
    fetching.value = false
    if (!page) return
    items.value = [...items.value, ...page.edges.map((edge) => edge.node)]
    endCursor = page.pageInfo.endCursor ?? null
    hasMore.value = page.pageInfo.hasNextPage
  }

  // Other arguments (another child) make another list: start it afresh.
  watch(
    () => JSON.stringify(variables()),
    () => {
      items.value = []
      hasMore.value = false
      loaded.value = false
      void reload()
    },
    { immediate: true },
  )
  watch(revision, () => void reload())
  return { items, hasMore, loaded, fetching, problems, more, reload }
}
