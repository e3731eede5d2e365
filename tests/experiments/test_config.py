"""Experiment configs: validation errors name the key and the allowed values; paths and env."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ehrbackdoor.experiments.config import ConfigError, config_from_dict, load_config
from ehrbackdoor.experiments.plan import expand

BASE = {
    "data": {"path": "data"},
    "victims": ["lr"],
    "attacks": [{"trigger": "temporal", "strength": [1, 2]}],
}


def _check(change: dict) -> str:
    with pytest.raises(ConfigError) as e:
        config_from_dict({**BASE, **change}, "/tmp", source="x.yaml")
    return str(e.value)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"attacks": [{"trigger": "temporall"}]},
            ["attacks[0].trigger", "temporal", "white-noise"],
        ),
        (
            {"attacks": [{"trigger": "temporal", "apply": ["observed", "obs"]}]},
            ["attacks[0].apply", "'obs'", "observed", "all"],
        ),
        (
            {"attacks": [{"trigger": "temporal", "strenght": 2}]},
            ["attacks[0].strenght", "allowed: strength"],
        ),
        (
            {"attacks": [{"trigger": "temporal", "strength": -1}]},
            ["attacks[0].strength", "positive"],
        ),
        (
            {"attacks": [{"trigger": "temporal", "rate": [0.01, 1.5]}]},
            ["attacks[0].rate", "0 < rate < 1"],
        ),
        (
            {"attacks": [{"trigger": "temporal", "target": 2}]},
            ["attacks[0].target", "allowed: 0", "1"],
        ),
        (
            {"attacks": [{"trigger": "temporal", "selection": "all"}]},
            ["attacks[0].selection", "non-target", "any"],
        ),
        ({"victims": ["lr", "xgboost"]}, ["victims[1].name", "xgboost", "allowed:", "gru"]),
        (
            {"victims": {"lr": {"no_such_param": 1}}},
            ["victims[0].params.no_such_param", "allowed:"],
        ),
        ({"victims": ["lr", "lr"]}, ["victims", "more than once"]),
        ({"victims": []}, ["victims", "at least one"]),
        ({"seeds": 0}, ["seeds", ">= 1"]),
        ({"seedz": 3}, ["seedz: unknown key", "allowed:", "seeds"]),
        (
            {"data": {"path": "d", "split": {"fractions": [0.5, 0.5, 0.5]}}},
            ["data[0].split.fractions"],
        ),
        ({"data": {"path": "d", "synthetic": {"stays": 100}}}, ["data[0]", "exactly one of"]),
        ({"data": {"path": "d", "splitt": {}}}, ["data[0].splitt: unknown key", "split"]),
        ({"evaluation": {"bootstrap": 0}}, ["evaluation.bootstrap"]),
        ({"defences": [{"name": "spectral"}]}, ["defences"]),
    ],
)
def test_errors_name_the_key_and_allowed_values(change, expected):
    msg = _check(change)
    assert msg.startswith("invalid experiment config x.yaml:")
    for part in expected:
        assert part in msg, (part, msg)


def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(bad)


def test_relative_paths_env_override_and_data_option(tmp_path, monkeypatch):
    folder = tmp_path / "configs"
    folder.mkdir()
    path = folder / "c.yaml"
    doc = {**BASE, "data": {"path": "${EHRB_TEST_DATA:-../data/here}", "split": {"file": "s.json"}}}
    path.write_text(yaml.safe_dump(doc))

    monkeypatch.delenv("EHRB_TEST_DATA", raising=False)
    cfg = load_config(path)
    assert cfg.data[0].path == str((tmp_path / "data" / "here").resolve())
    assert cfg.data[0].split.file == str((folder / "s.json").resolve())

    monkeypatch.setenv("EHRB_TEST_DATA", "/elsewhere/physionet")
    assert load_config(path).data[0].path == "/elsewhere/physionet"

    cfg = load_config(path, data=str(tmp_path / "override"))
    assert cfg.data[0].path == str((tmp_path / "override").resolve())

    doc["data"] = {"path": "${EHRB_UNSET_VAR}"}
    monkeypatch.delenv("EHRB_UNSET_VAR", raising=False)
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match="EHRB_UNSET_VAR is not set"):
        load_config(path)


def test_data_override_with_several_sources(tmp_path):
    doc = {**BASE, "data": [{"name": "a", "path": "x"}, {"name": "b", "synthetic": {"stays": 100}}]}
    with pytest.raises(ConfigError, match="NAME=PATH"):
        config_from_dict(doc, tmp_path, data="/some/where")
    with pytest.raises(ConfigError, match="no data source named 'c'"):
        config_from_dict(doc, tmp_path, data="c=/some/where")
    cfg = config_from_dict(doc, tmp_path, data="b=/some/where")
    assert cfg.data[1].path == "/some/where" and cfg.data[1].synthetic is None
    assert cfg.data[0].path == str(tmp_path / "x")


def test_expansion_counts_and_stable_keys():
    doc = {
        **BASE,
        "victims": {"lr": {}, "gbdt": {}},
        "attacks": [
            {
                "name": "value",
                "trigger": ["temporal", "white-noise"],
                "target": [0, 1],
                "rate": [0.01, 0.05],
                "strength": [0.5, 2],
                "apply": ["observed", "all"],
            },
            {"name": "fixed", "trigger": "fixed", "rate": 0.05, "value": 200.0},
        ],
        "seeds": 3,
    }
    cfg = config_from_dict(doc, "/tmp")
    plan = expand(cfg)
    settings = 2 * 2 * 2 * 2 * 2 + 1
    assert len(plan.cells) == settings * 2 * 3
    assert len(plan.poison) == settings * 3  # shared by both victims
    assert len(plan.baselines) == 2 * 3  # shared by every attack setting
    assert len(plan.data) == 1
    assert len(set(plan.keys)) == len(plan.cells)
    # the same config gives the same keys; a changed victim parameter changes only its cells
    assert expand(config_from_dict(doc, "/tmp")).keys == plan.keys
    doc2 = {**doc, "victims": {"lr": {}, "gbdt": {"max_iter": 7}}}
    plan2 = expand(config_from_dict(doc2, "/tmp"))
    same = {c.key for c in plan.cells} & {c.key for c in plan2.cells}
    assert len(same) == len(plan.cells) // 2
    assert cfg.seeds == [0, 1, 2]
    assert {c.setting["attack"] for c in plan.cells} == {"value", "fixed"}


def test_presets_are_valid(monkeypatch):
    repo = Path(__file__).resolve().parents[2]
    monkeypatch.setenv("EHRBACKDOOR_DATA", "/data/somewhere")
    for name in ("paper1", "paper2", "quickstart"):
        cfg = load_config(repo / "configs" / f"{name}.yaml")
        assert expand(cfg).cells
    p1 = expand(load_config(repo / "configs" / "paper1.yaml"))
    assert {c.victim for c in p1.cells} >= {"lr", "mlp", "lstm", "gru"}
    assert {c.seed for c in p1.cells} == set(range(5))
    assert {c.setting["target"] for c in p1.cells} == {0, 1}
    assert {c.setting["apply"] for c in p1.cells} == {"observed", "all"}
    p1_default = load_config(repo / "configs" / "paper1.yaml")
    assert p1_default.data[0].path == "/data/somewhere"


def test_quickstart_preset_matches_configs_file(tmp_path):
    from ehrbackdoor.experiments.config import is_missing_trigger
    from ehrbackdoor.experiments.presets import QUICKSTART_YAML, quickstart

    repo = Path(__file__).resolve().parents[2]
    assert (repo / "configs" / "quickstart.yaml").read_text() == QUICKSTART_YAML
    cfg, text = quickstart(tmp_path)
    assert text == QUICKSTART_YAML and cfg.data[0].synthetic is not None
    plan = expand(cfg)
    assert {c.victim for c in plan.cells} == {"lr", "mlp", "gru", "gbdt"}
    triggers = {c.setting["trigger"] for c in plan.cells}
    assert any(is_missing_trigger(t) for t in triggers)  # both attack families
    assert any(not is_missing_trigger(t) for t in triggers)
    assert cfg.seeds == [0]


# ------------------------------------------------------------------ hostile or careless input
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"seeds": [-1]}, ["seeds", ">= 0", "-1"]),
        ({"seeds": [0, True]}, ["seeds[1]", "integer"]),
        (
            {"attacks": [{"trigger": "temporal", "target": True}]},
            ["attacks[0].target: True", "allowed: 0"],
        ),
        ({"name": "../../x"}, ["name", "'../../x'", "path"]),
        ({"name": "a/b"}, ["name", "'a/b'"]),
        ({"name": ".."}, ["name"]),
        ({"data": {"synthetic": {"stays": 100, "seed": -3}}}, ["data[0].synthetic.seed"]),
    ],
)
def test_unsafe_values_are_refused_naming_the_key(change, expected):
    msg = _check(change)
    for part in expected:
        assert part in msg, (part, msg)
    assert "np.float64" not in msg


def test_a_grid_over_the_cell_limit_is_refused_with_its_count():
    big = {
        "attacks": [{"trigger": "temporal", "rate": [0.01, 0.02], "strength": list(range(1, 11))}]
    }
    doc = {**BASE, **big, "seeds": 6000}
    with pytest.raises(ConfigError, match="120,000 cells"):
        config_from_dict(doc, "/tmp", source="x.yaml")
    cfg = config_from_dict(doc, "/tmp", source="x.yaml", max_cells=None)
    assert cfg.n_cells() == 120_000


def test_one_attack_grid_over_the_limit_is_refused_before_building_triggers():
    axis = [0.5 + i / 1000 for i in range(400)]
    doc = {**BASE, "attacks": [{"trigger": "temporal", "strength": axis, "rate": axis[:300]}]}
    with pytest.raises(ConfigError, match="120,000 points"):
        config_from_dict(doc, "/tmp", source="x.yaml", max_cells=1000)


def test_yaml_alias_bomb_is_refused_quickly(tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i, (prev, cur) in enumerate(zip("abcdefgh", "bcdefghi", strict=True)):
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
        assert i < 9
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size < 400
    with pytest.raises(ConfigError, match="aliases"):
        load_config(path)


def test_recursive_yaml_alias_is_a_clear_error(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("name: loop\ndata: &d {path: data, x: *d}\nvictims: [lr]\n")
    with pytest.raises(ConfigError, match="alias"):
        load_config(path)


def test_few_aliases_are_still_fine(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(
        "data: {path: data}\nvictims: [lr]\n"
        "attacks:\n  - {trigger: temporal, rate: &r [0.01, 0.02]}\n  - {trigger: fixed, rate: *r}\n"
    )
    cfg = load_config(path)
    assert [a.rate for a in cfg.attacks] == [[0.01, 0.02], [0.01, 0.02]]
