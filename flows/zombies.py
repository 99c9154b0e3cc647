"""Flow runs whose process died (kill -9, a lost worker machine) marked `Crashed` by the Prefect server, so that
`prefect flow-run retry` takes them and the UI stops showing them `Running` forever.

A flow run sends a heartbeat event every `PREFECT_FLOWS_HEARTBEAT_FREQUENCY` seconds (prefect.yaml sets
`HEARTBEAT_S` for every deployment's runs). The server's automation `ZOMBIE_AUTOMATION` (made once, by the
pull step `watch_heartbeats` of the first deployment run, or by `python -m flows.zombies`) marks a flow run
`Crashed` when `MISSED_HEARTBEATS` heartbeat periods pass after one of its heartbeats with neither another
heartbeat nor a final state. In: the Prefect API of the environment. Out: the automation on that server.
"""

from __future__ import annotations

from datetime import timedelta

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification

ZOMBIE_AUTOMATION = "dvmset: crash flow runs that stopped sending heartbeats"
HEARTBEAT_S = 30  # PREFECT_FLOWS_HEARTBEAT_FREQUENCY of the deployments' runs (Prefect's shortest)
MISSED_HEARTBEATS = 3  # heartbeat periods without one before a run counts as dead
FINAL_EVENTS = ("Completed", "Failed", "Cancelled", "Crashed")


def zombie_automation(heartbeat_s: int = HEARTBEAT_S, missed: int = MISSED_HEARTBEATS) -> AutomationCore:
    """The automation (not yet on a server): a flow run's heartbeat not followed within `missed` x
    `heartbeat_s` by another heartbeat or a final state -> that run set `Crashed`."""
    return AutomationCore(
        name=ZOMBIE_AUTOMATION,
        description=f"a flow run silent for {missed} heartbeats of {heartbeat_s} s is marked Crashed, so retry works",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *(f"prefect.flow-run.{state}" for state in FINAL_EVENTS)},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=missed * heartbeat_s),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"no heartbeat for {missed * heartbeat_s} s: its process died (a killed or lost worker)",
            )
        ],
    )


def ensure_zombie_automation() -> bool:
    """Make `ZOMBIE_AUTOMATION` on the server of the environment's Prefect API unless it is there; True if made.
    Runs starting at once may each make a copy: every caller then keeps the copy with the smallest id and
    deletes the others, so the server ends with exactly one (the smallest id is never deleted)."""
    with get_client(sync_client=True) as client:
        if client.read_automations_by_name(name=ZOMBIE_AUTOMATION):
            return False
        client.create_automation(zombie_automation())
        copies = sorted(client.read_automations_by_name(name=ZOMBIE_AUTOMATION), key=lambda copy: str(copy.id))
        for extra in copies[1:]:
            client.delete_automation(extra.id)
    return True


if __name__ == "__main__":
    made = ensure_zombie_automation()
    print(f"{ZOMBIE_AUTOMATION}: {'made' if made else 'already there'}")
