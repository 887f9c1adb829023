"""The README and docs/ cannot rot: their Python snippets run, the tour's curl lines name real routes, the
configuration table lists exactly the settings the code reads, and every link leads somewhere.

In the manner of eventsourcing's `tests/docs_tests/test_docs.py`: the code blocks are read out of the
Markdown and run here.
"""

from __future__ import annotations

import ast
import re
import shlex
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.routing import compile_path

from ledger.adapters.outbound.downstream import SignatureMismatch, sign, verify_signature
from ledger.cli.sandbox_gateway import BILL_POST_PATH, TRADES_PATH
from ledger.cli.sandbox_gateway import PATH as GATEWAY_PATH
from tests.support.markdown import FENCE, README, blocks, shell_lines

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
PACKAGES = ("ledger", "api", "jobs", "projections")
TOKEN_NAMES = {"MERCHANT_TOKEN", "OPERATOR_TOKEN", "FINANCE_TOKEN", "AUDITOR_TOKEN"}  # .sandbox/tokens.env
SETTING = re.compile(r"LEDGER_[A-Z0-9_]+")


def section(path: Path, title: str) -> str:
    """The text of a `## title` section, up to the next `## ` heading."""
    text = path.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def table_first_cells(text: str) -> list[str]:
    """The first cell of each row of the Markdown tables in `text` (header and rule rows left out)."""
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    cells = [row.split("|")[1].strip() for row in rows]
    return [cell for cell in cells if not set(cell) <= set("- ") and cell not in ("variable", "method and path")]


# -- the Python snippets ---------------------------------------------------------------------------------

def run_snippet(code: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "readme_snippet"}
    exec(compile(code, "<README snippet>", "exec"), namespace)  # noqa: S102 (the project's own README)
    return namespace


def test_every_python_snippet_of_the_readme_and_docs_runs() -> None:
    snippets = [code for path in (README, *DOCS) for code in blocks(path, "python")]
    assert snippets, "the README has at least the receiver's check"
    for code in snippets:
        run_snippet(code)


def receiver() -> Callable[..., bool]:
    """The README's receiver check, as a merchant would paste it."""
    [code] = [code for code in blocks(README, "python") if "def verify(" in code]
    verify: Callable[..., bool] = run_snippet(code)["verify"]
    return verify


def test_the_readme_receiver_accepts_a_delivery_signed_by_the_ledger_and_nothing_altered() -> None:
    verify = receiver()
    body = b'{"change":"payment","out_trade_no":"T-1001","status":"PAID","total_amount":"88.00"}'
    header = sign("whsec-merchant", body, int(time.time()))
    assert verify(header, body, "whsec-merchant")
    assert not verify(header, body + b" ", "whsec-merchant")
    assert not verify(header, body, "another secret")
    assert not verify(sign("whsec-merchant", body, int(time.time()) - 301), body, "whsec-merchant")
    assert not verify(None, body, "whsec-merchant")


def outcome(check: Callable[[], object]) -> object:
    """True, False (a mismatch) or the type of any other error, so the two checks can be compared."""
    try:
        result = check()
    except SignatureMismatch:
        return False
    except Exception as exc:  # a programming error (ValueError) must be one in both
        return type(exc)
    return result is not False


NOW = 1_763_712_000
BODY = b'{"change":"refund","order_version":4}'


@st.composite
def headers(draw: st.DrawFn) -> str:
    """Headers near a valid one: signatures right and wrong, timestamps in and out of tolerance, written
    oddly (zeros in front, non-ASCII digits, spaces, other schemes, repeats)."""
    secret = "whsec-merchant"
    stamp = draw(st.sampled_from([NOW, NOW - 300, NOW + 300, NOW - 301, NOW + 301, 0]))
    good = sign(secret, BODY, stamp).split(",")[1].partition("=")[2]
    stamp_text = draw(st.sampled_from([str(stamp), f"00{stamp}", f"+{stamp}", f" {stamp}", "١٢٣", "", "x"]))
    values = st.sampled_from([good, good.upper(), "0" * 64, "é" * 3, "", f" {good}"])
    items = draw(st.lists(st.one_of(
        st.just(f"t={stamp_text}"),
        st.builds(lambda v: f"v1={v}", values),
        st.builds(lambda v: f"v0={v}", values),
        st.sampled_from(["t", "v1", "", "=", " t =1", f" v1={good} "]),
    ), max_size=5))
    spaced = [f" {item}" if draw(st.booleans()) else item for item in items]
    return ",".join(spaced)


