"""Fuzzing (hypothesis) of the parsers that read user input: arch strings, training configs, NNI data.

Each parser either accepts its input -- and then the result is consistent (an arch string
round-trips, a config re-loads to itself) -- or raises ``ValueError`` (``ConfigError`` for
configs) with a message; never another exception type, never a hang (hypothesis' ``deadline``
fails an example that takes longer than a few seconds).

Strategies: arbitrary text, text over the grammar's own alphabet, grammar-built strings with
random numbers, and valid inputs with one mutation (a character inserted, deleted or replaced; a
token duplicated or dropped; a config value replaced by any YAML value, a key renamed or added or
removed). ``OFA_NNI_FUZZ_EXAMPLES`` sets the examples per test (default 200, the fast default run);
``benchmarks/results/fuzzing.md`` reports a long run (``OFA_NNI_FUZZ_EXAMPLES=20000``).
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from ofa_nni.arch import ArchSpace
from ofa_nni.nni_search_space import arch_space_from_spec, check_nni_search_space, nni_search_space
from ofa_nni.training import ConfigError, TrainConfig, load_config
from strategies.nni_tuner import OFAEvolutionTuner, metric_score

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = int(os.environ.get("OFA_NNI_FUZZ_EXAMPLES", "200"))

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=5),  # "never hangs": one parse taking seconds fails the example
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)

SPACES = {
    "default": ArchSpace(),  # the paper's space: 5 stages x 4 blocks, 25 resolutions
    # Fractional expand ratios exercise the 'e2.5' spelling.
    "fractional": ArchSpace(kernel_sizes=(3, 5), expand_ratios=(2, 2.5, 4), depths=(1, 2), resolutions=(32, 40),
                            base_widths=(8, 8, 16, 24, 32, 48, 64), stage_strides=(2, 2, 2),
                            stage_activations=("relu", "hswish", "hswish"), stage_se=(False, True, True),
                            num_classes=4),
}

ARCH_ALPHABET = "rke0123456789._-| \t\n"

# JSON/YAML-like values, including the ones parsers tend to trip on (NaN, infinities, huge ints,
# empty containers, non-string keys).
SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(-3, 300) | st.floats(allow_nan=True)
           | st.text(max_size=12) | st.sampled_from(["", "nan", "1e6", "cpu", "digits", "sandwich", "kernel"]))
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8) | st.integers(-2, 2), children, max_size=4),
    max_leaves=12,
)


# ------------------------------------------------------------------------- arch strings
def _check_arch_parse(space: ArchSpace, text: str) -> None:
    """The property: a sample that round-trips, or a ValueError with a message."""
    try:
        sample = space.parse(text)
    except ValueError as error:
        assert str(error), "ValueError without a message"
        event("rejected (ValueError)")
        return
    event("accepted")
    assert space.validate(sample) == sample
    canonical = space.format(sample)
    assert space.parse(canonical) == sample
    assert space.format(space.parse(canonical)) == canonical


@st.composite
def grammar_arch_strings(draw: st.DrawFn, space: ArchSpace) -> str:
    """Strings in the arch grammar: the space's layout and choices, or any counts and numbers (each
    independently), in canonical or other spellings ('k05', 'e3.0'), '|' anywhere or nowhere."""
    exact_layout, choice_values = draw(st.booleans()), draw(st.booleans())
    if choice_values:
        number = st.sampled_from(space.kernel_sizes).map(str) | st.sampled_from(space.kernel_sizes).map(
            lambda k: f"0{k}")
        expand = st.sampled_from([f"{e:g}" for e in space.expand_ratios]) | st.sampled_from(
            [f"{float(e)}" for e in space.expand_ratios])
        resolution = st.sampled_from(space.resolutions).map(str)
    else:
        number = (st.integers(0, 10) | st.integers(0, 10**6)).map(str)
        expand = number | st.floats(0, 10, allow_nan=False).map(lambda v: f"{v:g}")
        resolution = number
    n_groups = space.num_stages if exact_layout else draw(st.integers(0, space.num_stages + 1))
    groups = [f"r{draw(resolution)}"]
    for _ in range(n_groups):
        n_tokens = space.max_depth if exact_layout else draw(st.integers(0, space.max_depth + 1))
        tokens = [f"k{draw(number)}e{draw(expand)}" for _ in range(n_tokens)]
        bar = draw(st.sampled_from([-1, *space.depths]) if exact_layout else st.integers(-1, n_tokens))
        if bar < 0 or (exact_layout and bar == n_tokens):  # full depth: no '|'
            text = "-".join(tokens)
        else:  # (bar == n_tokens in a free layout: a '|' with nothing after it)
            text = "-".join(tokens[:bar]) + "|" + "-".join(tokens[bar:])
        groups.append(text)
    return "_".join(groups)


@st.composite
def mutated_arch_strings(draw: st.DrawFn, space: ArchSpace) -> str:
    """A valid arch string with one to three edits."""
    text = space.format(space.random_sample(draw(st.integers(0, 2**32 - 1))))
    for _ in range(draw(st.integers(1, 3))):
        position = draw(st.integers(0, len(text)))
        edit = draw(st.sampled_from(["insert", "delete", "replace", "duplicate", "drop_token", "swap"]))
        char = draw(st.sampled_from(ARCH_ALPHABET) | st.characters())
        if edit == "insert":
            text = text[:position] + char + text[position:]
        elif edit == "delete":
            text = text[:position] + text[position + 1:]
        elif edit == "replace":
            text = text[:position] + char + text[position + 1:]
        elif edit == "duplicate":
            end = draw(st.integers(position, len(text)))
            text = text[:end] + text[position:end] + text[end:]
        elif edit == "drop_token":
            tokens = text.split("-")
            tokens.pop(draw(st.integers(0, len(tokens) - 1)))
            text = "-".join(tokens)
        else:
            groups = text.split("_")
            i, j = draw(st.integers(0, len(groups) - 1)), draw(st.integers(0, len(groups) - 1))
            groups[i], groups[j] = groups[j], groups[i]
            text = "_".join(groups)
    return text


@pytest.mark.parametrize("name", list(SPACES))
@FUZZ
@given(data=st.data())
def test_fuzz_arch_parse_arbitrary_text(name: str, data: st.DataObject) -> None:
    text = data.draw(st.text() | st.text(alphabet=ARCH_ALPHABET, max_size=200), label="text")
    _check_arch_parse(SPACES[name], text)


@pytest.mark.parametrize("name", list(SPACES))
@FUZZ
@given(data=st.data())
def test_fuzz_arch_parse_grammar_strings(name: str, data: st.DataObject) -> None:
    _check_arch_parse(SPACES[name], data.draw(grammar_arch_strings(SPACES[name]), label="arch"))


@pytest.mark.parametrize("name", list(SPACES))
@FUZZ
@given(data=st.data())
def test_fuzz_arch_parse_mutated_valid_strings(name: str, data: st.DataObject) -> None:
    _check_arch_parse(SPACES[name], data.draw(mutated_arch_strings(SPACES[name]), label="arch"))


@st.composite
def mutated_samples(draw: st.DrawFn, space: ArchSpace) -> Any:
    """A valid sample dict with labels dropped, added or given any value (what NNI could hand a trial)."""
    sample: dict[Any, Any] = dict(space.random_sample(draw(st.integers(0, 2**32 - 1))))
    for _ in range(draw(st.integers(1, 3))):
        edit = draw(st.sampled_from(["value", "drop", "add"]))
        label = draw(st.sampled_from(space.labels))
        if edit == "value":
            sample[label] = draw(VALUES | st.sampled_from([c for label in space.labels for c in space.choices(label)]))
        elif edit == "drop":
            sample.pop(label, None)
        else:
            sample[draw(st.text(max_size=20) | st.sampled_from(["stage9.block1.kernel", "stage1.block9.expand"]))] = 3
    return sample


@FUZZ
@given(data=st.data())
def test_fuzz_sample_validation(data: st.DataObject) -> None:
    """``ArchSpace.validate`` on NNI-style parameter dicts (and any other value)."""
    space = SPACES["default"]
    sample = data.draw(mutated_samples(space) | VALUES, label="sample")
    try:
        normalized = space.validate(sample)
    except ValueError as error:
        assert str(error)
        event("rejected (ValueError)")
        return
    event("accepted")
    assert space.parse(space.format(normalized)) == normalized


# ---------------------------------------------------------------------- config loader
def _write(directory: str, text: str) -> Path:
    path = Path(directory) / "train.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return path


def _check_config(path: Path, mutated_section: str | None = None) -> None:
    """The property: a TrainConfig that re-loads to itself, or a ConfigError naming the file (and,
    for a mutation of one section, that section)."""
    try:
        config = load_config(path)
    except ConfigError as error:
        message = str(error)
        assert message.startswith(str(path)), message
        if mutated_section is not None:
            assert mutated_section in message, message
        event("rejected (ConfigError)")
        return
    event("accepted")
    assert isinstance(config, TrainConfig)
    assert load_config(config.to_dict()) == config


@FUZZ
@given(text=st.text() | st.text(alphabet="abcdefgst:{}[]-,'\"!&*#|>?%@ \n\t.0123456789", max_size=300))
def test_fuzz_config_arbitrary_text(text: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        _check_config(_write(directory, text))


@FUZZ
@given(data=VALUES)
def test_fuzz_config_arbitrary_yaml_values(data: Any) -> None:
    with tempfile.TemporaryDirectory() as directory:
        _check_config(_write(directory, yaml.safe_dump(data)))


def _example_configs() -> list[dict[str, Any]]:
    return [yaml.safe_load(path.read_text()) for path in sorted((REPO / "examples").glob("*.yaml"))]


def _leaf_paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(data, dict):
        paths = [prefix] if prefix else []
        return paths + [p for key, value in data.items() for p in _leaf_paths(value, (*prefix, key))]
    return [prefix]


@st.composite
def mutated_configs(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """An example configuration with one edit; returns it and the top-level section edited."""
    config = copy.deepcopy(draw(st.sampled_from(_example_configs())))
    config.setdefault("strategy", {}).setdefault("phases", {"kernel": {"epochs": 2, "lr": 0.05}})
    path = draw(st.sampled_from(_leaf_paths(config)))
    parent = config
    for key in path[:-1]:
        parent = parent[key]
    edit = draw(st.sampled_from(["value", "value", "rename", "delete", "add"]))
    if edit == "value":
        parent[path[-1]] = draw(VALUES)
    elif edit == "rename":
        parent[draw(st.text(min_size=1, max_size=10))] = parent.pop(path[-1])
    elif edit == "delete":
        del parent[path[-1]]
    else:
        target = parent[path[-1]] if isinstance(parent[path[-1]], dict) else parent
        target[draw(st.text(min_size=1, max_size=10))] = draw(VALUES)
    return config, str(path[0])


@FUZZ
@given(case=mutated_configs())
def test_fuzz_config_mutated_examples(case: tuple[dict[str, Any], str]) -> None:
    config, section = case
    with tempfile.TemporaryDirectory() as directory:
        _check_config(_write(directory, yaml.safe_dump(config, sort_keys=False)), section)


# ----------------------------------------------------------------------- NNI decoding
@FUZZ
@given(spec=st.dictionaries(st.sampled_from(["preset", "kernel_sizes", "expand_ratios", "depths", "resolutions",
                                              "base_widths", "stage_strides", "stage_activations", "stage_se",
                                              "width_mult", "num_classes", "dropout", "junk"]), VALUES, max_size=4)
       | VALUES)
@example(spec={"kernel_sizes": [-(2**63) - 1]})  # found by this test: np.isfinite raised TypeError on it
def test_fuzz_space_spec(spec: Any) -> None:
    """``arch_space_from_spec``: the tuner's ``classArgs.space`` and ``ofa-nni nni search-space``."""
    try:
        space = arch_space_from_spec(spec)
    except ValueError as error:
        assert str(error)
        event("rejected (ValueError)")
        return
    event("accepted")
    assert ArchSpace.from_signature(space.signature()) == space
    assert space.labels and space.feature_dim > 0


