"""The users file and the login check (no browser)."""

from __future__ import annotations

import json

import pytest

from labeling_ui.users import Authenticator, Role, UsersFileError, add_user, hash_password, load_users, verify_password


def test_a_password_hash_is_salted_and_verifies_only_the_right_password():
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second and first.startswith("scrypt$")
    assert verify_password("correct horse", first) and verify_password("correct horse", second)
    assert not verify_password("correct hors", first)
    assert not verify_password("correct horse", "scrypt$broken") and not verify_password("x", "md5$a$b$c$d$e")


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_users_added_to_a_file_log_in_with_their_role(tmp_path, suffix):
    path = tmp_path / f"users{suffix}"
    add_user(path, "ann", Role.ANNOTATOR, "pw-ann")
    add_user(path, "rev", Role.REVIEWER, "pw-rev")
    add_user(path, "ann", Role.ANNOTATOR, "new-pw")  # replaces her entry
    assert "pw-ann" not in path.read_text() and "new-pw" not in path.read_text()
    users = load_users(path)
    assert sorted(users) == ["ann", "rev"] and users["rev"].role is Role.REVIEWER
    auth = Authenticator(users)
    assert auth("ann", "new-pw") and auth("rev", "pw-rev")
    assert not auth("ann", "pw-ann") and not auth("ann", "") and not auth("nobody", "new-pw")
    assert auth.role("rev") is Role.REVIEWER and auth.role("nobody") is None


def test_a_hand_written_toml_file_is_read(tmp_path):
    path = tmp_path / "users.toml"
    path.write_text(f'[[users]]\nname = "bob"\nrole = "annotator"\npassword_hash = "{hash_password("s3cret")}"\n')
    assert Authenticator(load_users(path))("bob", "s3cret")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[[users]]\nname = "bob"\nrole = "boss"\npassword_hash = "scrypt$1"\n', "role 'boss'"),
        ('[[users]]\nname = "bob"\nrole = "annotator"\npassword = "plain"\n', "exactly name, role and password_hash"),
        ('[[users]]\nname = "bo b"\nrole = "annotator"\npassword_hash = "scrypt$1"\n', "invalid user name"),
        ('[[users]]\nname = "bob"\nrole = "annotator"\npassword_hash = "plain"\n', "--add-user"),
        ("[[users]\n", "cannot read"),
    ],
)
def test_an_invalid_users_file_says_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "users.toml"
    path.write_text(content)
    with pytest.raises(UsersFileError, match=message):
        load_users(path)


def test_a_user_twice_and_bad_names_are_refused(tmp_path):
    entry = {"name": "ann", "role": "annotator", "password_hash": hash_password("x")}
    path = tmp_path / "users.json"
    path.write_text(json.dumps({"users": [entry, entry]}))
    with pytest.raises(UsersFileError, match="twice"):
        load_users(path)
    with pytest.raises(UsersFileError, match="invalid user name"):
        add_user(tmp_path / "u.toml", 'a"b', Role.ANNOTATOR, "x")
    with pytest.raises(UsersFileError, match="empty"):
        add_user(tmp_path / "u.toml", "ann", Role.ANNOTATOR, "")
