"""The README's shell blocks, as a newcomer pastes them into bash: each one at least parses."""

from __future__ import annotations

import subprocess

from tests.support.markdown import README, blocks


def test_the_readme_shell_blocks_are_valid_shell() -> None:
    shell = blocks(README, "sh")
    assert shell  # the README has a tour in shell; if it were gone this would check nothing
    for code in shell:
        subprocess.run(["bash", "-n"], input=code, text=True, check=True)
