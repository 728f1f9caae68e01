"""Every name-valued option of `archlab` rejects an unknown name up front: exit code 2, the option named,
the valid names listed, nothing started or written (services/cli/choices.py)."""
import pytest
import typer
from typer.testing import CliRunner

from lab.tools.validity import NOISE_POOLS
from lab.training.profiles import PROFILES
from lab.zoo import zoo_names
from services.archive.policies import POLICIES
from services.cli.choices import each_one_of, one_of
from services.cli.main import app
from services.researcher.genome import ZOO_DESIGNS

runner = CliRunner()


# ---------------------------------------------------------------- the helper

def test_one_of_returns_a_valid_value():
    assert one_of("uct", POLICIES, "--policy") == "uct"


def test_one_of_rejects_with_the_option_and_the_valid_names():
    with pytest.raises(typer.BadParameter) as e:
        one_of("typo", ["a", "b", "c"], "--policy", "parent policy")
    assert e.value.param_hint == "--policy"
    assert e.value.message == "unknown parent policy 'typo'; valid: a, b, c"
    with pytest.raises(typer.BadParameter, match="unknown format 'xml'"):
        one_of("xml", ("jsonl", "csv"), "--format")  # the noun defaults to the option's name


def test_each_one_of_splits_strips_and_names_every_unknown():
    assert each_one_of(" deltanet, gla,,", ["deltanet", "gla"], "--members") == ["deltanet", "gla"]
    assert each_one_of("", ["a"], "--members") == [] and each_one_of(None, ["a"], "--members") == []
    with pytest.raises(typer.BadParameter) as e:
        each_one_of("a,x,b,y", ["a", "b"], "--members", "zoo member")
    assert e.value.param_hint == "--members"
    assert e.value.message == "unknown zoo member 'x', 'y'; valid: a, b"


# ---------------------------------------------------------------- the commands

@pytest.fixture(scope="module")
def layer(tmp_path_factory):
    f = tmp_path_factory.mktemp("layer") / "layer.py"
    f.write_text("# never read: the options are checked first\n")
    return f


ZOO, PROFILE_NAMES = zoo_names(), list(PROFILES)
DD = ("--data-dir", "{d}")
CASES = {
    "run --profile": (["run", "--profile", "bogus", *DD], "--profile", PROFILE_NAMES),
    "run --from": (["run", "--from", "deltanet,bogus", *DD], "--from", ZOO),
    "run --policy": (["run", "--policy", "bogus", *DD], "--policy", list(POLICIES)),
    "run --verify-profile": (["run", "--verify-profile", "bogus", *DD], "--verify-profile", PROFILE_NAMES),
    "export --format": (["export", "--format", "bogus", "--out", "{d}/x", *DD], "--format", ["jsonl", "csv"]),
    "replay --policy": (["replay", "--policy", "bogus", *DD], "--policy", list(POLICIES)),
    "replay --rescore": (["replay", "--rescore", "bogus=1", *DD], "--rescore", ["loss", "benchmark", "qualitative"]),
    "propose --parent": (["propose", "--parent", "bogus"], "--parent", list(ZOO_DESIGNS)),
    "propose --profile": (["propose", "--profile", "bogus"], "--profile", PROFILE_NAMES),
    "check --profile": (["check", "{layer}", "--profile", "bogus"], "--profile", PROFILE_NAMES),
    "zoo bench --members": (["zoo", "bench", "--members", "gla,bogus", *DD], "--members", ZOO),
    "zoo bench --profile": (["zoo", "bench", "--profile", "cpu-micro,bogus", *DD], "--profile", PROFILE_NAMES),
    "zoo bench --noise-pool": (["zoo", "bench", "--noise-pool", "bogus", *DD], "--noise-pool", list(NOISE_POOLS)),
    "evaluate --profile": (["evaluate", "{layer}", "--profile", "bogus", *DD], "--profile", PROFILE_NAMES),
    "evaluate --compare": (["evaluate", "{layer}", "--compare", "linear,bogus", *DD], "--compare", ZOO),
    "evaluate --baseline": (["evaluate", "{layer}", "--baseline", "bogus", *DD], "--baseline", ZOO),
    "data prepare PROFILE": (["data", "prepare", "bogus", *DD], "PROFILE", PROFILE_NAMES),
}


@pytest.fixture
def nothing_starts(monkeypatch):
    """Should a check be missing, fail fast instead of starting a stack or training."""
    def started(*a, **k):
        raise AssertionError("started work with an unknown name")
    import lab.tools.evaluate_file
    import lab.tools.validity
    import services.cli.stack

    monkeypatch.setattr(services.cli.stack, "up", started)
    monkeypatch.setattr(lab.tools.validity, "run_validity", started)
    monkeypatch.setattr(lab.tools.evaluate_file, "evaluate_file", started)


@pytest.mark.parametrize("case", list(CASES))
def test_unknown_name_is_a_usage_error_before_anything_starts(case, tmp_path, layer, monkeypatch, nothing_starts):
    args, option, valid = CASES[case]
    monkeypatch.chdir(tmp_path)  # a command without --data-dir would write its default ./.archlab here
    monkeypatch.delenv("ARCHLAB_DATA_DIR", raising=False)
    args = [a.format(d=tmp_path / "data", layer=layer) for a in args]
    r = runner.invoke(app, args, env={"COLUMNS": "200"})
    out = " ".join(r.output.split())
    assert r.exit_code == 2, r.output
    assert f"Invalid value for {option}:" in out and "bogus" in out
    assert ("valid: " + ", ".join(valid) in out) if case != "replay --rescore" else all(v in out for v in valid)
    assert len(valid) >= 2
    assert list(tmp_path.iterdir()) == [], "nothing may be created (no stack, no data dir, no files)"


@pytest.mark.parametrize("args, option, message", [
    (["run", "--promote-top", "2"], "--promote-top", "--promote-top needs --verify-profile"),
    (["run", "--promote-any"], "--promote-any", "--promote-any needs --verify-profile"),
    (["run", "--profile", "cpu-tiny", "--verify-profile", "cpu-tiny"], "--verify-profile",
     "the verification profile must differ from --profile"),
    (["run", "--campaign-id", "../escape"], "--campaign-id", "'../escape': 1-64 letters, digits"),
    (["run", "--campaign-id", "c-" + "x" * 70], "--campaign-id", "1-64 letters, digits"),
    (["run", "--campaign-id", "global"], "--campaign-id", "'global' is the cognition base's own"),
    (["run", "--resume", "--campaign-id", "c-1"], "--campaign-id", "--resume continues the recorded campaign"),
])
def test_run_options_are_checked_before_anything_starts(args, option, message, tmp_path, monkeypatch,
                                                                         nothing_starts):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ARCHLAB_DATA_DIR", raising=False)
    r = runner.invoke(app, [*args, "--data-dir", str(tmp_path / "data")], env={"COLUMNS": "200"})
    out = " ".join(r.output.split())
    assert r.exit_code == 2, r.output
    assert f"Invalid value for {option}:" in out and message in out
    assert list(tmp_path.iterdir()) == []
