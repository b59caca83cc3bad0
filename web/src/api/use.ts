// Queries that reload whenever the ledger changes, and mutations that report problems.
import type { TypedDocumentNode } from '@graphql-typed-document-node/core'
import { useMutation, useQuery } from '@urql/vue'
import type { AnyVariables, CombinedError } from '@urql/vue'
import { computed, ref, watch } from 'vue'
import type { ComputedRef, Ref } from 'vue'
import { changed, revision } from '../live'
import { describeError } from './errors'
import type { Problem } from './errors'

/** What graphql-codegen types as the variables of a query that takes none. */
type NoVariables = { [key: string]: never }

export interface LiveQuery<Data> {
  data: Ref<Data | undefined>
  error: Ref<CombinedError | undefined>
  problems: ComputedRef<Problem[]>
  fetching: Ref<boolean>
  /** Asks again now (it does so itself when the ledger changes). */
  reload: () => void
}

export function useLiveQuery<Data>(query: TypedDocumentNode<Data, NoVariables>): LiveQuery<Data>
export function useLiveQuery<Data, Variables extends AnyVariables>(
  query: TypedDocumentNode<Data, Variables>,
  variables: () => Variables,
  pause?: () => boolean,
): LiveQuery<Data>
export function useLiveQuery<Data, Variables extends AnyVariables>(
  query: TypedDocumentNode<Data, Variables>,
  // Only the first signature omits the variables, and there Variables is NoVariables.
  variables: () => Variables = () => ({}) as Variables,
  pause: () => boolean = () => false,
): LiveQuery<Data> {
  const result = useQuery<Data, Variables>({ query, variables, requestPolicy: 'network-only', pause })
  function reload(): void {
    if (!pause()) void result.executeQuery({ requestPolicy: 'network-only' })
  }
  watch(revision, reload)
  const problems = computed<Problem[]>(() =>
    result.error.value ? describeError(result.error.value) : [],
  )
  return { data: result.data, error: result.error, problems, fetching: result.fetching, reload }
}

export interface Action<Data, Variables> {
  run: (variables: Variables) => Promise<Data | null>
  busy: Ref<boolean>
  problems: Ref<Problem[]>
  lastError: ReturnType<typeof useMutation>['error']
}

/** A mutation whose failures become `problems`; on success every live view reloads. */
export function useAction<Data, Variables extends AnyVariables>(
  mutation: TypedDocumentNode<Data, Variables>,
): Action<Data, Variables> {
  const { executeMutation, fetching, error } = useMutation<Data, Variables>(mutation)
  const problems = ref<Problem[]>([])
  async function run(variables: Variables): Promise<Data | null> {
    problems.value = []
    const result = await executeMutation(variables)
    if (result.error) {
      problems.value = describeError(result.error)
      return null
    }
    changed()
    return result.data ?? null
  }
  return { run, busy: fetching, problems, lastError: error }
}
