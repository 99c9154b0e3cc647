"""HTML of the review screen: the player's slot (with the next clip to prefetch), the red banner
over a clip whose music a stand-in separator made, and the clip's facts.

In: clip and video records, checked media URLs, and (for a reviewer) the votes others cast on
the clip. Out: HTML strings for `gr.HTML`. Every text that comes from a platform or a person
(title, channel, query, ids, names, notes) is escaped here: titles are untrusted and are shown
as text, never as markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from dvmset.catalog.decisions import LabelEvent
from dvmset.records import ClipRecord, VideoRecord

REASON_LABELS = {  # RejectReason value -> the label on the screen (the order of keys 1-5)
    "non_music": "1 non-music > 5 s",
    "noise": "2 persistent noise",
    "static": "3 static images",
    "mismatch": "4 mismatched music",
    "other": "5 other (note)",
}


@dataclass(frozen=True)
class Thresholds:
    """The limits the scores are shown against (the config's prescreen and loudness sections)."""

    max_non_music_s: float = 5.0
    max_static_share: float = 0.5
    max_noise_score: float = 0.35
    target_lufs: float = -14.0
    true_peak_ceiling_dbtp: float = -1.0


def player_html(
    clip_id: str, video_url: str, next_url: str | None, heartbeat_ms: int = 60_000, original_url: str | None = None
) -> str:
    """A slot for the clip's video (with its processed music). The page's script (`keys.HEAD`) puts
    a `<video>` into it and keeps one for `next_url` loading off screen, then moves that element
    into the next slot, so the next clip plays from what is already buffered. While the slot is on
    the page and the tab visible, the script renews the clip's lease every `heartbeat_ms`.
    `original_url`: the source's own audio over the clip's span, which key `o` switches to."""
    next_attr = f' data-next-src="{escape(next_url)}"' if next_url else ""
    next_attr += f' data-original-src="{escape(original_url)}"' if original_url else ""
    return (
        f'<div id="dv-slot" data-clip="{escape(clip_id)}" data-src="{escape(video_url)}"{next_attr} '
        f'data-heartbeat-ms="{int(heartbeat_ms)}"></div>'
    )


def timeline_pending_html(clip_id: str) -> str:
    """The timeline's place while the clip's music is still being measured: the page asks for the
    timeline (`#dv-timeline-fetch`) when it shows this."""
    return (
        f'<div id="dv-timeline-pending" data-clip="{escape(clip_id)}" style="aspect-ratio:1000/140;'
        "display:flex;align-items:center;justify-content:center;opacity:.6\">measuring the music's level…</div>"
    )


def lease_lost_html(clip_id: str) -> str:
    """The banner above the player when the clip on screen is no longer reserved for this
    annotator (its lease ran out, or another annotator has it): a vote on it would be refused."""
    return (
        '<div id="dv-lease-lost" role="alert" style="background:#b45309;color:#fff;font-weight:bold;'
        'padding:.6em 1em;margin-bottom:.5em;border-radius:6px">'
        f"This clip ({escape(clip_id)}) is no longer reserved for you: its reservation ran out or another "
        "annotator has it. A vote on it will not be saved. Press s for your next clip.</div>"
    )


def stand_in_html(clip: ClipRecord, video: VideoRecord | None) -> str:
    """A red banner (`#dv-stand-in`, shown above the player) when the clip's music was made by a
    stand-in separator with random weights (`ClipRecord.stand_in`, or a stand-in among the
    video's `separation_models`), naming the model; "" for any other clip."""
    recorded = video.separation_models if video else ()
    stamps = [stamp for stamp in recorded if stamp.stand_in]
    if not (clip.stand_in or stamps):
        return ""
    named = stamps or [stamp for stamp in recorded if stamp.model_id == clip.separator_model_id]
    models = (
        ", ".join(
            f"<code>{escape(stamp.model_id)}</code>"
            + (f" (SHA-256 {escape(stamp.sha256[:12])}…)" if stamp.sha256 else "")
            for stamp in named
        )
        or f"<code>{escape(clip.separator_model_id)}</code>"
    )
    return (
        '<div id="dv-stand-in" role="alert" style="background:#dc2626;color:#fff;font-weight:bold;'
        'padding:.6em 1em;margin-bottom:.5em;border-radius:6px;font-size:1.05em;border:3px solid #7f1d1d">'
        f"STAND-IN MUSIC, NOT DATA: this clip's music was made by {models}, a stand-in separator with "
        "random weights. It removes no vocals; what you hear is filtered noise, not the video's music."
        "</div>"
    )


def empty_html(message: str) -> str:
    return f'<div id="dv-empty" style="padding:3em;text-align:center;font-size:1.3em">{escape(message)}</div>'


def info_html(clip: ClipRecord, video: VideoRecord | None, limits: Thresholds = Thresholds()) -> str:
    """Source facts (escaped text), the clip's span and the prescreen's scores and flags, each
    score beside its threshold; a score past it is red and bold (class `dv-over`)."""
    meta = video.metadata if video else None
    facts = [
        ("title", meta.title if meta else None),
        ("channel", meta.channel if meta else None),
        ("query", ", ".join(video.queries) if video else None),
        ("clip", f"{clip.clip_id}  ({clip.start_s:.0f}-{clip.end_s:.0f} s)"),
    ]
    scores, loud = clip.prescreen, clip.loudness
    loud_off = abs(loud.after_lufs - limits.target_lufs) > 1.0 or loud.true_peak_dbtp > limits.true_peak_ceiling_dbtp
    numbers = [
        ("priority", f"{scores.priority:.2f}", False),
        (
            "non-music",
            f"{scores.non_music_s:.1f} s (flag over {limits.max_non_music_s:g} s)",
            scores.non_music_s > limits.max_non_music_s,
        ),
        ("speech", f"{scores.speech_s:.1f} s", False),
        ("silence", f"{scores.silence_s:.1f} s (longest {scores.longest_silence_s:.1f} s)", False),
        (
            "static",
            f"{scores.static_share:.0%} (flag over {limits.max_static_share:.0%})",
            scores.static_share > limits.max_static_share,
        ),
        (
            "noise",
            f"{scores.noise_score:.2f} (flag over {limits.max_noise_score:.2f})",
            scores.noise_score > limits.max_noise_score,
        ),
        ("scene cuts", str(len(scores.scene_cuts_s)), False),
        (
            "loudness",
            f"{loud.after_lufs:.1f} LUFS (target {limits.target_lufs:g}), peak {loud.true_peak_dbtp:.1f} dBTP "
            f"(ceiling {limits.true_peak_ceiling_dbtp:g})",
            loud_off,
        ),
    ]
    flags = (
        "".join(
            f'<span class="dv-flag" style="background:#dc2626;color:#fff;border-radius:4px;padding:1px 6px;'
            f'margin-right:4px">{escape(flag)}</span>'
            for flag in scores.flags
        )
        or '<span class="dv-flag-none">no flags</span>'
    )
    over_style = ' style="color:#dc2626;font-weight:bold"'
    rows = "".join(
        f'<tr><th style="text-align:left;padding-right:1em">{escape(name)}</th>'
        f'<td class="dv-{escape(name.replace(" ", "-"))}{" dv-over" if over else ""}"{over_style if over else ""}>'
        f"{escape(value or '-')}</td></tr>"
        for name, value, over in [(name, value, False) for name, value in facts] + numbers
    )
    return f'<div id="dv-facts"><div style="margin-bottom:.5em">{flags}</div><table>{rows}</table></div>'


def votes_html(votes: Sequence[LabelEvent]) -> str:
    """The votes cast on the clip so far, one row each: who (and in which role), accept or reject,
    the reasons and the note, as escaped text; headed "disputed" when they disagree. Empty: ""."""
    if not votes:
        return ""
    heading = "disputed: settle it with a or r" if len({vote.decision for vote in votes}) > 1 else "votes so far"
    rows = "".join(
        f'<tr class="dv-vote"><td class="dv-voter">{escape(vote.annotator)} ({escape(vote.role)})</td>'
        f'<td class="dv-vote-decision">{escape(vote.decision)}</td>'
        f'<td class="dv-vote-reasons">{escape(", ".join(vote.reasons))}</td>'
        f'<td class="dv-vote-note">{escape(vote.note or "")}</td></tr>'
        for vote in votes
    )
    heading_html = f'<div style="margin-top:.5em;font-weight:bold">{escape(heading)}</div>'
    return f'<div id="dv-votes">{heading_html}<table>{rows}</table></div>'


def who_html(name: str, role: str, left: int, done_today: int, logout: bool) -> str:
    """The bar above the screen: who is logged in, clips left in their queue, done today, log out."""
    link = ' · <a id="dv-logout" href="/logout">log out</a>' if logout else ""
    return (
        f'<div id="dv-who" style="font-size:.9em;opacity:.85">logged in as <b>{escape(name)}</b> '
        f'({escape(role)}) · <span id="dv-left">{left}</span> clips left in your queue · '
        f'<span id="dv-done-today">{done_today}</span> done today{link}</div>'
    )


def status_html(message: str, decided: int, warning: bool = False, recent: Sequence[LabelEvent] = ()) -> str:
    """The status line (what the last key did, or why it was not done) with today's count, and
    the annotator's recent decisions (from the catalog, newest first: `u` takes back the first)."""
    style = ' style="color:#dc2626;font-weight:bold"' if warning else ""
    line = (
        f'<div id="dv-status-line"{style}>{escape(message)} '
        f'<span style="opacity:.7">({decided} decided today)</span></div>'
    )
    if not recent:
        return line
    rows = "".join(
        f'<li class="dv-recent-vote" data-clip="{escape(vote.clip_id)}">{escape(vote.decision)}: '
        f"{escape(vote.clip_id)}{escape(' (' + ', '.join(vote.reasons) + ')' if vote.reasons else '')} "
        f'<button class="dv-change-vote" data-clip="{escape(vote.clip_id)}" '
        'style="all:unset;cursor:pointer;text-decoration:underline;color:#2563eb">'
        f"change</button></li>"
        for vote in recent
    )
    return f'{line}<div id="dv-recent" style="opacity:.8;font-size:.85em">recent:<ul style="margin:0">{rows}</ul></div>'
