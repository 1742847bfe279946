"""``arbiter policies``: the policy reference from the classes, and docs/policies.md kept in step."""

from __future__ import annotations

from arbiter.cli.policies import toml_value
from arbiter.policies import POLICIES
from arbiter.policies.params import describe
from tests.cli.helpers import arbiter
from tests.process import ROOT

DOC = ROOT / "docs" / "policies.md"


def test_policies_prints_every_policy_and_parameter_with_default_range_and_meaning() -> None:
    result = arbiter("policies")

    assert result.returncode == 0, result.stderr
    blocks = {block.split(":", 1)[0]: block for block in result.stdout.strip().split("\n\n")}
    assert list(blocks) == list(POLICIES)
    for name, cls in POLICIES.items():
        for p in describe(cls):
            default = "required" if p.required else toml_value(p.default)
            assert f"  {p.name} ({p.type}) = {default}; allowed: {p.range}\n      {p.help}" in blocks[name]
    assert "  epsilon (float) = 0.01; allowed: [0, 1]" in blocks["linucb"]
    assert "  l2 (float) = 2.0; allowed: > 0" in blocks["lints"]  # LinTS's own default
    assert "  action (str) = required" in blocks["fixed"]


def test_docs_policies_md_is_what_arbiter_policies_markdown_prints() -> None:
    result = arbiter("policies", "--markdown")

    assert result.returncode == 0, result.stderr
    assert DOC.read_text() == result.stdout, (
        "docs/policies.md is out of date with the policy classes: run `make docs` and commit it")


def test_the_readme_links_the_policy_reference() -> None:
    assert "(docs/policies.md)" in (ROOT / "README.md").read_text()
