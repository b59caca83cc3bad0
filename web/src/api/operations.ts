// Every GraphQL operation the app sends; `npm run codegen` types them from ../schema.graphql.
import { graphql } from '../gql'

export const MeQuery = graphql(`
  query Me {
    me { uid msp org role name }
    channels { name members }
  }
`)

export const CardFieldsFragment = graphql(`
  fragment CardFields on MedicalCard {
    childId version updatedAt updatedBy bloodType allergies chronicConditions
    vaccinations { vaccine date dose }
    examinations { date doctorUid heightCm weightKg findings }
    healthGroup physicalEducationGroup notes
  }
`)

export const ChildrenQuery = graphql(`
  query Children($first: Int!, $after: String) {
    children(first: $first, after: $after) {
      edges { node { id fullName birthDate sex guardians pendingGuardians doctorUid } }
      pageInfo { hasNextPage endCursor }
    }
  }
`)

export const PendingGuardianshipsQuery = graphql(`
  query PendingGuardianships {
    pendingGuardianships { id fullName birthDate }
  }
`)

export const MedicalCardQuery = graphql(`
  query MedicalCard($childId: ID!) {
    medicalCard(childId: $childId) { ...CardFields }
  }
`)

export const CardHistoryQuery = graphql(`
  query CardHistory($childId: ID!, $first: Int!, $after: String) {
    medicalCardHistory(childId: $childId, first: $first, after: $after) {
      edges {
        cursor
        node {
          version txId blockNumber author timestamp
          card { ...CardFields }
        }
      }
      pageInfo { hasNextPage endCursor }
    }
  }
`)

export const VerifiedRecordFieldsFragment = graphql(`
  fragment VerifiedRecordFields on VerifiedRecord {
    key canonicalText salt commitment txHashInputs
    inclusion {
      leafIndex treeSize leafHash hashes
      checkpoint { origin treeSize rootHash note }
    }
  }
`)

/** One version's proof: the page after `after` (a cursor of the history), of one version. */
export const CardRevisionProofQuery = graphql(`
  query CardRevisionProof($childId: ID!, $after: String) {
    medicalCardHistory(childId: $childId, first: 1, after: $after) {
      edges { node { version txId proof { ...VerifiedRecordFields } } }
    }
  }
`)

export const AgreementsQuery = graphql(`
  query Agreements($childId: ID, $first: Int!, $after: String) {
    agreements(childId: $childId, first: $first, after: $after) {
      edges { node { id childId parentUid doctorUid status createdAt updatedAt validUntil } }
      pageInfo { hasNextPage endCursor }
    }
  }
`)

export const AdmissionRequestsQuery = graphql(`
  query AdmissionRequests($first: Int!, $after: String) {
    admissionRequests(first: $first, after: $after) {
      edges { node { id childId childName school status reason createdAt } }
      pageInfo { hasNextPage endCursor }
    }
  }
`)

export const ReportRequestsQuery = graphql(`
  query ReportRequests($status: ReportRequestStatus, $first: Int!, $after: String) {
    reportRequests(status: $status, first: $first, after: $after) {
      edges { node { id admissionRequestId childId school status reportId createdAt } }
      pageInfo { hasNextPage endCursor }
    }
  }
`)

export const PermissionFieldsFragment = graphql(`
  fragment PermissionFields on ReportPermission { school grantedAt validUntil status }
`)

export const ReportsQuery = graphql(`
  query Reports($first: Int!, $after: String) {
    reports(first: $first, after: $after) {
      edges {
        node {
          id txId childId reportRequestId status authorUid createdAt permittedSchools cardVersion
          cardHash
          permissions { ...PermissionFields }
        }
      }
      pageInfo { hasNextPage endCursor }
    }
  }
`)

export const ReportContentQuery = graphql(`
  query ReportContent($id: ID!) {
    report(id: $id) {
      id status
      content {
        childName healthGroup physicalEducationGroup allergies chronicConditions conclusion
        vaccinations { vaccine date dose }
      }
    }
  }
`)

export const ReportProofQuery = graphql(`
  query ReportProof($id: ID!) {
    report(id: $id) { id proof { ...VerifiedRecordFields } }
  }
`)

export const ChildQuery = graphql(`
  query Child($id: ID!) {
    child(id: $id) { id fullName birthDate }
  }
`)

/** The child's whole record as a FHIR R4 Bundle (guardians only): a read the access log records. */
export const ChildFhirRecordQuery = graphql(`
  query ChildFhirRecord($id: ID!) {
    child(id: $id) { id fhir }
  }
`)

export const AccessLogQuery = graphql(`
  query AccessLog($childId: ID!, $first: Int!, $after: String) {
    accessLog(childId: $childId, first: $first, after: $after) {
      edges {
        node {
          id at readerUid readerOrg readerRole what recordId version purpose outcome blockNumber
        }
      }
      pageInfo { hasNextPage endCursor }
    }
  }
`)

export const EmergencyAccessFieldsFragment = graphql(`
  fragment EmergencyAccessFields on EmergencyAccess {
    id childId doctorUid reason openedAt validUntil endedAt endedBy
  }
`)

