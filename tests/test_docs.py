"""The docs cannot drift from the code: config keys, refused verl settings, metric names, links, README commands.

No Ray, no model: these tests read the Markdown, the yaml configs and the recipe's source.
"""

from __future__ import annotations

import ast
import re
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
CONFIG_MD = DOCS / "config.md"
METRICS_MD = DOCS / "metrics.md"
SRFT_YAML = REPO / "recipe_srft" / "config" / "srft_trainer.yaml"
CPU_YAML = REPO / "recipe_srft" / "config" / "runtime" / "cpu.yaml"

_ROW_KEY = re.compile(r"^\|\s*`([^`]+)`\s*\|", re.M)
_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)


# ---------------------------------------------------------------- helpers
def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _section(text: str, heading: str) -> str:
    """The text under the level-2 heading `heading` (up to the next level-2 heading)."""
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == heading)
    except StopIteration:
        raise AssertionError(f"heading {heading!r} not found") from None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[start + 1:end])


def _row_keys(text: str) -> set[str]:
    """Keys written as the first cell of a table row: | `key` | ..."""
    return set(_ROW_KEY.findall(text))


def _leaves(mapping: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, value in mapping.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out |= _leaves(value, path + ".")
        else:
            out.add(path)
    return out


def _covered(key: str, rows: set[str]) -> bool:
    """`key` or one of its ancestors (a.b for a.b.c) has a row."""
    parts = key.split(".")
    return any(".".join(parts[:i]) in rows for i in range(len(parts), 0, -1))


# ---------------------------------------------------------------- docs/config.md
SRFT_SECTION = "## The `srft:` section"


def _srft_rows() -> set[str]:
    return _row_keys(_section(_read(CONFIG_MD), SRFT_SECTION))


def _yaml_srft_keys() -> set[str]:
    return _leaves(yaml.safe_load(_read(SRFT_YAML))["srft"])


def _code_srft_keys() -> set[str]:
    from recipe_srft.losses import SRFTLossConfig
    from recipe_srft.srft_config import _FROM_ACTOR, _LOSS_FIELDS, _TOP_FIELDS, SRFTConfig

    assert _LOSS_FIELDS == {f.name for f in fields(SRFTLossConfig)}
    # SRFTConfig fields that are not user keys of srft: themselves, and the ones that are spelled differently
    spelled = {"data_sources": "data.sources", "data_seed": "data.seed"}
    internal = {"loss"}  # the resolved SRFTLossConfig; its user keys are _LOSS_FIELDS - _FROM_ACTOR
    keys = {"preset"} | set(_TOP_FIELDS) | (set(_LOSS_FIELDS) - set(_FROM_ACTOR))
    for f in fields(SRFTConfig):
        if f.name in internal:
            continue
        assert f.name in keys or f.name in spelled, (
            f"SRFTConfig.{f.name} is neither a top-level srft key (_TOP_FIELDS) nor known to this test; "
            "add it to srft_trainer.yaml and docs/config.md (and here if it is spelled differently)")
        keys.add(spelled.get(f.name, f.name))
    return keys


def test_every_srft_key_of_the_code_has_a_row_in_config_md():
    missing = sorted(_code_srft_keys() - _srft_rows())
    assert not missing, f"docs/config.md ({SRFT_SECTION}) lacks rows for {missing}"


def test_every_srft_key_of_the_yaml_has_a_row_in_config_md():
    missing = sorted(_yaml_srft_keys() - _srft_rows())
    assert not missing, f"docs/config.md ({SRFT_SECTION}) lacks rows for {missing}"


def test_no_stale_srft_rows_in_config_md():
    stale = sorted(_srft_rows() - _yaml_srft_keys())
    assert not stale, f"docs/config.md ({SRFT_SECTION}) documents keys that srft_trainer.yaml does not have: {stale}"


def test_the_yaml_lists_every_srft_key_of_the_code():
    missing = sorted(_code_srft_keys() - _yaml_srft_keys())
    assert not missing, f"recipe_srft/config/srft_trainer.yaml's srft: section lacks {missing}"


def test_loss_fields_taken_from_the_actor_are_documented_as_verl_keys():
    from recipe_srft.srft_config import _FROM_ACTOR

    rows = _row_keys(_read(CONFIG_MD))
    missing = sorted(f"actor_rollout_ref.actor.{k}" for k in _FROM_ACTOR
                     if f"actor_rollout_ref.actor.{k}" not in rows)
    assert not missing, f"docs/config.md lacks rows for {missing}"
    assert not set(_FROM_ACTOR) & _srft_rows(), "verl actor keys must not be documented as srft: keys"


def test_every_refused_verl_setting_has_a_row_with_its_honoured_values():
    from recipe_srft.integration.verl_checks import REFUSED, _show

    text = _section(_read(CONFIG_MD), "## Refused verl settings")
    for refusal in REFUSED:
        row = re.search(rf"^\|\s*`{re.escape(refusal.key)}`\s*\|([^|]*)\|", text, re.M)
        assert row, f"docs/config.md lacks a row for the refused setting {refusal.key}"
        for value in refusal.honoured:
            assert f"`{_show(value)}`" in row.group(1), (
                f"docs/config.md: the row of {refusal.key} does not list the honoured value {_show(value)}")


def test_every_verl_key_the_recipe_configs_set_is_documented():
    rows = _row_keys(_read(CONFIG_MD))
    trainer = yaml.safe_load(_read(SRFT_YAML))
    keys = _leaves({k: v for k, v in trainer.items() if k not in ("hydra", "defaults", "srft")})
    keys |= _leaves(yaml.safe_load(_read(CPU_YAML)))
    missing = sorted(k for k in keys if not _covered(k, rows))
    assert not missing, f"docs/config.md lacks rows for {missing}"


# ---------------------------------------------------------------- docs/metrics.md
_METRIC = re.compile(r"^(?:actor/)?srft/[A-Za-z0-9_/]+$")
_TEMPLATE = re.compile(r"^(?:actor/)?srft/[A-Za-z0-9_/{}]+$")


def _call_name(node: ast.Call) -> str | None:
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def _code_metrics() -> tuple[set[str], set[str]]:
    """(names, templates) the recipe's source writes or reads, in the form they have in verl's tracker.

    Names logged by the loss get verl's ``actor/`` prefix. Templates are f-strings with ``{}`` for each field.
    ``_stats(prefix, ...)`` writes ``prefix_{mean,min,max}``; ``split_metrics(name, ...)`` writes
    ``srft/{onpolicy,demo}/name``.
    """
    names, templates = set(), set()
    for path in sorted((REPO / "recipe_srft").rglob("*.py")):
        tree = ast.parse(_read(path), filename=str(path))
        prefix = "actor/" if path.name == "losses.py" else ""
        stats_prefixes = set()
        # the literal pieces of an f-string are Constants too: only the whole f-string counts
        pieces = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                arg = node.args[0].value
                if _call_name(node) == "_stats" and isinstance(arg, str):
                    stats_prefixes.add(arg)
                    names |= {f"{prefix}{arg}_{s}" for s in ("mean", "min", "max")}
                elif _call_name(node) == "split_metrics" and isinstance(arg, str):
                    names |= {f"srft/onpolicy/{arg}", f"srft/demo/{arg}"}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in pieces:
                value = node.value
                if _METRIC.match(value) and value not in stats_prefixes:
                    names.add(value if value.startswith("actor/") else prefix + value)
                elif path.name == "losses.py" and re.fullmatch(r"actor/[a-z_]+", value):
                    names.add(value)  # verl's own names that the SRFT loss fills in
            elif isinstance(node, ast.JoinedStr):
                template = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
                if "{}" in template and _TEMPLATE.match(template):
                    templates.add(template if template.startswith("actor/") else prefix + template)
    return names, templates


def _doc_metrics() -> set[str]:
    text = _read(METRICS_MD)
    out = set()
    for line in text.splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            out |= set(re.findall(r"`([^`]+)`", first_cell))
    return out


def _as_template(name: str) -> str:
    return re.sub(r"<[^>]+>", "{}", name)


def test_every_metric_of_the_code_is_defined_in_metrics_md():
    names, templates = _code_metrics()
    documented = _doc_metrics()
    assert names, "no srft/ metric found in recipe_srft/ (did the scan break?)"
    missing = sorted(names - documented)
    assert not missing, f"docs/metrics.md lacks rows for {missing}"
    doc_templates = {_as_template(d) for d in documented}
    for template in templates:
        pattern = re.compile("^" + re.escape(template).replace(r"\{\}", "[^/]+") + "$")
        assert template in doc_templates or any(pattern.match(d) for d in documented), (
            f"docs/metrics.md defines no metric of the family {template!r} (write it as e.g. srft/name/<j>)")


def test_no_stale_metric_rows():
    names, templates = _code_metrics()
    stale = sorted(d for d in _doc_metrics() if "srft/" in d or d.startswith("actor/")
                   if d not in names and _as_template(d) not in templates)
    assert not stale, f"docs/metrics.md defines metrics that recipe_srft/ never writes: {stale}"


# ---------------------------------------------------------------- links
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _strip_code(text: str) -> str:
    text = _FENCE.sub("", text)
    return re.sub(r"`[^`\n]*`", "", text)


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown file."""
    seen: dict[str, int] = {}
    out = set()
    for line in _FENCE.sub("", _read(path)).splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", match.group(1)).replace("`", "")
        slug = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        out.add(slug if count == 0 else f"{slug}-{count}")
    return out


MARKDOWN_FILES = [README, *sorted(DOCS.glob("*.md"))]


@pytest.mark.parametrize("doc", MARKDOWN_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_point_to_existing_files(doc):
    broken = []
    for target in _LINK.findall(_strip_code(_read(doc))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:, ...
            continue
        file_part, _, anchor = target.partition("#")
        dest = (doc.parent / file_part).resolve() if file_part else doc
        if not dest.exists():
            broken.append(f"{target} (no file {dest})")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {dest.name})")
    assert not broken, f"{doc.relative_to(REPO)}: broken links: {broken}"


# ---------------------------------------------------------------- README
def _ci_test_command() -> str:
    lines = _read(REPO / ".ci" / "run").splitlines()
    i = next(i for i, line in enumerate(lines) if "README's test command" in line and "verbatim" in line)
    return lines[i + 1].strip()


def test_readme_first_screen_holds_the_ci_test_command_verbatim():
    command = _ci_test_command()
    first_block = _FENCE.search(_read(README))
    assert first_block, "README.md has no code block"
    assert first_block.start() < len("\n".join(_read(README).splitlines()[:25])), "the first code block moved down"
    lines = [line.split("  #")[0].rstrip() for line in first_block.group(0).splitlines()]
    assert command in lines, f"README's first code block must hold .ci/run's test command {command!r} verbatim"


def test_readme_stays_short():
    n = len(_read(README).splitlines())
    assert n <= 150, f"README.md has {n} lines; move details into docs/ (see its Documentation section)"


def test_preset_column_names_exactly_the_keys_a_preset_locks():
    """The visible rule of docs/config.md: "yes" in the preset column = the key is set by every preset
    (srft_config.PRESET_KEYS: an explicit contradicting value fails); a blank = free under every preset."""
    from recipe_srft.srft_config import PRESET_KEYS

    section = _section(_read(CONFIG_MD), SRFT_SECTION)
    locked = set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`") and cells[2] == "yes":
            locked.add(cells[0].strip("`"))
    assert locked == set(PRESET_KEYS), (sorted(locked - set(PRESET_KEYS)), sorted(set(PRESET_KEYS) - locked))
