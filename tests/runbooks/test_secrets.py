from __future__ import annotations

from pathlib import Path

import pytest

from opsbook.runbooks.errors import InputError
from opsbook.runbooks.secrets import Scrubber, Secret, secret_from


def test_secret_never_shows_itself() -> None:
    secret = Secret("hunter2")
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in str(secret)
    assert "hunter2" not in f"{secret}"
    assert secret.reveal() == "hunter2"


def test_secret_from_file_then_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_SECRET", "from-env")
    path = tmp_path / "s"
    path.write_text("from-file\n")
    found = secret_from("X_SECRET", path)
    assert found is not None and found.reveal() == "from-file"
    found = secret_from("X_SECRET", None)
    assert found is not None and found.reveal() == "from-env"
    monkeypatch.delenv("X_SECRET")
    assert secret_from("X_SECRET", None) is None


def test_secret_file_errors_are_clean(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read secret file"):
        secret_from(None, tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(InputError, match="empty"):
        secret_from(None, empty)


def test_scrubber_masks_any_case_and_the_longest_value_first() -> None:
    scrub = Scrubber()
    scrub.add("Srv-Secret.Corp.Test")
    scrub.add("Srv")
    assert scrub("connect srv-secret.corp.test:5986 / SRV-SECRET.CORP.TEST / Srv-Secret.Corp.Test") == (
        "connect ***:5986 / *** / ***"
    )
    assert scrub("srv") == "***"
    scrub.add("x")  # one character cannot be masked usefully
    assert scrub("x marks") == "x marks"
    assert not Scrubber() and Scrubber()("text") == "text"


def test_scrubber_masks_the_idna_forms_of_a_host_name() -> None:
    scrub = Scrubber()
    scrub.add("Geheim-München.corp.test")
    # what resolvers, certificates and the checks print: the A-label, lower case
    assert scrub("xn--geheim-mnchen-3ob.corp.test:5986 refused") == "***:5986 refused"
    assert scrub("GEHEIM-MÜNCHEN.CORP.TEST") == "***"
    ascii_form = Scrubber()
    ascii_form.add("xn--geheim-mnchen-3ob.corp.test")  # written as an A-label, shown as Unicode
    assert ascii_form("name geheim-münchen.corp.test") == "name ***"