export const EmergencyAccessesQuery = graphql(`
  query EmergencyAccesses($childId: ID!) {
    emergencyAccesses(childId: $childId) { ...EmergencyAccessFields }
  }
`)

export const ChannelsQuery = graphql(`
  query Channels {
    channels { name members height tipHash }
  }
`)

export const BlocksQuery = graphql(`
  query Blocks($channel: String!, $first: Int!, $after: String) {
    blocks(channel: $channel, first: $first, after: $after) {
      edges {
        node {
          number hash timestamp transactionCount
          transactions {
            index redacted txId contract function creator creatorMsp validation writeSetHash
          }
        }
      }
      pageInfo { hasNextPage endCursor }
    }
  }
`)

export const VerifyChannelQuery = graphql(`
  query VerifyChannel($channel: String!, $full: Boolean!) {
    verifyChannel(channel: $channel, full: $full) { channel ok height firstBadBlock reason }
  }
`)

export const RegisterChildMutation = graphql(`
  mutation RegisterChild($input: RegisterChildInput!) {
    registerChild(input: $input) { id fullName }
  }
`)

export const AcceptGuardianshipMutation = graphql(`
  mutation AcceptGuardianship($childId: ID!) {
    acceptGuardianship(childId: $childId) { id fullName }
  }
`)

export const SignAgreementMutation = graphql(`
  mutation SignAgreement($childId: ID!, $doctorUid: String!, $validUntil: DateTime) {
    signAgreement(childId: $childId, doctorUid: $doctorUid, validUntil: $validUntil) {
      id status validUntil
    }
  }
`)

export const ExtendAgreementMutation = graphql(`
  mutation ExtendAgreement($id: ID!, $validUntil: DateTime!) {
    extendAgreement(id: $id, validUntil: $validUntil) { id status validUntil }
  }
`)

export const AcceptAgreementMutation = graphql(`
  mutation AcceptAgreement($id: ID!) {
    acceptAgreement(id: $id) { id status }
  }
`)

export const RevokeAgreementMutation = graphql(`
  mutation RevokeAgreement($id: ID!) {
    revokeAgreement(id: $id) { id status }
  }
`)

export const UpdateMedicalCardMutation = graphql(`
  mutation UpdateMedicalCard($childId: ID!, $expectedVersion: Int!, $patch: MedicalCardPatch!) {
    updateMedicalCard(childId: $childId, expectedVersion: $expectedVersion, patch: $patch) {
      ...CardFields
    }
  }
`)

export const CreateAdmissionRequestMutation = graphql(`
  mutation CreateAdmissionRequest($childId: ID!, $school: String!) {
    createAdmissionRequest(childId: $childId, school: $school) { id status }
  }
`)

export const AcceptAdmissionRequestMutation = graphql(`
  mutation AcceptAdmissionRequest($id: ID!) {
    acceptAdmissionRequest(id: $id) { id status }
  }
`)

export const RejectAdmissionRequestMutation = graphql(`
  mutation RejectAdmissionRequest($id: ID!, $reason: String!) {
    rejectAdmissionRequest(id: $id, reason: $reason) { id status reason }
  }
`)

export const CreateReportRequestMutation = graphql(`
  mutation CreateReportRequest($admissionRequestId: ID!) {
    createReportRequest(admissionRequestId: $admissionRequestId) { id status }
  }
`)

export const CreateReportMutation = graphql(`
  mutation CreateReport($reportRequestId: ID!, $conclusion: String!) {
    createReport(reportRequestId: $reportRequestId, conclusion: $conclusion) {
      id status cardVersion
    }
  }
`)

export const ApproveReportMutation = graphql(`
  mutation ApproveReport($id: ID!, $schools: [String!]!, $validUntil: DateTime) {
    approveReport(id: $id, schools: $schools, validUntil: $validUntil) {
      id status permittedSchools
      permissions { ...PermissionFields }
    }
  }
`)

export const RevokeReportPermissionMutation = graphql(`
  mutation RevokeReportPermission($id: ID!, $school: String!) {
    revokeReportPermission(id: $id, school: $school) {
      id status permittedSchools
      permissions { ...PermissionFields }
    }
  }
`)

export const OpenEmergencyAccessMutation = graphql(`
  mutation OpenEmergencyAccess($childId: ID!, $reason: String!) {
    openEmergencyAccess(childId: $childId, reason: $reason) { ...EmergencyAccessFields }
  }
`)

export const EndEmergencyAccessMutation = graphql(`
  mutation EndEmergencyAccess($id: ID!) {
    endEmergencyAccess(id: $id) { ...EmergencyAccessFields }
  }
`)

export const EraseChildMutation = graphql(`
  mutation EraseChild($childId: ID!, $confirm: String!) {
    eraseChild(childId: $childId, confirm: $confirm) { childId erasedAt channels }
  }
`)

export const EventsSubscription = graphql(`
  subscription Events($channel: String!) {
    events(channel: $channel) { channel name blockNumber txId subjectId }
  }
`)
