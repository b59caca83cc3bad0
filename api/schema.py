"""The GraphQL schema (schema.graphql) and `build_schema`, which gives it its extensions.

Resolvers are thin: the caller's identity, one gateway call, and the result mapped to types.
Who may do what is enforced in the contracts; the permission classes next to some fields say
it early and plainly. Each extension lives in a module of its own; `build_schema` lists them in
the order they run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any

import strawberry
from graphql import DocumentNode, GraphQLError
from strawberry.extensions import MaxTokensLimiter
from strawberry.permission import BasePermission
from strawberry.types import ExecutionContext, Info
from strawberry.types.field import StrawberryField
from strawberry.types.nodes import SelectedField, Selection

from chaincode.paging import DEFAULT_FIRST
from domain.errors import BadInputError, ForbiddenError
from ledger_backends.records import format_timestamp

from . import proofs
from .cached_parsing import CachedParsing
from .checkpoint_access import channel_checkpoint
from .context import context_of
from .cost import CostCheckedValidation
from .document_cache import DocumentCache
from .errors import ErrorCodes, log_error
from .explorer import block_page, block_view
from .metrics import OperationMetrics
from .operation_choice import OperationChoice
from .paging import After, First, FirstOrDefault, PagedList
from .permissions import DoctorsOnly, MedicalChannelMembers, ParentsOnly, SchoolsOnly
from .query_limits import MAX_TOKENS, QueryLimits
from .subscription_transport import SubscriptionsOnWebsockets
from .types import (
    AccessEntry,
    AdmissionRequest,
    AdmissionStatus,
    Agreement,
    Block,
    Channel,
    Checkpoint,
    Child,
    Connection,
    ConsistencyProof,
    EmergencyAccess,
    ErasureReceipt,
    Identity,
    InclusionProof,
    LedgerEvent,
    MedicalCard,
    MedicalCardPatch,
    MedicalCardRevision,
    RegisterChildInput,
    Report,
    ReportRequest,
    ReportRequestStatus,
    ReportStatus,
    Role,
    Verification,
)
from .variable_limits import BoundedVariables

Permissions = list[type[BasePermission]]


# Strawberry types its decorators as Any when they are given options; these say what they make.
def field(
    *, description: str | None = None, permission_classes: Permissions | None = None
) -> StrawberryField:
    made: StrawberryField = strawberry.field(
        description=description, permission_classes=permission_classes
    )
    return made


def mutation(
    *, description: str | None = None, permission_classes: Permissions | None = None
) -> StrawberryField:
    made: StrawberryField = strawberry.mutation(
        description=description, permission_classes=permission_classes
    )
    return made


def subscription(*, description: str | None = None) -> StrawberryField:
    made: StrawberryField = strawberry.subscription(description=description)
    return made


async def _evaluate(info: Info, channel: str, function: str, **args: Any) -> Any:
    c = context_of(info)
    return await c.services.gateway.evaluate(c.identity, channel, function, args)


async def _submit(info: Info, channel: str, function: str, **args: Any) -> Any:
    c = context_of(info)
    return await c.services.gateway.submit(c.identity, channel, function, args)


def _status(value: Any) -> str | None:
    return None if value is None else str(value.value)


def _ledger_time(moment: datetime | None) -> str | None:
    """A DateTime argument as the contracts take it; one without a time zone is refused."""
    if moment is None:
        return None
    if moment.utcoffset() is None:
        raise BadInputError("validUntil must give its time zone, e.g. 2026-10-01T08:00:00Z.")
    return format_timestamp(moment)


def _selects(info: Info, name: str) -> bool:
    """Whether the query asks for a field `name` anywhere below this one (in fragments too):
    a report's content is read, and its read recorded, only when it is asked for; the
    openings a `proof` needs are handed out only when one is asked for."""
    pending: list[Selection] = [s for f in info.selected_fields for s in f.selections]
    while pending:
        selection = pending.pop()
        if isinstance(selection, SelectedField) and selection.name == name:
            return True
        pending.extend(selection.selections)
    return False


@strawberry.type
class Query:
    @field(description="Who the client certificate says you are.")
    def me(self, info: Info) -> Identity:
        identity = context_of(info).identity
        return Identity(
            uid=identity.uid,
            msp=identity.msp,
            org=identity.org,
            role=Role(identity.role.value),
            name=identity.name,
        )

    @field(
        permission_classes=[MedicalChannelMembers],
        description=(
            "A parent's own children; a doctor's children under ACTIVE agreements. In the order "
            "of their ids, which hold no time (a school is shown child ids)."
        ),
    )
    async def children(
        self, info: Info, first: First = DEFAULT_FIRST, after: After = None
    ) -> Connection[Child]:
        page = PagedList.of(info, "children", first)
        found = await _evaluate(
            info, "medical", "listChildren", first=first, after=page.position_after(after)
        )
        return page.connection(found, Child.of)

    @field(
        permission_classes=[MedicalChannelMembers],
        description=(
            "Children whose guardianship you are offered (id, fullName and birthDate only; "
            "the rest stays empty until you accept with acceptGuardianship)."
        ),
    )
    async def pending_guardianships(self, info: Info) -> list[Child]:
        return [Child.of(r) for r in await _evaluate(info, "medical", "pendingGuardianships")]

    @field(permission_classes=[MedicalChannelMembers])
    async def child(self, info: Info, id: strawberry.ID) -> Child | None:
        return Child.of(await _evaluate(info, "medical", "readChild", childId=id))

    @field(permission_classes=[MedicalChannelMembers])
    async def medical_card(self, info: Info, child_id: strawberry.ID) -> MedicalCard:
        return MedicalCard.of(await _evaluate(info, "medical", "readCard", childId=child_id))

    @field(
        permission_classes=[MedicalChannelMembers],
        description="Every version of the card, newest first, with what made it.",
    )
    async def medical_card_history(
        self,
        info: Info,
        child_id: strawberry.ID,
        first: First = DEFAULT_FIRST,
        after: After = None,
    ) -> Connection[MedicalCardRevision]:
        page = PagedList.of(info, "medicalCardHistory", first, childId=child_id)
        found = await _evaluate(
            info,
            "medical",
            "cardHistory",
            childId=child_id,
            first=first,
            after=page.position_after(after),
            withProof=_selects(info, "proof"),
        )
        return page.connection(found, MedicalCardRevision.of)

    @field(
        permission_classes=[MedicalChannelMembers],
        description="A parent's agreements (of one child if childId is given); a doctor's.",
    )
    async def agreements(
        self,
        info: Info,
        child_id: strawberry.ID | None = None,
        first: First = DEFAULT_FIRST,
        after: After = None,
    ) -> Connection[Agreement]:
        page = PagedList.of(info, "agreements", first, childId=child_id)
        found = await _evaluate(
            info,
            "medical",
            "listAgreements",
            childId=child_id,
            first=first,
            after=page.position_after(after),
        )
        return page.connection(found, Agreement.of)

    @field(description="A guardian's applications; the requests addressed to a school.")
    async def admission_requests(
        self,
        info: Info,
        status: AdmissionStatus | None = None,
        first: First = DEFAULT_FIRST,
        after: After = None,
    ) -> Connection[AdmissionRequest]:
        page = PagedList.of(info, "admissionRequests", first, status=_status(status))
        found = await _evaluate(
            info,
            "report",
            "listAdmissionRequests",
            status=_status(status),
            first=first,
            after=page.position_after(after),
        )
        return page.connection(found, AdmissionRequest.of)

    @field(
        description="A school's own; a guardian's; a doctor's, of children under ACTIVE agreements."
    )
    async def report_requests(
        self,
        info: Info,
        status: ReportRequestStatus | None = None,
        first: First = DEFAULT_FIRST,
        after: After = None,
    ) -> Connection[ReportRequest]:
        c = context_of(info)
        page = PagedList.of(info, "reportRequests", first, status=_status(status))
        found = await c.services.gateway.list_report_requests(
            c.identity, _status(status), first, page.position_after(after)
        )
        return page.connection(found, ReportRequest.of)

    @field(description="Reports you may see: a guardian's, the author's, a school's.")
    async def reports(
        self,
        info: Info,
        status: ReportStatus | None = None,
        first: First = DEFAULT_FIRST,
        after: After = None,
    ) -> Connection[Report]:
        page = PagedList.of(info, "reports", first, status=_status(status))
        found = await _evaluate(
            info,
            "report",
            "listReports",
            status=_status(status),
            first=first,
            after=page.position_after(after),
            withContent=_selects(info, "content"),
            withProof=_selects(info, "proof"),
        )
        return page.connection(found, Report.of)

    @field()
    async def report(self, info: Info, id: strawberry.ID) -> Report:
        found = await _evaluate(
            info,
            "report",
            "readReport",
            id=id,
            withContent=_selects(info, "content"),
            withProof=_selects(info, "proof"),
        )
        return Report.of(found)

    @field(
        permission_classes=[MedicalChannelMembers],
        description=(
            "For the child's guardians: every read of the child's protected data (the child, "
            "its medical card, the card's history, its reports' content) and every refused "
            "attempt, newest first. Anyone else is told the child does not exist."
        ),
    )
    async def access_log(
        self,
        info: Info,
        child_id: strawberry.ID,
        first: FirstOrDefault = DEFAULT_FIRST,
        after: After = None,
    ) -> Connection[AccessEntry]:
        first = DEFAULT_FIRST if first is None else first
        c = context_of(info)
        page = PagedList.of(info, "accessLog", first, childId=child_id)
        found = await c.services.gateway.list_access_log(
            c.identity, child_id, first, page.position_after(after)
        )
        return page.connection(found, AccessEntry.of)

    @field(
        permission_classes=[MedicalChannelMembers],
        description=(
            "For the child's guardians and the hospital's administrators: every emergency "
            "access to the child, newest first."
        ),
    )
    async def emergency_accesses(
        self, info: Info, child_id: strawberry.ID
    ) -> list[EmergencyAccess]:
        found = await _evaluate(info, "medical", "listEmergencyAccesses", childId=child_id)
        return [EmergencyAccess.of(access) for access in found]

    @field(description="The channels your organisation belongs to.")
    async def channels(self, info: Info) -> list[Channel]:
        c = context_of(info)
        found = []
        for config in c.services.access.channels_for(c.identity):
            tip = await asyncio.to_thread(c.services.channels[config.name].tip)
            found.append(
                Channel(
                    name=config.name,
                    members=list(config.members),
                    height=tip.height,
                    tip_hash=tip.hash,
                )
            )
        return found

    @field(
        description="Blocks, newest first: their headers and transaction headers, never state "
        "values."
    )
    async def blocks(
        self, info: Info, channel: str, first: First = DEFAULT_FIRST, after: After = None
    ) -> Connection[Block]:
        c = context_of(info)
        c.services.access.require_member(c.identity, channel)
        page = PagedList.of(info, "blocks", first, channel=channel)
        below = page.position_after(after)
        found = await asyncio.to_thread(block_page, c.services.channels[channel], first, below)
        return page.connection(found, lambda block: block_view(block, c.identity))

    @field(
        description="Check the channel's chain: the blocks added since this server last found "
        "it intact, or with full (administrators only) every block from 0, replaying its state."
    )
    async def verify_channel(
        self, info: Info, channel: str, full: bool | None = False
    ) -> Verification:
        c = context_of(info)
        c.services.access.require_member(c.identity, channel)
        if full and Role(c.identity.role.value) is not Role.ADMIN:
            raise ForbiddenError("Only administrators can have a chain verified from block 0.")
        result = await c.services.chain_checks.verify(channel, full=bool(full))
        return Verification(
            channel=result.channel,
            ok=result.ok,
            height=result.height,
            first_bad_block=result.first_bad_block,
            reason=result.reason,
        )

    @field(
        description="The channel's current signed checkpoint, for members of the channel "
        "(anyone else is told there is no such channel)."
    )
    async def checkpoint(self, info: Info, channel: str) -> Checkpoint:
        c = context_of(info)
        return Checkpoint.of(await channel_checkpoint(c.services, c.identity, channel))

    @field(
        description=(
            "The proof that a transaction is in the channel's tree of treeSize leaves (now, "
            "when null), with the checkpoint signed for that size. Only for those who may "
            "read, now, the medical card or report the transaction wrote; for anyone else, "
            "as for an unknown txId, NOT_FOUND."
        )
    )
    async def inclusion_proof(
        self, info: Info, channel: str, tx_id: str, tree_size: int | None = None
    ) -> InclusionProof:
        c = context_of(info)
        signed = await proofs.inclusion_proof(c.services, c.identity, channel, tx_id, tree_size)
        return InclusionProof.of(signed.proof, signed.checkpoint)

    @field(
        description=(
            "The proof that the channel's tree of toSize leaves extends its tree of fromSize "
            "leaves, with the checkpoint signed for toSize; for members of the channel "
            "(anyone else is told there is no such channel)."
        )
    )
    async def consistency_proof(
        self, info: Info, channel: str, from_size: int, to_size: int
    ) -> ConsistencyProof:
        c = context_of(info)
        signed = await proofs.consistency_proof(c.services, c.identity, channel, from_size, to_size)
        return ConsistencyProof.of(signed.proof, signed.checkpoint)


@strawberry.type
class Mutation:
    @mutation(
        permission_classes=[ParentsOnly],
        description="Parents: you become a guardian; otherGuardians are offered guardianship.",
    )
    async def register_child(self, info: Info, input: RegisterChildInput) -> Child:
        child = await _submit(
            info,
            "medical",
            "registerChild",
            fullName=input.full_name,
            birthDate=input.birth_date.isoformat(),
            sex=input.sex,
            otherGuardians=input.other_guardians,
        )
        return Child.of(child)

    @mutation(
        permission_classes=[ParentsOnly],
        description="A parent offered guardianship of the child becomes its guardian.",
    )
    async def accept_guardianship(self, info: Info, child_id: strawberry.ID) -> Child:
        return Child.of(await _submit(info, "medical", "acceptGuardianship", childId=child_id))

    @mutation(
        permission_classes=[ParentsOnly],
        description="A guardian -> PENDING; in force until validUntil (in the future) if given.",
    )
    async def sign_agreement(
        self,
        info: Info,
        child_id: strawberry.ID,
        doctor_uid: str,
        valid_until: datetime | None = None,
    ) -> Agreement:
        found = await _submit(
            info,
            "medical",
            "signAgreement",
            childId=child_id,
            doctorUid=doctor_uid,
            validUntil=_ledger_time(valid_until),
        )
        return Agreement.of(found)

    @mutation(
        permission_classes=[ParentsOnly],
        description=(
            "A guardian gives a PENDING, ACTIVE or EXPIRED agreement a new end, validUntil (in "
            "the future): an EXPIRED one is in force again."
        ),
    )
    async def extend_agreement(
        self, info: Info, id: strawberry.ID, valid_until: datetime
    ) -> Agreement:
        found = await _submit(
            info, "medical", "extendAgreement", id=id, validUntil=_ledger_time(valid_until)
        )
        return Agreement.of(found)

    @mutation(permission_classes=[DoctorsOnly], description="The named doctor -> ACTIVE.")
    async def accept_agreement(self, info: Info, id: strawberry.ID) -> Agreement:
        return Agreement.of(await _submit(info, "medical", "acceptAgreement", id=id))

    @mutation(permission_classes=[ParentsOnly], description="A guardian -> REVOKED.")
    async def revoke_agreement(self, info: Info, id: strawberry.ID) -> Agreement:
        return Agreement.of(await _submit(info, "medical", "revokeAgreement", id=id))

    @mutation(permission_classes=[DoctorsOnly], description="The doctor of an ACTIVE agreement.")
    async def update_medical_card(
        self, info: Info, child_id: strawberry.ID, expected_version: int, patch: MedicalCardPatch
    ) -> MedicalCard:
        card = await _submit(
            info,
            "medical",
            "updateMedicalCard",
            childId=child_id,
            expectedVersion=expected_version,
            patch=patch.to_record(),
        )
        return MedicalCard.of(card)

    @mutation(permission_classes=[ParentsOnly], description="A guardian -> PENDING.")
    async def create_admission_request(
        self, info: Info, child_id: strawberry.ID, school: str
    ) -> AdmissionRequest:
        c = context_of(info)
        found = await c.services.gateway.create_admission_request(c.identity, child_id, school)
        return AdmissionRequest.of(found)

    @mutation(permission_classes=[SchoolsOnly], description="That school -> ACCEPTED.")
    async def accept_admission_request(self, info: Info, id: strawberry.ID) -> AdmissionRequest:
        return AdmissionRequest.of(await _submit(info, "report", "acceptAdmissionRequest", id=id))

    @mutation(permission_classes=[SchoolsOnly], description="That school -> REJECTED.")
    async def reject_admission_request(
        self, info: Info, id: strawberry.ID, reason: str
    ) -> AdmissionRequest:
        found = await _submit(info, "report", "rejectAdmissionRequest", id=id, reason=reason)
        return AdmissionRequest.of(found)

    @mutation(
        permission_classes=[SchoolsOnly],
        description=(
            "The school of an ACCEPTED admission; the doctors of the child's agreements in "
            "force are told (ReportRequested)."
        ),
    )
    async def create_report_request(
        self, info: Info, admission_request_id: strawberry.ID
    ) -> ReportRequest:
        c = context_of(info)
        found = await c.services.gateway.create_report_request(c.identity, admission_request_id)
        return ReportRequest.of(found)

    @mutation(
        permission_classes=[DoctorsOnly], description="A doctor with an ACTIVE agreement -> READY."
    )
    async def create_report(
        self, info: Info, report_request_id: strawberry.ID, conclusion: str
    ) -> Report:
        c = context_of(info)
        found = await c.services.gateway.create_report(c.identity, report_request_id, conclusion)
        return Report.of(found)

    @mutation(
        permission_classes=[ParentsOnly],
        description=(
            "A guardian -> APPROVED: each school may read the report until validUntil (in the "
            "future; by default [consent] report_permission_days from now). Approving a school "
            "again renews its permission from now."
        ),
    )
    async def approve_report(
        self,
        info: Info,
        id: strawberry.ID,
        schools: list[str],
        valid_until: datetime | None = None,
    ) -> Report:
        found = await _submit(
            info,
            "report",
            "approveReport",
            id=id,
            schools=schools,
            validUntil=_ledger_time(valid_until),
        )
        return Report.of(found)

    @mutation(permission_classes=[ParentsOnly], description="A guardian -> REVOKED.")
    async def revoke_report_permission(self, info: Info, id: strawberry.ID, school: str) -> Report:
        found = await _submit(info, "report", "revokeReportPermission", id=id, school=school)
        return Report.of(found)

    @mutation(
        permission_classes=[DoctorsOnly],
        description=(
            "Any hospital doctor, with or without an agreement: read-only access to the child's "
            "medical card and its history for [consent] emergency_minutes. reason: at least 20 "
            "characters. The guardians are told at once, and every read is in the access log."
        ),
    )
    async def open_emergency_access(
        self, info: Info, child_id: strawberry.ID, reason: str
    ) -> EmergencyAccess:
        found = await _submit(
            info, "medical", "openEmergencyAccess", childId=child_id, reason=reason
        )
        return EmergencyAccess.of(found)

    @mutation(
        permission_classes=[MedicalChannelMembers],
        description="The doctor who opened the emergency access, or a guardian, ends it now.",
    )
    async def end_emergency_access(self, info: Info, id: strawberry.ID) -> EmergencyAccess:
        return EmergencyAccess.of(await _submit(info, "medical", "endEmergencyAccess", id=id))

    @mutation(
        description=(
            "A guardian, with confirm equal to the child's full name: the child's data keys are "
            "destroyed on every channel and the erasure is recorded; every read of the child's "
            "records then answers NOT_FOUND."
        ),
    )
    async def erase_child(
        self, info: Info, child_id: strawberry.ID, confirm: str
    ) -> ErasureReceipt:
        c = context_of(info)
        receipt = await c.services.gateway.erase_child(c.identity, child_id, confirm)
        return ErasureReceipt.of(receipt)


@strawberry.type
class Subscription:
    @subscription(description="Contract events you may see, as they are committed.")
    async def events(self, info: Info, channel: str) -> AsyncGenerator[LedgerEvent, None]:
        c = context_of(info)
        c.services.access.require_member(c.identity, channel)
        identity = c.identity
        # A revoked or expired certificate is the websocket handler's to catch (api.websocket):
        # it checks before each event is sent, and every second while idle.
        async for event in c.services.events.subscribe(channel):
            if event.visible_to(identity.uid, identity.org, identity.role.value):
                yield LedgerEvent(
                    channel=event.channel,
                    name=event.name,
                    block_number=event.block_number,
                    tx_id=event.tx_id,
                    subject_id=strawberry.ID(event.subject_id),
                )


class HealthLedgerSchema(strawberry.Schema):
    """Strawberry's schema, logging errors the way `api.errors.log_error` says."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            log_error(error)


def build_schema(
    query_type: type = Query,
    mutation_type: type | None = Mutation,
    subscription_type: type | None = Subscription,
) -> strawberry.Schema:
    """The API's schema: these root types (the API's own unless given) with every extension.

    The extensions, their order and their caches are the server's, so root types whose
    resolvers do no work measure exactly what the schema adds to each request.
    """
    # Kept per document text for every request of this schema; see DocumentCache.
    documents: DocumentCache[DocumentNode] = DocumentCache(maxsize=128)
    outcomes: DocumentCache[list[GraphQLError]] = DocumentCache(maxsize=128)
    return HealthLedgerSchema(
        query=query_type,
        mutation=mutation_type,
        subscription=subscription_type,
        extensions=[
            ErrorCodes,
            OperationMetrics,
            SubscriptionsOnWebsockets,
            BoundedVariables,
            QueryLimits,
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            lambda: CachedParsing(documents),
            # Refuses a document too costly to validate (api.cost), else validates it.
            lambda: CostCheckedValidation(outcomes),
            OperationChoice,
        ],
    )


schema = build_schema()
