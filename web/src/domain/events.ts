// What a ledger event means to the person who sees it.
import type { Role } from '../gql/graphql'

const SENTENCES: Record<string, string> = {
  ChildRegistered: 'A child was registered.',
  GuardianshipOffered: 'A parent was offered guardianship of a child.',
  GuardianshipAccepted: 'A parent accepted guardianship of a child and is now a guardian.',
  AgreementSigned: 'An agreement with a pediatrician was signed.',
  AgreementAccepted: 'The pediatrician accepted the agreement.',
  AgreementRevoked: 'An agreement with a pediatrician was revoked.',
  CardUpdated: 'A medical card was updated.',
  AdmissionRequested: 'A new admission request was made.',
  AdmissionAccepted: 'An admission request was accepted.',
  AdmissionRejected: 'An admission request was rejected.',
  ReportRequested: 'A school requested a health report.',
  ReportReady: 'A health report is ready.',
  ReportApproved: 'A health report was approved for schools.',
  ReportPermissionRevoked: "A school's permission to read a health report was withdrawn.",
  AgreementExtended: 'The end date of an agreement with a pediatrician changed.',
  AgreementEnded: 'An agreement with a pediatrician ended.',
  EmergencyAccessOpened: 'A doctor opened emergency access to a child’s medical card.',
  EmergencyAccessEnded: 'An emergency access to a child’s medical card ended.',
  ReportPermissionEnded: "A school's permission to read a health report ended.",
  ChildErased: 'A child’s records were erased: nobody can read them again.',
}

const FOR_ROLE: Partial<Record<Role, Record<string, string>>> = {
  DOCTOR: {
    AgreementSigned: 'A parent asked you to be their child’s pediatrician.',
    ReportRequested: 'A school asked you for a health report on a patient.',
    AgreementExtended: 'Parents changed the end date of their agreement with you.',
    AgreementEnded: 'An agreement ended: you can no longer read or edit that child’s card.',
    EmergencyAccessEnded: 'Your emergency access to a child’s card ended: you can no longer read it.',
  },
  PARENT: {
    GuardianshipOffered: 'You were offered guardianship of a child: accept it to see the child.',
    ReportReady: 'A health report is ready for your approval.',
    EmergencyAccessOpened:
      'A doctor opened emergency access to your child’s medical card: see the banner at the top.',
    ChildErased: 'A guardian erased a child’s records: nobody, you included, can read them again.',
  },
  SCHOOL: {
    AdmissionRequested: 'A new admission request is waiting for your decision.',
    ReportRequested: 'A health report was requested from the pediatrician.',
    ReportReady: 'A health report was written; the parents decide whether your school may read it.',
    ReportApproved: 'A health report was approved for your school.',
    ReportPermissionEnded: 'Your school’s permission to read a health report ended.',
  },
}

export function eventSentence(name: string, role: Role): string {
  return FOR_ROLE[role]?.[name] ?? SENTENCES[name] ?? 'Something changed on the ledger.'
}
