"""A stand-in contact workflow for tests: starts one journey as a child and keeps its requests.

It checks the journey's side of the contract with the parent (``journey_request`` signals,
``finished`` last) without depending on how the contact workflow wires journeys.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.workflow import ParentClosePolicy

from workflows.journey import JourneyParent, JourneyWorkflow

with workflow.unsafe.imports_passed_through():
    from journeys.contract import JourneyInput, JourneyRequest, JourneyResult


@workflow.defn(name="JourneyTestParent")
class JourneyTestParent(JourneyParent):
    """Starts ``JourneyWorkflow`` as a child and collects what it asks for."""

    def __init__(self) -> None:
        self.requests: list[JourneyRequest] = []

    @workflow.run
    async def run(self, data: JourneyInput) -> JourneyResult:
        """Run the child to its end, then wait until its last request arrived."""
        result = await workflow.execute_child_workflow(
            JourneyWorkflow.run,
            data,
            id=f"{workflow.info().workflow_id}-child",
            parent_close_policy=ParentClosePolicy.ABANDON,
        )
        await workflow.wait_condition(lambda: any(r.kind == "finished" for r in self.requests))
        return result

    @workflow.signal(name="journey_request")
    def journey_request(self, request: JourneyRequest) -> None:
        """Keep one request."""
        self.requests.append(request)

    @workflow.query(name="requests")
    def received(self) -> list[JourneyRequest]:
        """Everything the journey asked for, in order."""
        return self.requests
