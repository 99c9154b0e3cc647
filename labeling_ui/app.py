"""The Gradio labeling app: log in, review the clips of your queue, accept or reject them.

In: `AppSettings` (data root, catalog URL, users, queue settings). Out: a `gr.Blocks` app
(`build_app`), served by `serve`. It reads and writes only through the catalog, and serves
only the clip files under `<data root>/clips` (Gradio's `allowed_paths`).

Who acts is the logged-in user of the request (Gradio's session cookie), never anything the
browser holds: a screen's state belongs to the user it was filled for, and every vote is
checked against the catalog's claims (`ClaimLost`: refused, nothing written). While the clip is
on screen and the tab visible, the page's heartbeat renews its lease; a lost lease shows a
banner (`#dv-lease-lost`) above the player.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from starlette.middleware import Middleware

from dvmset.catalog import Catalog
from dvmset.catalog.review import ClaimLost
from dvmset.errors import DvmsetError
from dvmset.records import ClipRecord, ClipStatus, VideoRecord
from dvmset.storage import DataRoot
from dvmset.store import ObjectStore
from labeling_ui.keys import HEAD, SHORTCUTS
from labeling_ui.logins import ClientAddressMiddleware, ThrottledLogin, ThrottleSettings
from labeling_ui.media import MediaError, MediaRoot
from labeling_ui.original import OriginalAudio
from labeling_ui.session import DecisionError, ReviewSession, ReviewSettings, SessionState
from labeling_ui.stats import stats_html
from labeling_ui.timeline import Timelines, timeline_svg
from labeling_ui.users import Authenticator, Role, User
from labeling_ui.views import (
    REASON_LABELS,
    Thresholds,
    empty_html,
    info_html,
    lease_lost_html,
    player_html,
    stand_in_html,
    status_html,
    timeline_pending_html,
    votes_html,
    who_html,
)

log = logging.getLogger(__name__)

CSS = """
#dv-status-line {min-height: 1.5em}
#dv-help {opacity: .75; font-size: .9em}
#dv-facts table {margin: 0; font-size: .9em}
#dv-facts th, #dv-facts td {padding: 2px 8px !important}
"""


DEFAULT_GUIDELINES = """### Review guidelines

Reject a clip (key **r**, with every reason that applies) when it has:

1. **more than 5 s of non-music**: silence, speech, a voice-over, singing left in by the separator
   (e.g. a presenter talks over the first 10 s);
2. **persistent noise**: hiss, wind, crowd or traffic noise under the whole clip (e.g. street noise
   in a city guide);
3. **static images**: a still picture or a slide show for most of the clip (e.g. an album cover);
4. **mismatched music**: background music that does not fit the picture (e.g. cheerful pop over a
   news report), or music that stops and starts with cuts unrelated to the picture;
5. **other**: anything else wrong with it; say what in the note.

