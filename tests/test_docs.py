"""The code blocks of README.md and docs/*.md, executed, so the docs cannot drift from the code.

Every ```python, ```bash, ```sh and ```console block of README.md and
docs/*.md (except docs/bad_inputs.md, whose table tests/test_bad_inputs.py
runs row by row) is executed:

- A page's blocks run in order in one fresh temporary directory (also its
  `TMPDIR`, with `benchmarks/` linked in), so a block may use what an earlier
  block of the same page wrote: a run directory trained, then evaluated.
- Shell blocks run with `bash -e`; a console block runs its `$ ` lines (the
  other lines are output). Python blocks run with `sys.executable` in a
  subprocess. Each must exit with status 0.
- Quick mode: before a block runs, the numbers that set how long it trains are
  lowered in its text. In shell blocks each flag of `QUICK_FLAGS` (for example
  `--epochs 50`) gets the quick value (`--epochs 2`), and in Python blocks each
  keyword of `QUICK_KEYWORDS` (`epochs=20` becomes `epochs=2`); a value
  already at or below the quick one is kept. The docs therefore show the
  settings behind their measured numbers and the test runs them small.
- A block that needs what this machine lacks (a TF Serving server, a GPU, a
  TPU, internet, a multi-machine cluster), or that CI runs itself, is marked
  on the line right before it with `<!-- docs-test: skip (REASON) -->`. Only
  those are skipped, and REASON must start with one of `SKIP_REASONS`, so a
  marker cannot hide an ordinary block.

Time on 2 cores: the README, the newcomer's page, runs in the default suite
(about 100 s, the README's three training runs most of it); the other pages are marked `slow` (`python -m pytest -m slow
tests/test_docs.py`, 30 s to 4 minutes each, about 12 minutes in all). The
default suite also checks every page cheaply, in this process: markers are
valid, Python blocks compile and every `tfvae` name they use exists, and
every `tfvae ...` command line of a shell block is accepted by the CLI's
parser.
"""

import ast
import dataclasses
import importlib
import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

import tfvae
from tfvae.cli import build_parser
from tfvae.errors import TfvaeError

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = ("README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")))
PAGES = tuple(page for page in PAGES if page != "docs/bad_inputs.md")
# Pages executed in the default suite; every other page is executed under `-m slow`.
DEFAULT_PAGES = ("README.md",)

LANGUAGES = {"python": "python", "bash": "shell", "sh": "shell", "console": "console"}
SKIP_REASONS = (
    "CI runs these",
    "needs a TF Serving server",
    "needs a GPU",
    "needs a TPU",
    "needs internet",
    "needs a multi-machine cluster",
)
MARKER = re.compile(r"^<!--\s*docs-test:\s*(.*?)\s*-->$")
SKIP = re.compile(r"^skip \((.+)\)$")

QUICK_FLAGS = {
    "--epochs": 2,
    "--nll-samples": 10,
    "--repeats": 1,
    "--steps": 50,
    "--rounds": 1,
    "--warmup": 1,
    "--labels-per-class": 10,
}
QUICK_KEYWORDS = {"epochs": 2, "nll_samples": 10}
BLOCK_TIMEOUT_S = 900

# Parser errors that mean a documented command line no longer matches the
# CLI's flags (a bad value is the command's own business, e.g. an error example).
PARSER_STRUCTURE_ERRORS = (
    "unrecognized arguments",
    "invalid choice",
    "expected one argument",
    "expected at least one argument",
    "the following arguments are required",
    "not allowed with argument",
    "ambiguous option",
)


@dataclasses.dataclass
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    kind: str  # "python", "shell" or "console"
    source: str
    skip_reason: str | None

    @property
    def where(self):
        return f"{self.page}:{self.line}"


