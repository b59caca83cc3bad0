// The schools of the network, as the caller's channels show them.
interface ChannelMembers {
  name: string
  members: string[]
}

/** Organisations on the `report` channel that are not on `medical`: the schools. */
export function schoolsOf(channels: ChannelMembers[]): string[] {
  const report = channels.find((c) => c.name === 'report')
  const medical = channels.find((c) => c.name === 'medical')
  if (!report) return []
  const notSchools = new Set(medical?.members ?? ['hospital', 'parents'])
  return report.members.filter((org) => !notSchools.has(org)).sort()
}