Accept (key **a**) when none applies. The prescreen's flags are pre-ticked as reasons: untick any
that is wrong (keys 1-5) before you press r. Not sure? Skip (key **s**).
"""


@dataclass(frozen=True)
class AppSettings:
    data_root: Path  # with an object store: this machine's scratch folder, where clip files are fetched
    catalog_url: str
    review: ReviewSettings = ReviewSettings()
    silence_dbfs: float = -45.0  # the timeline shades frames quieter than this (the prescreen's threshold)
    users: dict[str, User] | None = None  # None: no login (loopback only), everyone is `default_annotator`
    default_annotator: str = "annotator"
    throttle: ThrottleSettings = ThrottleSettings()  # wrong passwords: growing delay, then a lock
    thresholds: Thresholds = Thresholds()  # the prescreen's limits, shown beside each score
    guidelines_md: str = DEFAULT_GUIDELINES  # opened with ? (`dvmset label --guidelines FILE`)
    store: ObjectStore | None = None  # the object store behind the data root (`[storage] url`), if any


class LabelingApp:
    """The handlers of the review screen, over one catalog."""

    def __init__(self, settings: AppSettings, catalog: Catalog):
        self.settings = settings
        self.catalog = catalog
        self.auth = Authenticator(settings.users) if settings.users is not None else None
        self.login = ThrottledLogin(self.auth, settings.throttle) if self.auth is not None else None
        self.session = ReviewSession(catalog, settings.review, role_of=self.role)
        self.media = MediaRoot(settings.data_root, settings.store)
        self.original = OriginalAudio(settings.data_root, settings.store)
        self._prefetch = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dv-prefetch")
        self._shown: dict[str, tuple[str, str]] = {}  # annotator -> (clip on screen, its name for the status line)
        timeline_dir = DataRoot(settings.data_root).labeling_cache_dir("timeline")
        self.timelines = Timelines(timeline_dir, settings.silence_dbfs, self._prefetch)

    def annotator(self, request: gr.Request) -> str:
        return getattr(request, "username", None) or self.settings.default_annotator

    def role(self, name: str) -> Role:
        """The user's role from the users file; without logins everyone is an annotator."""
        return (self.auth.role(name) if self.auth is not None else None) or Role.ANNOTATOR

    @property
    def heartbeat_ms(self) -> int:
        """How often the page renews its leases: a third of the lease, at most once a minute."""
        return int(1000 * max(0.5, min(60.0, self.settings.review.lease_s / 3)))

    def screen(self, state: SessionState, message: str, annotator: str) -> tuple[Any, ...]:
        """The outputs of every handler: state, player, timeline, facts, status line, reasons,
        note, the lease banner (none: a new screen holds its clips), and the who-am-I bar.
        The player has a red banner above it when the clip's music is stand-in output (random
        weights). A reviewer's facts also list the votes others cast on the clip (what a dispute is about)."""
        status = status_html(message, state.decided, recent=self.catalog.recent_votes(annotator, 5))
        who = who_html(
            annotator,
            self.role(annotator).value,
            self.catalog.queue_left(annotator),
            state.decided,
            logout=self.auth is not None,
        )
        if state.current is None:
            return state, empty_html("No clips left in your queue. Thank you!"), "", "", status, [], "", "", who
        clip = self.catalog.get_clip(state.current)
        next_clip = self.catalog.get_clip(state.next) if state.next else None
        video = self.catalog.get_video(clip.video_id)
        original_url = self.original.url(clip, video)
        try:
            player = player_html(
                clip.clip_id,
                self.media.url(clip.video_path),
                self.media.url(next_clip.video_path) if next_clip else None,
                heartbeat_ms=self.heartbeat_ms,
                original_url=original_url,
            )
            measured = self.timelines.ready(self.media.path(clip.music_path))  # else the page asks for it
            timeline = self._timeline(clip) if measured else timeline_pending_html(clip.clip_id)
        except (MediaError, RuntimeError) as exc:  # soundfile's read errors are RuntimeErrors
            player, timeline = empty_html(f"cannot show {clip.clip_id}: {exc}; press s to skip it"), ""
        for ahead in (clip, next_clip):  # in the background: the next clip's is ready when it shows
            if ahead is not None:
                self._timeline_ahead(ahead)
        self._prefetch.submit(self._cut_originals, clip, video, next_clip)
        self._shown[annotator] = (clip.clip_id, _name(clip, video))  # what the status line calls it once decided
        player = stand_in_html(clip, video) + player
        facts = info_html(clip, video, self.settings.thresholds)
        if self.role(annotator) is Role.REVIEWER:
            facts += votes_html([vote for vote in self.catalog.clip_votes(clip.clip_id) if vote.annotator != annotator])
        flagged = [flag.value for flag in clip.prescreen.flags if flag.value in REASON_LABELS]  # pre-ticked for r
        return state, player, timeline, facts, status, flagged, "", "", who

    def timeline(self, state: SessionState, request: gr.Request) -> Any:
        """The timeline of the clip on screen, for a screen that showed it before its music was
        measured (the page asks when it shows the placeholder); waits for the measurement."""
        if state.current is None or state.annotator != self.annotator(request):
            return gr.skip()
        clip = self.catalog.get_clip(state.current)
        try:
            return self._timeline(clip)
        except (MediaError, RuntimeError) as exc:
            return empty_html(f"cannot measure the music of {clip.clip_id}: {exc}; press s to skip it")

    def _timeline(self, clip: ClipRecord) -> str:
        flags = [flag.value for flag in clip.prescreen.flags]
        timeline = self.timelines.get(self.media.path(clip.music_path))
        return timeline_svg(timeline, clip.prescreen.scene_cuts_s, flags, clip.clip_id)

    def _timeline_ahead(self, clip: ClipRecord) -> None:
        try:
            self.timelines.ahead(self.media.path(clip.music_path))
        except (MediaError, OSError):
            pass  # the screen says what is wrong when the clip is shown

    def _cut_originals(self, clip: ClipRecord, video: VideoRecord | None, next_clip: ClipRecord | None) -> None:
        """Cut the source's audio of the clip on screen (while it plays), then of the next one."""
        self.original.ensure(clip, video)
        if next_clip is not None:
            self.original.ensure(next_clip, self.catalog.get_video(next_clip.video_id))

    def warm_up(self, clips: int = 2) -> None:
        """Pay before the first login what its screen would wait for: matplotlib's import (Gradio's
        first event makes it, where it is installed: about 0.4 s), the catalog's connection and the
        queries of a screen, and the timelines of the clips at the top of the queue (measured in the
        background: the first login's clip and the next one)."""
        try:
            import matplotlib

            matplotlib.get_backend()
        except ImportError:
            pass
        self.catalog.recent_votes("", 1)
        self.catalog.queue_left("")
        pending = self.catalog.clips(statuses=[ClipStatus.PENDING_REVIEW])
        for clip in heapq.nlargest(clips, pending, key=lambda clip: clip.prescreen.priority):
            self._timeline_ahead(clip)

    def start(self, state: SessionState, request: gr.Request) -> tuple[Any, ...]:
        annotator = self.annotator(request)
        try:
            return self.screen(self.session.resume(state, annotator), "ready", annotator)
        except DecisionError as exc:  # another login's session: leave it as it is
            log.warning("refused to start %s's screen on another login's session: %s", annotator, exc)
            return self._unchanged(state, f"not done: {exc}")

    def heartbeat(self, state: SessionState, request: gr.Request) -> Any:
        """Renew the leases of the clips on screen (the page calls this while the tab is visible);
        the lease banner's HTML: empty while the clip on screen is still this annotator's."""
        annotator = self.annotator(request)
        try:
            held = self.session.heartbeat(state, annotator)
        except DecisionError:
            return gr.skip()
        except Exception:  # the catalog is down: the vote will say so; keep the screen
            log.exception("lease heartbeat of %s failed", annotator)
            return gr.skip()
        return "" if held else lease_lost_html(state.current or "")

    def accept(self, state: SessionState, request: gr.Request) -> tuple[Any, ...]:
        return self._act(state, request, "accepted", lambda s, who: self.session.decide(s, who, ClipStatus.ACCEPTED))

    def reject(self, state: SessionState, reasons: Sequence[str], note: str, request: gr.Request) -> tuple[Any, ...]:
        return self._act(
            state, request, "rejected", lambda s, who: self.session.decide(s, who, ClipStatus.REJECTED, reasons, note)
        )

    def skip(self, state: SessionState, request: gr.Request) -> tuple[Any, ...]:
        return self._act(state, request, "skipped", self.session.skip)

    def undo(self, state: SessionState, request: gr.Request) -> tuple[Any, ...]:
        return self._act(state, request, "undone", self.session.undo)

    def change(self, state: SessionState, clip_id: str, request: gr.Request) -> tuple[Any, ...]:
        """Take back one of the recent decisions (clicked in the list) and show that clip again, to decide anew."""
        clip_id = (clip_id or "").strip()
        return self._act(
            state, request, "reopened", lambda s, who: self.session.undo(s, who, clip_id or None), clip_id=clip_id
        )

    def _act(
        self,
        state: SessionState,
        request: gr.Request,
        verb: str,
        action: Callable[[SessionState, str], SessionState],
        clip_id: str | None = None,
    ) -> tuple[Any, ...]:
        """Run `action` for the logged-in annotator; show the new screen once it is saved, else say why not."""
        clip_id = clip_id or (state.history[-1] if verb == "undone" and state.history else state.current)
        annotator = self.annotator(request)
        try:
            new_state = action(state, annotator)
        except DecisionError as exc:  # said on the status line: toasts need Gradio's queue, which these skip
            return self._unchanged(state, f"not done: {exc}")
        except ClaimLost as exc:  # the lease ran out or went to someone else: refused, nothing written
            log.warning("%s by %s refused: %s", verb, annotator, exc)
            banner = lease_lost_html(clip_id or "") if verb not in ("undone", "reopened") else gr.skip()
            return self._unchanged(state, f"NOT SAVED: {exc}", lease=banner)
        except Exception as exc:  # the catalog failed: say so, never show the next clip as if it was saved
            log.exception("%s of %s failed", verb, clip_id)
            return self._unchanged(state, f"NOT SAVED ({type(exc).__name__}): try again")
        return self.screen(new_state, f"{verb}: {self._named(clip_id, annotator)}", annotator)

    def _named(self, clip_id: str | None, annotator: str) -> str:
        """A clip as the status line names it: as the annotator's screen showed it, else from the catalog."""
        shown = self._shown.get(annotator)
        if shown is not None and shown[0] == clip_id:
            return shown[1]
        clip = self.catalog.get_clip(clip_id) if clip_id else None
        return _name(clip, self.catalog.get_video(clip.video_id)) if clip else clip_id or "-"

    def _unchanged(self, state: SessionState, warning: str, lease: Any = None) -> tuple[Any, ...]:
        """Outputs that leave the screen as it is and put `warning` on the status line (and
        `lease` into the lease banner, when given)."""
        outputs = [gr.skip()] * 9
        outputs[4] = status_html(warning, state.decided, warning=True)
        if lease is not None:
            outputs[7] = lease
        return tuple(outputs)

    def stats(self, request: gr.Request) -> str:
        if self.auth is not None and self.role(self.annotator(request)) is not Role.REVIEWER:
            return empty_html("The progress page is for reviewers.")
        return stats_html(self.catalog.label_events(), self.catalog.clip_status_counts())