@st.composite
def mutated_search_spaces(draw: st.DrawFn) -> Any:
    search_space: dict[Any, Any] = nni_search_space(SPACES["fractional"])
    label = draw(st.sampled_from(list(search_space)))
    edit = draw(st.sampled_from(["entry", "type", "values", "drop", "add"]))
    if edit == "entry":
        search_space[label] = draw(VALUES)
    elif edit == "type":
        search_space[label] = {**search_space[label], "_type": draw(VALUES)}
    elif edit == "values":
        search_space[label] = {**search_space[label], "_value": draw(VALUES)}
    elif edit == "drop":
        del search_space[label]
    else:
        search_space[draw(st.text(max_size=20))] = draw(VALUES)
    return search_space


@FUZZ
@given(search_space=mutated_search_spaces() | VALUES)
def test_fuzz_nni_search_space_check(search_space: Any) -> None:
    """``check_nni_search_space``: what the tuner runs on the JSON NNI hands it."""
    try:
        check_nni_search_space(SPACES["fractional"], search_space)
    except ValueError as error:
        assert str(error)
        event("rejected (ValueError)")
        return
    event("accepted")


TUNER_SPACE = {"preset": "cpu", "kernel_sizes": [3, 5], "expand_ratios": [2, 3], "depths": [1, 2],
               "resolutions": [24, 32], "num_classes": 10}
