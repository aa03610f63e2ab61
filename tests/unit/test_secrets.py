"""Credentials kept out of stored URLs, and secret values masked in stored logs."""

from __future__ import annotations

import pytest

from clearq.runtime.logmask import MASK, SecretMask
from clearq.secrets import known_secrets, scrub_env_fields, strip_url_credentials, url_secrets


@pytest.mark.parametrize(
    ("text", "clean", "removed"),
    [
        (
            "pkg @ git+https://user:tok3n@git.example.com/org/pkg.git@v1",
            "pkg @ git+https://git.example.com/org/pkg.git@v1",
            ("user:tok3n",),
        ),
        ("https://ghp_abcdef@github.com/o/r", "https://github.com/o/r", ("ghp_abcdef",)),
        ("https://u:p@ss@host/simple", "https://host/simple", ("u:p@ss",)),
        ("ssh://git@github.com/o/r.git", "ssh://git@github.com/o/r.git", ()),
        ("git+ssh://git:pw@h/r.git", "git+ssh://h/r.git", ("git:pw",)),
        ("six==1.16.0", "six==1.16.0", ()),
        (
            'url = "https://a:b@one/simple"\nurl = "https://two/simple"\n',
            'url = "https://one/simple"\nurl = "https://two/simple"\n',
            ("a:b",),
        ),
    ],
)
def test_userinfo_is_stripped_from_every_url_in_a_text(
    text: str, clean: str, removed: tuple[str, ...]
) -> None:
    assert strip_url_credentials(text) == (clean, removed)


def test_an_env_spec_loses_its_credentials_with_a_warning_saying_where() -> None:
    env = {
        "requirements": ["six==1.16.0", "pkg @ git+https://user:tok3n@host/pkg.git"],
        "index_urls": ["https://me:s3cret@index.example.com/simple"],
        "lock_file": '[[package]]\nurl = "https://x:y@files/pkg.whl"\n',
        "project_file": None,
    }
    clean, warnings = scrub_env_fields(env, "task 'train'")
    assert clean["requirements"] == ["six==1.16.0", "pkg @ git+https://host/pkg.git"]
    assert clean["index_urls"] == ["https://index.example.com/simple"]
    assert "x:y" not in clean["lock_file"]
    assert len(warnings) == 3
    assert "task 'train': requirements[1]" in warnings[0]
    assert "task 'train': index_urls[0]" in warnings[1]
    assert "task 'train': lock_file" in warnings[2]
    assert not any("tok3n" in w or "s3cret" in w for w in warnings)


def test_the_secrets_an_agent_knows() -> None:
    environ = {
        "PIP_EXTRA_INDEX_URL": "https://a/simple https://bob:idx-pass@b/simple",
        "https_proxy": "http://proxy-token@proxy:3128",
        "HOME": "/root",
    }
    found = known_secrets("postgresql://clearq:db-pa%24s@db/clearq", environ, ["operator-1"])
    assert set(found) == {"db-pa%24s", "db-pa$s", "idx-pass", "proxy-token", "operator-1"}
    assert url_secrets("sqlite:///x.db") == ()
    assert url_secrets("ssh://git@host/r") == ()


def _fed(mask: SecretMask, *pieces: str) -> str:
    return "".join(mask.feed("stdout", p) for p in pieces) + "".join(t for _, t in mask.drain())


def test_a_secret_is_masked_whole_and_split_across_chunks() -> None:
    secret = "hunter2-token"
    for cut in range(1, len(secret)):
        mask = SecretMask([secret])
        text = _fed(mask, f"token is {secret[:cut]}", f"{secret[cut:]} ok\n")
        assert text == f"token is {MASK} ok\n"
    mask = SecretMask([secret])
    assert _fed(mask, "a hun", "ter", "2-tok", "en\n") == f"a {MASK}\n"


def test_ordinary_output_passes_at_once_and_a_finished_line_is_never_held() -> None:
    mask = SecretMask(["hunter2-token"])
    assert mask.feed("stdout", "epoch 1 loss 0.3\n") == "epoch 1 loss 0.3\n"
    assert mask.feed("stdout", "almost hunt") == "almost "
    assert mask.feed("stderr", "other stream\n") == "other stream\n"
    assert mask.feed("stdout", "ing\n") == "hunting\n"
    assert mask.drain() == []


def test_a_held_prefix_at_the_end_is_masked_when_it_gives_much_away() -> None:
    mask = SecretMask(["hunter2-token", "ab"])
    assert mask.feed("stdout", "ends with hunter2") == "ends with "
    assert mask.drain() == [("stdout", MASK)]
    assert not SecretMask(["ab"])  # too short to mask at all