def read_blocks(page):
    """The executable blocks of `page`, in order; raises on a malformed marker."""
    lines = (ROOT / page).read_text().splitlines()
    blocks, previous, i = [], "", 0
    while i < len(lines):
        stripped = lines[i].strip()
        if stripped.startswith("```") and stripped != "```":
            language = stripped[3:].strip().split()[0]
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
            if language in LANGUAGES:
                blocks.append(
                    Block(
                        page,
                        i + 1,
                        LANGUAGES[language],
                        "\n".join(lines[i + 1 : end]) + "\n",
                        _skip_reason(previous, page, i + 1),
                    )
                )
            elif MARKER.match(previous):
                raise AssertionError(
                    f"{page}:{i + 1}: a docs-test marker before a {language} block"
                )
            previous, i = "", end + 1
            continue
        if stripped:
            if MARKER.match(previous) and not MARKER.match(stripped):
                raise AssertionError(f"{page}:{i}: a docs-test marker that is not before a block")
            previous = stripped
        i += 1
    return blocks


def _skip_reason(previous, page, line):
    marker = MARKER.match(previous)
    if not marker:
        return None
    skip = SKIP.match(marker.group(1))
    assert skip, f"{page}:{line}: unknown docs-test marker {previous!r}; expected 'skip (REASON)'"
    reason = skip.group(1)
    assert reason.startswith(SKIP_REASONS), (
        f"{page}:{line}: skip reason {reason!r} is not one of {SKIP_REASONS}: only blocks "
        "that need what this machine lacks may be skipped"
    )
    return reason


def _lowered(match, quick):
    numbers = match.group(2).split()
    if max(float(n) for n in numbers) <= quick:
        return match.group(0)
    return f"{match.group(1)} {quick}"


def quick(block):
    """The block's source in quick mode (see the module docstring)."""
    source = block.source
    if block.kind == "python":
        for keyword, value in QUICK_KEYWORDS.items():
            source = re.sub(
                rf"\b({keyword})=(\d+)\b",
                lambda m, v=value: m.group(0) if int(m.group(2)) <= v else f"{m.group(1)}={v}",
                source,
            )
        return source
    for flag, value in QUICK_FLAGS.items():
        source = re.sub(
            rf"(?<![\w-])({re.escape(flag)})((?:[ \t]+\d+(?:\.\d+)?)+)(?=\s|\"|'|$)",
            lambda m, v=value: _lowered(m, v),
            source,
        )
    return source


def console_commands(source):
    return "".join(line[2:] + "\n" for line in source.splitlines() if line.startswith("$ "))


def _environment(workdir):
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("KERASTUNER_", "TF_CONFIG", "PYTEST_"))
    }
    # `python` and `tfvae` in shell blocks are this interpreter's.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.update(TMPDIR=str(workdir), MPLBACKEND="Agg", TF_CPP_MIN_LOG_LEVEL="2")
    return env


