"""The decision rule (`dvmset/catalog/decisions.py`) on hand-made label events: reviewers outrank annotators."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dvmset.catalog.decisions import LabelEvent, disputes, live_votes, settle
from dvmset.records import ClipStatus, RejectReason, Role

AUTO = "prescreen"
T0 = datetime(2030, 1, 1, tzinfo=UTC)


class Events:
    """Label events of one clip, numbered and a minute apart in the order they are added."""

    def __init__(self) -> None:
        self.events: list[LabelEvent] = []

    def add(self, who: str, decision: str, reasons=(), note=None, role=Role.ANNOTATOR, clip="c1") -> Events:
        n = len(self.events)
        self.events.append(
            LabelEvent(n + 1, clip, who, decision, tuple(reasons), note, T0 + timedelta(minutes=n), role)
        )
        return self


def decided(events: Events) -> tuple[str, tuple[str, ...], tuple[str, ...], str | None] | None:
    decision = settle(events.events, AUTO).get("c1")
    if decision is None:
        return None
    return decision.status.value, tuple(r.value for r in decision.reasons), decision.annotators, decision.note


def test_a_reviewer_settles_a_dispute_with_their_own_reasons_and_name():
    events = Events().add("ann", "accepted").add("bob", "rejected", ["noise"], "hiss")
    assert decided(events) is None
    assert list(disputes(events.events, AUTO)) == ["c1"]
    events.add("rev", "rejected", ["static", "made-up"], "a still frame", role=Role.REVIEWER)
    assert decided(events) == ("rejected", ("other", "static"), ("rev",), "a still frame")
    assert disputes(events.events, AUTO) == {}
    assert [e.annotator for e in live_votes(events.events)["c1"]] == ["ann", "bob", "rev"]  # history stays


def test_a_reviewer_outranks_even_agreeing_annotators_and_later_annotator_votes():
    events = Events().add("ann", "rejected", ["noise"]).add("bob", "rejected", ["noise"])
    events.add("rev", "accepted", role=Role.REVIEWER).add("cat", "rejected", ["mismatch"])
    assert decided(events) == ("accepted", (), ("rev",), None)


def test_undoing_the_reviewers_vote_brings_the_dispute_back():
    events = Events().add("ann", "accepted").add("bob", "rejected", ["noise"])
    events.add("rev", "accepted", role=Role.REVIEWER)
    assert decided(events)[0] == "accepted"
    events.add("rev", ClipStatus.PENDING_REVIEW.value, role=Role.REVIEWER)
    assert decided(events) is None
    assert [vote.annotator for vote in disputes(events.events, AUTO)["c1"]] == ["ann", "bob"]
    events.add("rev", "rejected", ["noise"], role=Role.REVIEWER)  # a new ruling
    assert decided(events) == ("rejected", ("noise",), ("rev",), None)


def test_reviewers_who_disagree_leave_the_clip_undecided_until_one_changes():
    events = Events().add("ann", "accepted").add("rev", "accepted", role=Role.REVIEWER)
    events.add("rae", "rejected", ["noise"], role=Role.REVIEWER)
    assert decided(events) is None
    assert [(v.annotator, v.role) for v in disputes(events.events, AUTO)["c1"]] == [
        ("rev", Role.REVIEWER),
        ("rae", Role.REVIEWER),
    ]
    events.add("rae", "accepted", role=Role.REVIEWER)
    assert decided(events) == ("accepted", (), ("rae", "rev"), None)


def test_a_third_reviewer_breaks_a_tie_and_the_majority_decides_with_its_own_reasons():
    events = Events().add("rev", "rejected", ["noise"], role=Role.REVIEWER).add("rae", "accepted", role=Role.REVIEWER)
    events.add("ray", "rejected", ["static"], "still", role=Role.REVIEWER)
    assert decided(events) == ("rejected", ("noise", "static"), ("ray", "rev"), "still")
    assert disputes(events.events, AUTO) == {}
    events.add("rob", "accepted", role=Role.REVIEWER)  # 2 against 2: a tie again
    assert decided(events) is None and len(disputes(events.events, AUTO)["c1"]) == 4


def test_without_reviewers_the_rule_is_unchanged():
    auto = Events().add(AUTO, "rejected", ["non_music"])
    assert decided(auto) == ("rejected", ("non_music",), (AUTO,), None)  # the prescreen alone decides
    auto.add("ann", "accepted")
    assert decided(auto) == ("accepted", (), ("ann",), None)  # a person overrides it
    auto.add("ann", "pending_review")
    assert decided(auto)[2] == (AUTO,)  # her undo: the prescreen's vote counts again
    agree = Events().add("ann", "rejected", ["noise"]).add("bob", "rejected", ["static"])
    assert decided(agree) == ("rejected", ("noise", "static"), ("ann", "bob"), None)
    assert settle(Events().add("ann", "accepted", clip="c2").add("ann", "pending_review", clip="c2").events, AUTO) == {}


def test_a_reviewer_overrides_the_prescreen_and_each_clip_is_settled_on_its_own():
    events = Events().add(AUTO, "rejected", ["noise"]).add("rev", "accepted", role=Role.REVIEWER)
    events.add("ann", "accepted", clip="c2").add("bob", "rejected", [RejectReason.STATIC.value], clip="c2")
    assert decided(events) == ("accepted", (), ("rev",), None)
    assert list(disputes(events.events, AUTO)) == ["c2"]
    assert list(settle(reversed(events.events), AUTO)) == ["c1"]  # the order of the input does not matter
