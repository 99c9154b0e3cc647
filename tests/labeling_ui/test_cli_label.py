"""`dvmset label` as a script runs it: users, the loopback rule, serving."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

from labeling_ui.users import Authenticator, Role, load_users
from tests.support.ports import free_port


def label(args: list[str], cwd, stdin: str = "") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DVMSET_")} | {"GRADIO_ANALYTICS_ENABLED": "False"}
    return subprocess.run(
        [sys.executable, "-m", "dvmset", "label", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_add_user_writes_a_hash_that_logs_in(tmp_path):
    result = label(
        ["--users", "users.toml", "--add-user", "ann", "--role", "reviewer", "--password-stdin"],
        tmp_path,
        stdin="s3cret pass\n",
    )
    assert result.returncode == 0, result.stderr
    users = load_users(tmp_path / "users.toml")
    assert users["ann"].role is Role.REVIEWER and Authenticator(users)("ann", "s3cret pass")
    assert "s3cret" not in (tmp_path / "users.toml").read_text()
    bad_role = label(["--users", "users.toml", "--add-user", "bob", "--role", "boss", "--password-stdin"], tmp_path)
    assert bad_role.returncode == 2


def test_a_public_address_without_logins_is_refused(tmp_path):
    result = label(["--host", "0.0.0.0"], tmp_path)
    assert result.returncode == 2
    assert "refusing to serve on 0.0.0.0 without logins" in result.stderr
    (tmp_path / "broken.toml").write_text("[[users]\n")
    broken = label(["--host", "0.0.0.0", "--users", "broken.toml"], tmp_path)
    assert broken.returncode == 3 and "cannot read users file" in broken.stderr


def test_label_serves_the_app_on_loopback(review_data, tmp_path):
    (tmp_path / "dvmset.toml").write_text(f'data_root = "{review_data.data_root}"\n')
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DVMSET_")} | {"GRADIO_ANALYTICS_ENABLED": "False"}
    process = subprocess.Popen(
        [sys.executable, "-m", "dvmset", "label", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        page = None
        for _ in range(600):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    page = response.read().decode()
                break
            except (urllib.error.URLError, ConnectionError):
                assert process.poll() is None, process.communicate()
                time.sleep(0.1)
        assert page is not None and "DVMSet labeling" in page
    finally:
        process.terminate()
        process.wait(timeout=30)
