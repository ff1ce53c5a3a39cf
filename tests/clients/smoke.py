"""The smoke flow through the Python client generated from the served OpenAPI document.

Run by tests/clients/run.sh with the generated package `flightdeck_client` on PYTHONPATH and
FLIGHTDECK_URL (and FLIGHTDECK_TOKEN, empty when the server runs open) in the environment.
Every call goes through the generated functions and models; any failure raises and exits
non-zero with the step that failed.
"""

import os
import sys
import uuid

from flightdeck_client import AuthenticatedClient, Client
from flightdeck_client.api.events import list_events
from flightdeck_client.api.items import (
    claim_item,
    complete_item,
    create_item,
    delete_item,
    get_item,
    get_item_history,
    list_items,
    move_item,
)
from flightdeck_client.api.status import get_status
from flightdeck_client.models import (
    AcceptanceEntry,
    ArtifactInput,
    ArtifactKind,
    ClaimRequest,
    Claimed,
    CompleteOutcome,
    CompleteRequest,
    ErrorBody,
    InitialStatus,
    MoveRequest,
    NewWorkItem,
    Priority,
    Status,
    StatusReport,
    WorkItem,
)


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


def answer(response, status, kind):
    """The parsed body of `response`, which must have `status` and parse as `kind`."""
    expect(
        response.status_code == status,
        f"expected {status}, got {response.status_code}: {response.content[:300]!r}",
    )
    expect(isinstance(response.parsed, kind), f"expected a {kind.__name__}, got {response.parsed!r}")
    return response.parsed


def main():
    url = os.environ["FLIGHTDECK_URL"]
    token = os.environ.get("FLIGHTDECK_TOKEN", "")
    # Writes without a body carry X-Flightdeck; writes with one are sent as JSON.
    headers = {"X-Flightdeck": "1"}
    if token:
        client = AuthenticatedClient(base_url=url, token=token, headers=headers, raise_on_unexpected_status=True)
    else:
        client = Client(base_url=url, headers=headers, raise_on_unexpected_status=True)
    run = uuid.uuid4().hex[:8]

    status = answer(get_status.sync_detailed(client=client), 200, StatusReport)
    print(f"server {status.version}, {status.total} items")

    criterion = "the parser accepts every sample"
    first = answer(
        create_item.sync_detailed(
            client=client,
            body=NewWorkItem(
                title=f"py {run}: write the parser",
                priority=Priority.URGENT,
                status=InitialStatus.READY,
                acceptance_criteria=[criterion],
            ),
        ),
        201,
        WorkItem,
    )
    second = answer(
        create_item.sync_detailed(
            client=client,
            body=NewWorkItem(
                title=f"py {run}: use the parser",
                priority=Priority.URGENT,
                status=InitialStatus.READY,
                blocked_by=[first.id],
            ),
        ),
        201,
        WorkItem,
    )
    expect(second.blocked_by == [first.id], f"the second item waits for the first: {second.blocked_by}")
    print(f"created {first.id[:8]} and {second.id[:8]} (blocked by the first)")

    ready = answer(list_items.sync_detailed(client=client, status=Status.READY, q=f"py {run}"), 200, list)
    expect({i.id for i in ready} == {first.id, second.id}, f"the filtered list holds both items: {ready}")
    none = answer(list_items.sync_detailed(client=client, priority=Priority.LOW, q=f"py {run}"), 200, list)
    expect(none == [], f"no low-priority items of this run: {none}")

    claimed = answer(
        claim_item.sync_detailed(client=client, body=ClaimRequest(agent_id="py-worker", session_key=f"py-{run}")),
        200,
        Claimed,
    )
    expect(claimed.item.id == first.id, f"the claim takes the unblocked item, got {claimed.item.title}")
    expect(claimed.item.status == Status.IN_FLIGHT, f"a claimed item is in flight: {claimed.item.status}")
    expect(criterion in claimed.context, "the AGENTS.md text names the criterion")

    outcome = answer(
        complete_item.sync_detailed(
            client=client,
            id=first.id[:8],
            body=CompleteRequest(
                acceptance=[AcceptanceEntry(criterion=criterion, met=True, evidence="all 12 pass")],
                artifacts=[ArtifactInput(type_=ArtifactKind.LINK, path="https://example.com/pr/1", description="the PR")],
            ),
        ),
        200,
        CompleteOutcome,
    )
    expect(outcome.accepted and outcome.unmet == [], f"the report meets the criterion: {outcome.unmet}")
    expect(outcome.item.status in (Status.REVIEW, Status.DONE), f"accepted work leaves flight: {outcome.item.status}")
    if outcome.item.status == Status.REVIEW:
        done = answer(
            move_item.sync_detailed(client=client, id=first.id, body=MoveRequest(status=Status.DONE, reason="looks good")),
            200,
            WorkItem,
        )
        expect(done.status == Status.DONE, f"moved to done: {done.status}")

    seq_before = max([e.seq for e in answer(list_events.sync_detailed(client=client, limit=20000), 200, list)] + [0])

    claimed = answer(
        claim_item.sync_detailed(client=client, body=ClaimRequest(agent_id="py-worker", session_key=f"py-{run}-2")),
        200,
        Claimed,
    )
    expect(claimed.item.id == second.id, "once its blocker is done, the second item is claimable")
    outcome = answer(
        complete_item.sync_detailed(client=client, id=second.id, body=CompleteRequest()), 200, CompleteOutcome
    )
    if outcome.item.status == Status.REVIEW:
        rejected = answer(
            move_item.sync_detailed(
                client=client, id=second.id, body=MoveRequest(status=Status.READY, reason="needs a test")
            ),
            200,
            WorkItem,
        )
        expect(rejected.status == Status.READY, f"a rejection sends the item back to ready: {rejected.status}")

    history = answer(get_item_history.sync_detailed(client=client, id=second.id[:8]), 200, list)
    expect(len(history) >= 2, f"the history holds the claim and the completion: {history}")
    expect(history[-1].to == answer(get_item.sync_detailed(client=client, id=second.id), 200, WorkItem).status,
           "the last change in the history is the item's status")

    events = answer(list_events.sync_detailed(client=client, since=seq_before), 200, list)
    expect(events and all(e.seq > seq_before for e in events), f"only events after seq {seq_before}: {events}")
    expect(
        any(second.id in str(e.data.to_dict()) for e in events),
        "the events after the seq mention the second item",
    )

    # Leave nothing claimable behind for the next client's flow.
    gone = delete_item.sync_detailed(client=client, id=second.id)
    expect(gone.status_code == 204, f"the rejected item is deleted: {gone.status_code}")

    missing = get_item.sync_detailed(client=client, id="ffffffff-0000-0000-0000-000000000000")
    error = answer(missing, 404, ErrorBody)
    expect(error.error.code == "not_found", f"a 404's body names its code: {error.error.code}")
    print("python client: smoke flow passed")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # the step and its reason, then a failing exit
        print(f"python client: smoke flow FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        raise