@settings(max_examples=200, deadline=None)
@given(header=headers(), tolerance=st.sampled_from([0, 300, -1]), secret=st.sampled_from(["whsec-merchant", "x", ""]))
def test_the_readme_receiver_answers_as_verify_signature_on_any_header(header: str, tolerance: int,
                                                                       secret: str) -> None:
    verify = receiver()
    ours = outcome(lambda: verify_signature(header, BODY, secret, tolerance=tolerance, now=NOW))
    theirs = outcome(lambda: verify(header, BODY, secret, tolerance, now=NOW))
    assert ours == theirs


def test_the_readme_receiver_reads_the_clock_as_verify_signature_does(monkeypatch: pytest.MonkeyPatch) -> None:
    verify = receiver()
    header = sign("whsec-merchant", BODY, NOW)
    for now in (NOW + 300.9, NOW + 301.0, NOW - 300.9, NOW - 299.1):  # whole seconds, as the ledger counts
        monkeypatch.setattr(time, "time", lambda now=now: now)
        assert outcome(lambda: verify(header, BODY, "whsec-merchant")) == outcome(
            lambda: verify_signature(header, BODY, "whsec-merchant"))


# -- the shell tour ----------------------------------------------------------------------------------------

def routes() -> Iterator[tuple[str, str]]:
    """(method, path) of every `Route(...)` in api/, read from the source: the app's routes as written."""
    for path in sorted((ROOT / "api").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Route":
                first = node.args[0]
                assert isinstance(first, ast.Constant) and isinstance(first.value, str)
                methods = next(k.value for k in node.keywords if k.arg == "methods")
                assert isinstance(methods, ast.List)
                for method in methods.elts:
                    assert isinstance(method, ast.Constant)
                    yield str(method.value), first.value


ROUTES = sorted(set(routes()))


def route_of(method: str, path: str) -> tuple[str, str] | None:
    return next(((m, p) for m, p in ROUTES if m == method and compile_path(p)[0].match(path)), None)


STAND_IN_ROUTES = {("POST", TRADES_PATH), ("POST", BILL_POST_PATH), ("POST", GATEWAY_PATH)}


TODAY = "$(TZ=Asia/Shanghai date +%F)"  # the tour's day, China Standard Time's today


def curl_lines() -> list[list[str]]:
    """The tour's curl commands, split as the shell would (variables left alone, the day as it prints)."""
    commands = [line.split("|")[0].replace(TODAY, "2026-12-01") for code in blocks(README, "sh") if "curl" in code
                for line in shell_lines(code)]
    return [shlex.split(command, comments=True) for command in commands if command.strip().startswith("curl")]


def test_the_tour_names_only_endpoints_that_exist_with_a_token_of_the_demo() -> None:
    tour = section(README, "A 60-second tour")
    assert "source .sandbox/tokens.env" in tour
    commands = curl_lines()
    assert len(commands) >= 5
    for words in commands:
        [url] = [w for w in words if "localhost:" in w]
        method = words[words.index("-X") + 1] if "-X" in words else ("POST" if "-d" in words else "GET")
        path = "/" + url.split("/", 1)[1].split("?")[0]
        if "localhost:8010" in url:  # the demo's stand-in for Alipay's gateway, on the ledger's port + 10
            assert (method, path) in STAND_IN_ROUTES, f"{method} {path} is not a route of the stand-in gateway"
            continue
        assert route_of(method, path), f"{method} {path} is not a route of api/"
        if path.startswith("/api/") and path != "/api/alipay/notify":
            [auth] = [w for w in words if w.startswith("Authorization:")]
            assert auth.split("$", 1)[1] in TOKEN_NAMES


def test_the_api_table_lists_exactly_the_routes() -> None:
    listed = set()
    for cell in table_first_cells(section(README, "HTTP API")):
        for method, path in re.findall(r"`([A-Z]+) (/[^`?]*)", cell):
            listed.add((method, path))
            assert route_of(method, path.replace("{out_trade_no}", "A-1").replace("{stream_id}", "s")), path
    written = {(m, p.replace(":path", "")) for m, p in ROUTES}
    assert listed == written


def test_the_api_section_names_the_error_codes() -> None:
    text = section(README, "HTTP API")
    for code in ("unauthorized", "forbidden", "not_found", "method_not_allowed", "not_yet_projected", "min_position"):
        assert f"`{code}" in text or f"?{code}=" in text, code


# -- the configuration table -------------------------------------------------------------------------------

def settings_read() -> set[str]:
    """Every LEDGER_* name the code reads: whole names anywhere in the packages' source, the keys that
    ledger/config.py reads through its `LEDGER_` prefix (`read("LOCK_WAIT_MS", ...)`), and each app's keys
    (`prefix + "APP_ID"` on LEDGER_ALIPAY_)."""
    names: set[str] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            # A name ending in _ is a prefix (LEDGER_ALIPAY_ of each app's keys), not a setting.
            names |= {name for name in SETTING.findall(path.read_text()) if not name.endswith("_")}
    config = (ROOT / "ledger" / "config.py").read_text()
    assert 'env_prefix="LEDGER_"' in config and '"LEDGER_ALIPAY_"' in config
    for node in ast.walk(ast.parse(config)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("read", "config") and node.args:
            key = node.args[0]
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                names.add("LEDGER_" + key.value)
        if (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and isinstance(node.left, ast.Name)
                and isinstance(node.right, ast.Constant) and isinstance(node.right.value, str)
                and re.fullmatch(r"[A-Z][A-Z0-9_]*", node.right.value)):
            names.add("LEDGER_ALIPAY_" + node.right.value)
    return names


def documented(path: Path, title: str) -> list[str]:
    cells = table_first_cells(section(path, title))
    return [name for cell in cells for name in re.findall(r"`(LEDGER_[A-Z0-9_]+)`", cell)]


@pytest.mark.parametrize(("path", "title"), [(README, "Configuration"), (ROOT / "docs" / "operations.md",
                                                                         "Configuration in full")])
def test_the_configuration_table_lists_exactly_the_settings_the_code_reads(path: Path, title: str) -> None:
    names = documented(path, title)
    assert len(names) == len(set(names)), "one line each"
    assert set(names) == settings_read()


def test_the_settings_found_in_the_code_include_those_read_through_the_prefix() -> None:
    found = settings_read()
    assert {"LEDGER_LOCK_WAIT_MS", "LEDGER_SWEEP_SECONDS", "LEDGER_ALIPAY_SELLER_ID"} <= found
    assert not {name for name in found if name.endswith("_")}


# -- links and files ---------------------------------------------------------------------------------------

def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in path.read_text().splitlines() if line.startswith("#")}


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_and_heading(path: Path) -> None:
    text = FENCE.sub("", path.read_text())
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        assert linked.exists(), f"{path.name}: {target}"
        if anchor:
            assert anchor in anchors(linked), f"{path.name}: {target}"


def test_every_bench_and_script_named_by_the_docs_is_in_the_repository() -> None:
    for path in (README, *DOCS):
        for name in re.findall(r"\b((?:bench|scripts)/[\w.-]+\.(?:py|sh))", path.read_text()):
            assert (ROOT / name).exists(), f"{path.name}: {name}"