def _name(clip: ClipRecord, video: VideoRecord | None) -> str:
    """A clip as the status line names it: its video's title and span, then its id."""
    title = video.metadata.title if video and video.metadata and video.metadata.title else None
    if not title:
        return clip.clip_id
    short = title if len(title) <= 60 else title[:59] + "…"
    return f"{short} ({clip.start_s:.0f}-{clip.end_s:.0f} s, {clip.clip_id})"


def build_app(settings: AppSettings, catalog: Catalog) -> tuple[gr.Blocks, LabelingApp]:
    """The review screen and the progress page, wired to the handlers of a `LabelingApp`."""
    app = LabelingApp(settings, catalog)
    with gr.Blocks(title="DVMSet labeling", analytics_enabled=False) as blocks:
        state = gr.State(SessionState())
        who = gr.HTML(elem_id="dv-who-bar", js_on_load=None)
        with gr.Tab("Review"):
            with gr.Row():
                with gr.Column(scale=3):
                    lease = gr.HTML(elem_id="dv-lease", js_on_load=None)
                    player = gr.HTML(elem_id="dv-player", js_on_load=None)
                    timeline = gr.HTML(elem_id="dv-timeline", js_on_load=None)
                with gr.Column(scale=2):
                    facts = gr.HTML(elem_id="dv-info", js_on_load=None)
                    reasons = gr.CheckboxGroup(
                        choices=[(label, value) for value, label in REASON_LABELS.items()],
                        label="reject reasons",
                        elem_id="dv-reasons",
                    )
                    note = gr.Textbox(label="note (needed for other)", elem_id="dv-note", max_lines=2)
                    with gr.Row():
                        accept = gr.Button("Accept (a)", variant="primary", elem_id="dv-accept")
                        reject = gr.Button("Reject (r)", variant="stop", elem_id="dv-reject")
                    with gr.Row():
                        skip = gr.Button("Skip (s)", elem_id="dv-skip")
                        undo = gr.Button("Undo (u)", elem_id="dv-undo")
                    status = gr.HTML(elem_id="dv-status", js_on_load=None)
                    heartbeat = gr.Button("heartbeat", elem_id="dv-heartbeat", visible="hidden")
                    timeline_fetch = gr.Button("timeline", elem_id="dv-timeline-fetch", visible="hidden")
                    change_target = gr.Textbox(elem_id="dv-change-target", visible="hidden", show_label=False)
                    change = gr.Button("change", elem_id="dv-change", visible="hidden")
                    gr.Markdown(" · ".join(f"**{key}** {what}" for key, what in SHORTCUTS.items()), elem_id="dv-help")
                    with gr.Accordion("Guidelines (?)", open=False, elem_id="dv-guidelines"):
                        gr.Markdown(settings.guidelines_md)
        with gr.Tab("Progress") as progress_tab:
            progress = gr.HTML(elem_id="dv-progress", js_on_load=None)
        outputs = [state, player, timeline, facts, status, reasons, note, lease, who]
        blocks.load(app.start, [state], outputs, queue=False)
        fast: dict[str, Any] = {"show_progress": "hidden", "trigger_mode": "once", "queue": False}
        accept.click(app.accept, [state], outputs, **fast)
        reject.click(app.reject, [state, reasons, note], outputs, **fast)
        skip.click(app.skip, [state], outputs, **fast)
        undo.click(app.undo, [state], outputs, **fast)
        change.click(app.change, [state, change_target], outputs, **fast)
        heartbeat.click(app.heartbeat, [state], [lease], show_progress="hidden", queue=False)
        timeline_fetch.click(
            app.timeline, [state], [timeline], show_progress="hidden", queue=False, trigger_mode="always_last"
        )
        progress_tab.select(app.stats, None, [progress])
    blocks.queue(default_concurrency_limit=16)
    return blocks, app


def serve(settings: AppSettings, host: str, port: int, block: bool = True) -> gr.Blocks:
    """Open the catalog and serve the app on `host:port`; returns it running when `block` is false."""
    catalog = Catalog.open(settings.catalog_url)
    blocks, app = build_app(settings, catalog)
    app.original.cache_dir.mkdir(parents=True, exist_ok=True)
    app.media.clips_dir.mkdir(parents=True, exist_ok=True)  # an object store's scratch folder may have none yet
    app.warm_up()
    try:
        blocks.launch(
            server_name=host,
            server_port=port,
            auth=app.login.login if app.login else None,
            auth_message="DVMSet labeling: log in",
            app_kwargs={"middleware": [Middleware(ClientAddressMiddleware)]},
            allowed_paths=[str(app.media.clips_dir), str(app.original.cache_dir)],
            head=HEAD,
            css=CSS,
            prevent_thread_lock=not block,
            quiet=True,
            show_error=True,
            footer_links=[],
            ssr_mode=False,
            enable_monitoring=False,
        )
    except OSError as exc:
        catalog.close()
        raise DvmsetError(f"cannot serve the labeling app on {host}:{port}: {exc}") from exc
    return blocks
