"""The Gradio labeling app: log in, review the clips of your queue, accept or reject them.

In: `AppSettings` (data root, catalog URL, users, queue settings). Out: a `gr.Blocks` app
(`build_app`), served by `serve`. It reads and writes only through the catalog, and serves
only the clip files under `<data root>/clips` (Gradio's `allowed_paths`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from dvmset.catalog import Catalog
from dvmset.errors import DvmsetError
from dvmset.records import ClipRecord, ClipStatus
from labeling_ui.keys import HEAD, SHORTCUTS
from labeling_ui.media import MediaError, MediaRoot
from labeling_ui.session import DecisionError, ReviewSession, ReviewSettings, SessionState
from labeling_ui.stats import stats_html
from labeling_ui.timeline import render
from labeling_ui.users import Authenticator, Role, User
from labeling_ui.views import (
    REASON_LABELS, empty_html, info_html, player_html, stand_in_html, status_html, votes_html,
)  # fmt: skip

log = logging.getLogger(__name__)

CSS = """
#dv-status-line {min-height: 1.5em}
#dv-help {opacity: .75; font-size: .9em}
#dv-facts table {margin: 0; font-size: .9em}
#dv-facts th, #dv-facts td {padding: 2px 8px !important}
"""


@dataclass(frozen=True)
class AppSettings:
    data_root: Path
    catalog_url: str
    review: ReviewSettings = ReviewSettings()
    silence_dbfs: float = -45.0  # the timeline shades frames quieter than this (the prescreen's threshold)
    users: dict[str, User] | None = None  # None: no login (loopback only), everyone is `default_annotator`
    default_annotator: str = "annotator"


class LabelingApp:
    """The handlers of the review screen, over one catalog."""

    def __init__(self, settings: AppSettings, catalog: Catalog):
        self.settings = settings
        self.catalog = catalog
        self.auth = Authenticator(settings.users) if settings.users is not None else None
        self.session = ReviewSession(catalog, settings.review, role_of=self.role)
        self.media = MediaRoot(settings.data_root)
        self._prefetch = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dv-prefetch")

    def annotator(self, request: gr.Request) -> str:
        return getattr(request, "username", None) or self.settings.default_annotator

    def role(self, name: str) -> Role:
        """The user's role from the users file; without logins everyone is an annotator."""
        return (self.auth.role(name) if self.auth is not None else None) or Role.ANNOTATOR

    def screen(self, state: SessionState, message: str, annotator: str) -> tuple[Any, ...]:
        """The outputs of every handler: state, player, timeline, facts, status line, reasons, note.
        The player has a red banner above it when the clip's music is stand-in output (random
        weights). A reviewer's facts also list the votes others cast on the clip (what a dispute is about)."""
        status = status_html(message, state.decided)
        if state.current is None:
            return state, empty_html("No clips left in your queue. Thank you!"), "", "", status, [], ""
        clip = self.catalog.get_clip(state.current)
        next_clip = self.catalog.get_clip(state.next) if state.next else None
        try:
            player = player_html(clip.clip_id, self.media.url(clip.video_path),
                                 self.media.url(next_clip.video_path) if next_clip else None)  # fmt: skip
            timeline = self._timeline(clip)
        except (MediaError, RuntimeError) as exc:  # soundfile's read errors are RuntimeErrors
            player, timeline = empty_html(f"cannot show {clip.clip_id}: {exc}; press s to skip it"), ""
        if next_clip is not None:
            self._prefetch.submit(self._render_ahead, next_clip)  # its timeline is ready when it shows
        video = self.catalog.get_video(clip.video_id)
        player = stand_in_html(clip, video) + player
        facts = info_html(clip, video)
        if self.role(annotator) is Role.REVIEWER:
            facts += votes_html([vote for vote in self.catalog.clip_votes(clip.clip_id) if vote.annotator != annotator])
        return state, player, timeline, facts, status, [], ""

    def _timeline(self, clip: ClipRecord) -> str:
        flags = [flag.value for flag in clip.prescreen.flags]
        return render(self.media.path(clip.music_path), self.settings.silence_dbfs, clip.prescreen.scene_cuts_s, flags)

    def _render_ahead(self, clip: ClipRecord) -> None:
        try:
            self._timeline(clip)
        except (MediaError, RuntimeError):
            pass  # the screen says what is wrong when the clip is shown

    def start(self, state: SessionState, request: gr.Request) -> tuple[Any, ...]:
        annotator = self.annotator(request)
        return self.screen(self.session.fill(state, annotator), "ready", annotator)

    def accept(self, state: SessionState, request: gr.Request) -> tuple[Any, ...]:
        return self._act(state, request, "accepted", lambda s, who: self.session.decide(s, who, ClipStatus.ACCEPTED))

    def reject(self, state: SessionState, reasons: Sequence[str], note: str, request: gr.Request) -> tuple[Any, ...]:
        return self._act(state, request, "rejected",
                         lambda s, who: self.session.decide(s, who, ClipStatus.REJECTED, reasons, note))  # fmt: skip

    def skip(self, state: SessionState, request: gr.Request) -> tuple[Any, ...]:
        return self._act(state, request, "skipped", self.session.skip)

    def undo(self, state: SessionState, request: gr.Request) -> tuple[Any, ...]:
        return self._act(state, request, "undone", self.session.undo)

    def _act(
        self, state: SessionState, request: gr.Request, verb: str, action: Callable[[SessionState, str], SessionState]
    ) -> tuple[Any, ...]:
        """Run `action` for the logged-in annotator; show the new screen once it is saved, else say why not."""
        clip_id = state.history[-1] if verb == "undone" and state.history else state.current
        annotator = self.annotator(request)
        try:
            new_state = action(state, annotator)
        except DecisionError as exc:  # said on the status line: toasts need Gradio's queue, which these skip
            return self._unchanged(state, f"not done: {exc}")
        except Exception as exc:  # the catalog failed: say so, never show the next clip as if it was saved
            log.exception("%s of %s failed", verb, clip_id)
            return self._unchanged(state, f"NOT SAVED ({type(exc).__name__}): try again")
        return self.screen(new_state, f"{verb}: {clip_id}", annotator)

    def _unchanged(self, state: SessionState, warning: str) -> tuple[Any, ...]:
        """Outputs that leave the screen as it is and put `warning` on the status line."""
        outputs = [gr.skip()] * 7
        outputs[4] = status_html(warning, state.decided, warning=True)
        return tuple(outputs)

    def stats(self, request: gr.Request) -> str:
        if self.auth is not None and self.role(self.annotator(request)) is not Role.REVIEWER:
            return empty_html("The progress page is for reviewers.")
        return stats_html(self.catalog.label_events(), self.catalog.clip_status_counts())