def run_block(block, workdir, index):
    """Runs `block` in quick mode in `workdir`; fails the test with its output unless it exits 0."""
    source = quick(block)
    if block.kind == "python":
        script = workdir / f".docs_block_{index}.py"
        script.write_text(source)
        command = [sys.executable, str(script)]
    else:
        script = workdir / f".docs_block_{index}.sh"
        script.write_text(console_commands(source) if block.kind == "console" else source)
        command = ["bash", "-e", str(script)]
    try:
        done = subprocess.run(
            command,
            cwd=workdir,
            env=_environment(workdir),
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{block.where}: timed out after {BLOCK_TIMEOUT_S} s\n{source}")
    if done.returncode != 0:
        pytest.fail(
            f"{block.where}: exit status {done.returncode}\n--- block (quick mode) ---\n{source}"
            f"--- stdout (end) ---\n{done.stdout[-3000:]}\n--- stderr (end) ---\n{done.stderr[-3000:]}",
            pytrace=False,
        )


def run_page(page, workdir):
    (workdir / "benchmarks").symlink_to(ROOT / "benchmarks")
    blocks = [block for block in read_blocks(page) if block.skip_reason is None]
    assert blocks, f"{page} has no executable block"
    for index, block in enumerate(blocks):
        run_block(block, workdir, index)


@pytest.mark.parametrize(
    "page",
    [pytest.param(page, marks=() if page in DEFAULT_PAGES else pytest.mark.slow) for page in PAGES],
)
def test_page_blocks_run(page, tmp_path):
    run_page(page, tmp_path)


def test_skip_markers_are_few_and_valid():
    blocks = [block for page in PAGES for block in read_blocks(page)]
    skipped = [block for block in blocks if block.skip_reason]
    # The README's install commands are the only skip that is not a missing resource.
    ci = [block for block in skipped if block.skip_reason.startswith("CI runs these")]
    assert [block.page for block in ci] == ["README.md"], [block.where for block in ci]
    assert ci[0].line == read_blocks("README.md")[0].line, "the install commands come first"
    assert "pip install -e .[dev] && python -m pytest" in ci[0].source
    assert len(skipped) <= len(blocks) // 4, [block.where for block in skipped]


def test_quick_mode_lowers_only_run_lengths():
    shell = Block("x", 1, "shell", "tfvae train --epochs 50 --steps-per-execution 32\n", None)
    assert quick(shell) == "tfvae train --epochs 2 --steps-per-execution 32\n"
    listed = Block("x", 1, "shell", 'FLAGS="--labels-per-class 10 50 100 --steps 1000"\n', None)
    assert quick(listed) == 'FLAGS="--labels-per-class 10 --steps 50"\n'
    kept = Block("x", 1, "shell", "tfvae evaluate runs/a --nll-samples 0 --epochs 1\n", None)
    assert quick(kept) == kept.source
    python = Block("x", 1, "python", "TrainConfig(epochs=20, kl_warmup_epochs=5)\n", None)
    assert quick(python) == "TrainConfig(epochs=2, kl_warmup_epochs=5)\n"


def _tfvae_command_lines(source):
    """`[argv]` of the `tfvae ...` commands of a shell block whose words are all known."""
    variables, commands = {}, []
    text = source.replace("\\\n", " ")
    for line in text.splitlines():
        assignment = re.match(r'^([A-Z_]+)="([^"$]*)"$', line.strip())
        if assignment:
            variables[assignment.group(1)] = assignment.group(2)
            continue
        for name, value in variables.items():
            line = line.replace(f"${name}", value)
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        command = []
        for word in [*words, ";"]:
            if word in (";", "&&", "||", "|", "&") or word.endswith(";"):
                if command:
                    commands.append(command)
                command = []
            elif command or not re.match(r"^[A-Z_]+=", word):
                command.append(word)
    return [
        command[1:]
        for command in commands
        if command[0] == "tfvae" and not any("$" in word or "*" in word for word in command)
    ]


def test_documented_command_lines_parse():
    parser_failures = []
    for page in PAGES:
        for block in read_blocks(page):
            if block.kind == "python" or block.skip_reason:
                continue
            source = console_commands(block.source) if block.kind == "console" else block.source
            for argv in _tfvae_command_lines(source):
                try:
                    build_parser().parse_args(argv)
                except SystemExit as stop:  # --help, --version
                    if stop.code:
                        parser_failures.append(
                            f"{block.where}: tfvae {shlex.join(argv)}: exit {stop.code}"
                        )
                except TfvaeError as error:
                    if any(text in str(error) for text in PARSER_STRUCTURE_ERRORS):
                        parser_failures.append(f"{block.where}: tfvae {shlex.join(argv)}: {error}")
    assert not parser_failures, "\n".join(parser_failures)


def _missing_tfvae_names(tree):
    """The `tfvae` names a Python block imports or reads that do not exist."""
    missing = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "tfvae":
            try:
                module = importlib.import_module(node.module)
            except ImportError as error:
                missing.append(f"from {node.module} import ...: {error}")
                continue
            for alias in node.names:
                if hasattr(module, alias.name):
                    continue
                try:
                    importlib.import_module(f"{node.module}.{alias.name}")
                except ImportError:
                    missing.append(f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "tfvae":
                    try:
                        importlib.import_module(alias.name)
                    except ImportError as error:
                        missing.append(f"import {alias.name}: {error}")
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "tfvae"
            and not hasattr(tfvae, node.attr)
        ):
            missing.append(f"tfvae.{node.attr}")
    return missing


def test_python_blocks_compile_and_use_existing_names():
    problems = []
    for page in PAGES:
        for block in read_blocks(page):
            if block.kind != "python":
                continue
            tree = compile(block.source, block.where, "exec", flags=ast.PyCF_ONLY_AST)
            problems += [f"{block.where}: {name}" for name in _missing_tfvae_names(tree)]
    assert not problems, "\n".join(sorted(set(problems)))
