"""Shell completion: the script of the shell asked for, runbook names, the completion protocol.

Completion is driven as a shell drives it: a subprocess with ``_OPSBOOK_COMPLETE`` and the
shell's variables (bash: COMP_WORDS/COMP_CWORD; zsh: Typer's _TYPER_COMPLETE_ARGS).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_cli, run_main

#: What only that shell's script contains.
SHELL_MARKERS = {
    "bash": ("complete -o default -F _opsbook_completion opsbook", "COMP_WORDS"),
    "zsh": ("#compdef opsbook", "compdef _opsbook_completion opsbook"),
    "fish": ("complete --command opsbook", "_OPSBOOK_COMPLETE=complete_fish"),
    "powershell": ("Register-ArgumentCompleter -Native -CommandName opsbook", "complete_powershell"),
    "pwsh": ("Register-ArgumentCompleter -Native -CommandName opsbook", "complete_powershell"),
}


@pytest.mark.parametrize("shell", list(SHELL_MARKERS))
def test_show_completion_prints_the_script_of_the_shell_asked_for(shell: str) -> None:
    result = run_cli("--show-completion", shell, env={"SHELL": "/bin/bash"})  # the given shell wins
    assert result.code == 0, result.err
    for marker in SHELL_MARKERS[shell]:
        assert marker in result.out, (shell, result.out)
    for other, markers in SHELL_MARKERS.items():
        if other != shell and markers[0] != SHELL_MARKERS[shell][0]:
            assert markers[0] not in result.out, (shell, other)


@pytest.mark.parametrize("args", [["--show-completion=zsh"], ["--debug", "--show-completion", "zsh"]])
def test_show_completion_other_spellings(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    result = run_main(capsys, *args)
    assert result.code == 0, result.err
    assert "#compdef opsbook" in result.out


def test_show_completion_unknown_shell_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_main(capsys, "--show-completion", "tcsh")
    assert result.code == 3
    assert result.out == ""
    assert result.err.strip().splitlines() == [
        "opsbook: error: unsupported shell 'tcsh' for --show-completion; choose from: bash, zsh, fish, powershell, pwsh"
    ]


def test_show_completion_without_a_shell_still_detects_it() -> None:
    result = run_cli("--show-completion", env={"SHELL": "/bin/bash"})
    assert result.code == 0, result.err
    assert "_opsbook_completion" in result.out


def _complete_bash(words: str, cword: int) -> list[str]:
    env = {"_OPSBOOK_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    result = run_cli(env=env)
    assert result.code == 0, result.err
    return result.out.split()


def test_bash_completes_runbook_names() -> None:
    assert _complete_bash("opsbook runbooks show d", 3) == ["docker-root"]
    assert _complete_bash("opsbook runbooks show ", 3) == ["docker-root", "winrm-https", "adsync", "exchange-mailbox"]
    assert _complete_bash("opsbook runbooks show e", 3) == ["exchange-mailbox"]


def test_zsh_completes_runbook_names_with_their_description() -> None:
    env = {"_OPSBOOK_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "opsbook runbooks show w"}
    result = run_cli(env=env)
    assert result.code == 0, result.err
    assert '"winrm-https":"WinRM over HTTPS' in result.out
    assert "docker-root" not in result.out


def test_bash_completes_no_color_after_a_subcommand() -> None:
    assert "--no-color" in _complete_bash("opsbook docker-root status --no", 3)


def test_install_completion_for_the_shell_asked_for(tmp_path: Path) -> None:
    result = run_cli("--install-completion", "fish", env={"HOME": str(tmp_path), "SHELL": "/bin/bash"})
    assert result.code == 0, result.err
    script = tmp_path / ".config" / "fish" / "completions" / "opsbook.fish"
    assert "complete --command opsbook" in script.read_text()
    assert not (tmp_path / ".bashrc").exists()
    assert "fish completion installed in" in result.err


def test_root_help_says_a_shell_may_follow(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_main(capsys, "--help")
    assert "Print the completion script for SHELL" in result.out
