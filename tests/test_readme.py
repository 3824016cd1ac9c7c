"""The README agrees with the code: every `convzoo ...` command it shows parses with the real command line,
every flag it names exists, every `make` target it names is in the Makefile, and the torch-free commands
run as written on the shipped store."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from convzoo.cli import parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PLACEHOLDERS = {"NAME": "lenet5-fashion", "ORG/NAME": "someone/lenet5-fashion", "DIR": "triton-models", "N": "3",
                "FILE": "weights.pt", "ORG/lenet5-fashion": "someone/lenet5-fashion"}


def subcommands() -> dict:
    action = next(a for a in parser()._actions if a.dest == "command")
    return action.choices


def inline_commands() -> list[str]:
    """`convzoo SUB ...` in inline code (tables and prose)."""
    return [m.strip() for m in re.findall(r"`convzoo ([a-z][^`]*)`", README)]


def block_commands() -> list[list[str]]:
    """`convzoo ...` lines of the shell blocks, as argument lists (environment assignments and comments dropped)."""
    commands = []
    for block in re.findall(r"```(?:sh|bash)\n(.*?)```", README, re.S):
        for line in block.splitlines():
            if not re.match(r"^\s*(?:[A-Z_]+=\S+\s+)*convzoo\s", line):
                continue  # curl, docker, kubectl: their own tools
            words = shlex.split(line, comments=True)
            while words and re.match(r"^[A-Z_]+=", words[0]):
                words.pop(0)
            if words[:1] == ["convzoo"]:
                commands.append([PLACEHOLDERS.get(w, w) for w in words[1:]])
    return commands


def test_the_readme_shows_commands_to_check():
    assert len(inline_commands()) >= 15 and len(block_commands()) >= 6  # the extractors find them


@pytest.mark.parametrize("command", inline_commands())
def test_every_inline_command_and_flag_exists(command):
    words = command.replace("[", " ").replace("]", " ").replace("\\|", " ").split()
    sub = subcommands().get(words[0])
    assert sub is not None, f"README names `convzoo {words[0]}`, which the command line does not have"
    options = {s for action in sub._actions for s in action.option_strings}
    for flag in (w for w in words[1:] if w.startswith("--")):
        assert flag in options, f"README names `convzoo {words[0]} {flag}`, which it does not take"


@pytest.mark.parametrize("words", block_commands(), ids=" ".join)
def test_every_shell_block_command_parses(words):
    try:
        parser().parse_args(words)
    except SystemExit as e:
        pytest.fail(f"`convzoo {' '.join(words)}` from the README does not parse (exit {e.code})")


def test_every_make_target_named_exists():
    targets = set(re.findall(r"(?m)^([a-z-]+):", (ROOT / "Makefile").read_text()))
    named = set(re.findall(r"`make ([a-z-]+)`|^make ([a-z-]+)", README, re.M))
    named = {a or b for a, b in named}
    assert {"demo", "test"} <= named and named <= targets, named - targets


@pytest.mark.parametrize("args, expect", [
    (["list"], "lenet5-fashion"),
    (["info", "unet-membranes"], "pipeline_tag: image-segmentation"),
    (["doctor"], "stores searched"),
])
def test_the_torch_free_readme_commands_run(args, expect, tmp_path):
    code = "import sys; sys.modules['torch'] = None\nfrom convzoo.cli import main; sys.exit(main())"
    done = subprocess.run([sys.executable, "-c", code, *args, "--store", str(ROOT / "models")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert expect in done.stdout


def test_convzoo_triton_writes_the_repository_the_readme_describes(tmp_path):
    code = "import sys; sys.modules['torch'] = None\nfrom convzoo.cli import main; sys.exit(main())"
    done = subprocess.run([sys.executable, "-c", code, "triton", str(tmp_path / "repo"), "lenet5-fashion",
                           "--store", str(ROOT / "models")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "repo" / "lenet5-fashion"
    assert (folder / "config.pbtxt").is_file() and (folder / "1" / "model.onnx").is_file()
    assert (folder / "labels.txt").read_text().splitlines()[0] == "T-shirt/top"