TUNER_ARCH = arch_space_from_spec(TUNER_SPACE)
VALID_ARCHS = [TUNER_ARCH.format(TUNER_ARCH.random_sample(seed)) for seed in range(32)]
METRICS = (VALUES | st.fixed_dictionaries({"default": VALUES, "arch": VALUES | st.text()})
           # well-formed metrics (a score, a subnet of the space), so results are also scored
           | st.fixed_dictionaries({"default": st.floats(allow_nan=True) | st.integers(0, 1),
                                    "arch": st.sampled_from(VALID_ARCHS)}))


@FUZZ
@given(reports=st.lists(st.tuples(st.integers(-2, 12), mutated_samples(TUNER_ARCH) | VALUES, METRICS),
                        min_size=1, max_size=6))
def test_fuzz_tuner_results(reports: list[tuple[int, Any, Any]]) -> None:
    """Whatever parameters and metrics NNI delivers, the tuner never raises and records only NaN
    (failed) or finite scores, and keeps proposing subnets of its space."""
    tuner = OFAEvolutionTuner(space=TUNER_SPACE, population_size=4, seed=0)
    tuner.update_search_space(nni_search_space(tuner.arch_space))
    handed = tuner.generate_multiple_parameters([0, 1])
    for parameter_id, parameters, value in reports:
        score = metric_score(value)
        assert math.isnan(score) or math.isfinite(score)
        tuner.receive_trial_result(parameter_id, parameters, value)
        tuner.trial_end(parameter_id, bool(parameter_id % 2))
    assert all(math.isnan(s) or math.isfinite(s) for s in tuner.scores.values())
    event(f"{sum(not math.isnan(s) for s in tuner.scores.values())} scored subnets")
    for sample in handed + tuner.generate_multiple_parameters([100]):
        assert tuner.arch_space.validate(sample) == sample
