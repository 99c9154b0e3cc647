"""A step's hold on its video: renewed in the background while the work goes on, lost to a taker
once it ran out, released (and the work logged) at the end."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from curation import leases
from dvmset.catalog import Catalog
from dvmset.records import Candidate, SourceKind

VIDEO = "youtube:a"


@pytest.fixture
def catalog(tmp_path):
    opened = Catalog.open(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    opened.add_candidates([Candidate(VIDEO, "https://example.invalid/a", SourceKind.URL_LIST, "q")])
    yield opened
    opened.close()


def test_an_owner_is_this_host_and_process_and_the_run():
    owner = leases.work_owner("flow-run-1")
    assert owner.startswith(socket.gethostname()) and owner.endswith(f":{os.getpid()}:flow-run-1")
    assert leases.work_owner() == leases.work_owner() != owner
    assert not leases.gone_from_this_host(owner)


def test_a_live_lease_of_a_killed_process_of_this_host_is_taken_over_at_once(catalog):
    killed = subprocess.Popen([sys.executable, "-c", "pass"])
    killed.wait()
    dead_owner = leases.work_owner("run-1").replace(f":{os.getpid()}:", f":{killed.pid}:")
    catalog.claim_work(VIDEO, "separate", dead_owner)  # two minutes to go
    elsewhere = f"other-host:{killed.pid}:run-1"
    assert leases.gone_from_this_host(dead_owner) and not leases.gone_from_this_host(elsewhere)
    with leases.hold(catalog, VIDEO, "separate", leases.work_owner("run-2")) as held:
        assert held is not None and catalog.work_lease(VIDEO).owner == leases.work_owner("run-2")
    catalog.claim_work(VIDEO, "separate", elsewhere)  # another machine's: it may still run
    with leases.hold(catalog, VIDEO, "separate", leases.work_owner("run-3")) as held:
        assert held is None


def test_a_hold_outlives_its_lease_while_renewed_and_logs_the_work_at_release(catalog):
    with leases.hold(catalog, VIDEO, "clip", "cpu1:1:run", lease_s=0.4) as held:
        time.sleep(1.0)  # 2.5 leases: renewed every 0.1 s
        assert catalog.claim_work(VIDEO, "clip", "cpu2:2:run") is None
        with leases.hold(catalog, VIDEO, "clip", "cpu2:2:run") as other:
            assert other is None
        held.check()
        held.status = "clipped"
    assert catalog.work_lease(VIDEO) is None
    assert [(e.owner, e.status) for e in catalog.work_events()] == [("cpu1:1:run", "clipped")]


def test_a_hold_whose_lease_another_owner_took_is_lost_and_logs_nothing(catalog):
    with leases.hold(catalog, VIDEO, "separate", "gpu1:1:run", lease_s=60.0) as held:
        catalog.renew_work(VIDEO, "gpu1:1:run", lease_s=60.0, now=datetime.now(UTC) - timedelta(minutes=5))  # stalled
        assert catalog.claim_work(VIDEO, "separate", "gpu2:2:run") is not None
        with pytest.raises(leases.LeaseLost, match="gpu2:2:run"):
            held.check()
        held.status = "separated"
    assert catalog.work_lease(VIDEO).owner == "gpu2:2:run" and catalog.work_events() == []