def build_app(settings: AppSettings, catalog: Catalog) -> tuple[gr.Blocks, LabelingApp]:
    """The review screen and the progress page, wired to the handlers of a `LabelingApp`."""
    app = LabelingApp(settings, catalog)
    with gr.Blocks(title="DVMSet labeling", analytics_enabled=False) as blocks:
        state = gr.State(SessionState())
        with gr.Tab("Review"):
            with gr.Row():
                with gr.Column(scale=3):
                    player = gr.HTML(elem_id="dv-player", js_on_load=None)
                    timeline = gr.HTML(elem_id="dv-timeline", js_on_load=None)
                with gr.Column(scale=2):
                    facts = gr.HTML(elem_id="dv-info", js_on_load=None)
                    reasons = gr.CheckboxGroup(
                        choices=[(label, value) for value, label in REASON_LABELS.items()],
                        label="reject reasons", elem_id="dv-reasons",
                    )  # fmt: skip
                    note = gr.Textbox(label="note (needed for other)", elem_id="dv-note", max_lines=2)
                    with gr.Row():
                        accept = gr.Button("Accept (a)", variant="primary", elem_id="dv-accept")
                        reject = gr.Button("Reject (r)", variant="stop", elem_id="dv-reject")
                    with gr.Row():
                        skip = gr.Button("Skip (s)", elem_id="dv-skip")
                        undo = gr.Button("Undo (u)", elem_id="dv-undo")
                    status = gr.HTML(elem_id="dv-status", js_on_load=None)
                    gr.Markdown(" · ".join(f"**{key}** {what}" for key, what in SHORTCUTS.items()), elem_id="dv-help")
        with gr.Tab("Progress") as progress_tab:
            progress = gr.HTML(elem_id="dv-progress", js_on_load=None)
        outputs = [state, player, timeline, facts, status, reasons, note]
        blocks.load(app.start, [state], outputs)
        fast: dict[str, Any] = {"show_progress": "hidden", "trigger_mode": "once", "queue": False}
        accept.click(app.accept, [state], outputs, **fast)
        reject.click(app.reject, [state, reasons, note], outputs, **fast)
        skip.click(app.skip, [state], outputs, **fast)
        undo.click(app.undo, [state], outputs, **fast)
        progress_tab.select(app.stats, None, [progress])
    blocks.queue(default_concurrency_limit=16)
    return blocks, app


def serve(settings: AppSettings, host: str, port: int, block: bool = True) -> gr.Blocks:
    """Open the catalog and serve the app on `host:port`; returns it running when `block` is false."""
    catalog = Catalog.open(settings.catalog_url)
    blocks, app = build_app(settings, catalog)
    try:
        blocks.launch(
            server_name=host, server_port=port, auth=app.auth, auth_message="DVMSet labeling: log in",
            allowed_paths=[str(app.media.clips_dir)], head=HEAD, css=CSS, prevent_thread_lock=not block,
            quiet=True, show_error=True, footer_links=[], ssr_mode=False, enable_monitoring=False,
        )  # fmt: skip
    except OSError as exc:
        catalog.close()
        raise DvmsetError(f"cannot serve the labeling app on {host}:{port}: {exc}") from exc
    return blocks
