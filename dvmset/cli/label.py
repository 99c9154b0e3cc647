"""`dvmset label`: serve the labeling app, or add a user to its users file.

Registered by `dvmset.cli.main`. Exit codes as in `dvmset.cli.common`: 2 for a
non-loopback host without a users file, 3 for an unreadable users file or config.
"""

from __future__ import annotations

import getpass
import ipaddress
import sys
from pathlib import Path
from typing import Annotated

import typer

from dvmset.cli.common import ConfigOption, ExitCode, fail, open_catalog, out
from dvmset.errors import ConfigError, DvmsetError


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address) is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def label(
    config_path: ConfigOption = None,
    host: Annotated[
        str, typer.Option(help="address to listen on; other than loopback only with --users")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 7860,
    users: Annotated[Path | None, typer.Option(help="users file (TOML or JSON): who may log in")] = None,
    add_user: Annotated[str | None, typer.Option(help="add (or replace) this user in --users, then exit")] = None,
    role: Annotated[str, typer.Option(help="role of --add-user: annotator or reviewer")] = "annotator",
    password_stdin: Annotated[bool, typer.Option(help="read --add-user's password from stdin")] = False,
    lease_min: Annotated[float, typer.Option(min=0.5, help="minutes a clip on screen stays reserved")] = 15.0,
    overlap_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="share of clips two annotators review")] = 0.1,
    annotator: Annotated[str | None, typer.Option(help="the name labels get without --users (default: $USER)")] = None,
    guidelines: Annotated[Path | None, typer.Option(help="markdown file of review guidelines, opened with ?")] = None,
) -> None:
    """Serve the labeling app: annotators accept or reject the clips of their queue in a browser."""
    from labeling_ui.users import Role, load_users
    from labeling_ui.users import add_user as add_user_entry

    if add_user is not None:
        if users is None or role not in {r.value for r in Role}:
            raise fail(ExitCode.USAGE, "--add-user needs --users FILE and --role annotator|reviewer")
        password = sys.stdin.readline().rstrip("\n") if password_stdin else _prompt_password()
        try:
            add_user_entry(users, add_user, Role(role), password)
        except ConfigError as exc:
            raise fail(ExitCode.CONFIG, str(exc)) from exc
        out.print(f"{users}: {add_user} ({role}) saved")
        return
    if users is None and not is_loopback(host):
        raise fail(
            ExitCode.USAGE,
            f"refusing to serve on {host} without logins: pass --users FILE "
            "(make one with --add-user), or use --host 127.0.0.1",
        )
    try:
        entries = load_users(users) if users is not None else None
    except ConfigError as exc:
        raise fail(ExitCode.CONFIG, str(exc)) from exc
    if entries is not None and not entries:
        raise fail(ExitCode.CONFIG, f"{users} has no users: add one with --add-user")
    try:
        guidelines_md = guidelines.read_text(encoding="utf-8") if guidelines is not None else None
    except OSError as exc:
        raise fail(ExitCode.CONFIG, f"cannot read guidelines file {guidelines}: {exc}") from exc
    config, catalog = open_catalog(config_path)
    catalog.close()
    from labeling_ui.app import DEFAULT_GUIDELINES, AppSettings, serve
    from labeling_ui.session import ReviewSettings
    from labeling_ui.views import Thresholds

    settings = AppSettings(
        data_root=config.data_root.resolve(),
        catalog_url=config.resolved_catalog_url,
        store=config.data_storage().store,
        review=ReviewSettings(lease_s=lease_min * 60.0, overlap_share=overlap_share),
        silence_dbfs=config.prescreen.silence_dbfs,
        users=entries,
        default_annotator=annotator or _login_name(),
        thresholds=Thresholds(
            max_non_music_s=config.prescreen.max_non_music_s,
            max_static_share=config.prescreen.max_static_share,
            max_noise_score=config.prescreen.max_noise_score,
            target_lufs=config.loudness.target_lufs,
            true_peak_ceiling_dbtp=config.loudness.true_peak_ceiling_dbtp,
        ),
        guidelines_md=guidelines_md or DEFAULT_GUIDELINES,
    )
    out.print(f"labeling app on http://{host}:{port} ({'logins from ' + str(users) if users else 'no login'})")
    try:
        serve(settings, host, port)
    except DvmsetError as exc:
        raise fail(ExitCode.USAGE, str(exc)) from exc


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no $USER and no passwd entry (some containers)
        return "annotator"


def _prompt_password() -> str:
    password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    return str(password)
