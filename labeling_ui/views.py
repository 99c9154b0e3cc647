"""HTML of the review screen: the player's slot (with the next clip to prefetch), the red banner
over a clip whose music a stand-in separator made, and the clip's facts.

In: clip and video records, checked media URLs, and (for a reviewer) the votes others cast on
the clip. Out: HTML strings for `gr.HTML`. Every text that comes from a platform or a person
(title, channel, query, ids, names, notes) is escaped here: titles are untrusted and are shown
as text, never as markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from dvmset.decisions import LabelEvent
from dvmset.records import ClipRecord, VideoRecord

REASON_LABELS = {  # RejectReason value -> the label on the screen (the order of keys 1-5)
    "non_music": "1 non-music > 5 s",
    "noise": "2 persistent noise",
    "static": "3 static images",
    "mismatch": "4 mismatched music",
    "other": "5 other (note)",
}


def player_html(clip_id: str, video_url: str, next_url: str | None) -> str:
    """A slot for the clip's video (with its processed music). The page's script (`keys.HEAD`) puts
    a `<video>` into it and keeps one for `next_url` loading off screen, then moves that element
    into the next slot, so the next clip plays from what is already buffered."""
    next_attr = f' data-next-src="{escape(next_url)}"' if next_url else ""
    return f'<div id="dv-slot" data-clip="{escape(clip_id)}" data-src="{escape(video_url)}"{next_attr}></div>'


def stand_in_html(clip: ClipRecord, video: VideoRecord | None) -> str:
    """A red banner (`#dv-stand-in`, shown above the player) when the clip's music was made by a
    stand-in separator with random weights (`ClipRecord.stand_in`, or a stand-in among the
    video's `separation_models`), naming the model; "" for any other clip."""
    recorded = video.separation_models if video else ()
    stamps = [stamp for stamp in recorded if stamp.stand_in]
    if not (clip.stand_in or stamps):
        return ""
    named = stamps or [stamp for stamp in recorded if stamp.model_id == clip.separator_model_id]
    models = ", ".join(
        f"<code>{escape(stamp.model_id)}</code>" + (f" (SHA-256 {escape(stamp.sha256[:12])}…)" if stamp.sha256 else "")
        for stamp in named
    ) or f"<code>{escape(clip.separator_model_id)}</code>"
    return (
        '<div id="dv-stand-in" role="alert" style="background:#dc2626;color:#fff;font-weight:bold;'
        'padding:.6em 1em;margin-bottom:.5em;border-radius:6px;font-size:1.05em;border:3px solid #7f1d1d">'
        f"STAND-IN MUSIC, NOT DATA: this clip's music was made by {models}, a stand-in separator with "
        "random weights. It removes no vocals; what you hear is filtered noise, not the video's music."
        "</div>"
    )


def empty_html(message: str) -> str:
    return f'<div id="dv-empty" style="padding:3em;text-align:center;font-size:1.3em">{escape(message)}</div>'


def info_html(clip: ClipRecord, video: VideoRecord | None) -> str:
    """Source facts (escaped text), the clip's span and the prescreen's scores and flags."""
    meta = video.metadata if video else None
    facts = [
        ("title", meta.title if meta else None),
        ("channel", meta.channel if meta else None),
        ("query", ", ".join(video.queries) if video else None),
        ("clip", f"{clip.clip_id}  ({clip.start_s:.0f}-{clip.end_s:.0f} s)"),
    ]
    scores, loud = clip.prescreen, clip.loudness
    numbers = [
        ("priority", f"{scores.priority:.2f}"),
        ("non-music", f"{scores.non_music_s:.1f} s"),
        ("speech", f"{scores.speech_s:.1f} s"),
        ("silence", f"{scores.silence_s:.1f} s (longest {scores.longest_silence_s:.1f} s)"),
        ("static", f"{scores.static_share:.0%}"),
        ("noise", f"{scores.noise_score:.2f}"),
        ("scene cuts", str(len(scores.scene_cuts_s))),
        ("loudness", f"{loud.after_lufs:.1f} LUFS, peak {loud.true_peak_dbtp:.1f} dBTP"),
    ]
    flags = "".join(
        f'<span class="dv-flag" style="background:#dc2626;color:#fff;border-radius:4px;padding:1px 6px;'
        f'margin-right:4px">{escape(flag)}</span>' for flag in scores.flags
    ) or '<span class="dv-flag-none">no flags</span>'
    rows = "".join(
        f'<tr><th style="text-align:left;padding-right:1em">{escape(name)}</th>'
        f'<td class="dv-{escape(name.replace(" ", "-"))}">{escape(value or "-")}</td></tr>'
        for name, value in facts + numbers
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
    return f'<div id="dv-votes"><div style="margin-top:.5em;font-weight:bold">{escape(heading)}</div><table>{rows}</table></div>'


def status_html(message: str, decided: int, warning: bool = False) -> str:
    style = ' style="color:#dc2626;font-weight:bold"' if warning else ""
    return (f'<div id="dv-status-line"{style}>{escape(message)} '
            f'<span style="opacity:.7">({decided} decided this session)</span></div>')  # fmt: skip
