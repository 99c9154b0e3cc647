"""`ensure_zombie_automation` leaves exactly one copy of the automation on the server, also when two runs'
pull steps each found none and each made one (the race of flow runs starting at once)."""

from __future__ import annotations

import pytest
from prefect.client.orchestration import SyncPrefectClient, get_client

from flows.zombies import ZOMBIE_AUTOMATION, ensure_zombie_automation


def copies() -> list[str]:
    with get_client(sync_client=True) as client:
        return [str(automation.id) for automation in client.read_automations_by_name(name=ZOMBIE_AUTOMATION)]


def test_racing_callers_leave_one_automation(prefect_server, monkeypatch):
    for automation_id in copies():  # the session's server may hold one from an earlier test
        with get_client(sync_client=True) as client:
            client.delete_automation(automation_id)
    real_read = SyncPrefectClient.read_automations_by_name
    # a creating call reads twice (the check, then the copies after making one); both callers' checks find
    # nothing, as when both look before either has made its copy
    misses = iter([True, False, True, False])

    def read_missing_the_other_racer(client, name):
        found = real_read(client, name)
        return [] if next(misses, False) else found

    monkeypatch.setattr(SyncPrefectClient, "read_automations_by_name", read_missing_the_other_racer)
    made = [ensure_zombie_automation(), ensure_zombie_automation()]
    monkeypatch.setattr(SyncPrefectClient, "read_automations_by_name", real_read)
    assert made == [True, True]  # both made a copy...
    assert len(copies()) == 1  # ... and one is left
    assert ensure_zombie_automation() is False  # a later run finds it and makes none
    assert len(copies()) == 1


pytestmark = pytest.mark.slow
