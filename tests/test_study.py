"""One shape for every study: the protocol each study module follows, typed results that are their own
JSON, configurations that check themselves, and the committed figures' JSON in today's layouts."""
import dataclasses
import importlib
import json
from pathlib import Path

import numpy as np
import pytest

from minireptile import analysis, cli, combinations, comparison, joint, study
from minireptile.config import Checked, ConfigError, option
from minireptile.tasks import experiment, fewshot, miniimagenet, omniglot, sine

FIGURES = Path(__file__).parent.parent / "figures"
STUDIES = [sine, omniglot, miniimagenet, analysis, combinations, comparison, joint]


@pytest.mark.parametrize("module", STUDIES, ids=lambda m: m.__name__.split(".")[-1])
def test_every_study_has_the_protocol_and_budgets_that_make_valid_configurations(module):
    import inspect
    assert set(module.BUDGETS) == {"smoke", "grading", "class", "full"}
    configs = {name: module.Config(**changes) for name, changes in module.BUDGETS.items()}
    assert configs["full"] == module.Config()                        # the command's defaults are "full"
    assert module.OUTPUTS[0].endswith(".json") and isinstance(module.checkpoints(configs["smoke"]), list)
    assert issubclass(module.Result, study.Record) and hasattr(module.Result, "report")
    keywords = inspect.signature(module.run).parameters
    assert list(keywords)[:2] == ["config", "out"]
    assert all(keywords[k].kind is inspect.Parameter.KEYWORD_ONLY for k in ("resume", "progress", "workers"))


def test_the_command_line_registers_each_study_once_with_its_flags():
    parser = cli.build_parser()
    assert set(cli.STUDIES) <= set(parser.subparsers)
    for name in cli.STUDIES:
        flags = {a.dest for a in parser.subparsers[name]._actions}
        module = parser.subparsers[name].get_default("study")
        assert module is importlib.import_module(f"minireptile.{cli.STUDIES[name][0]}"), name
        fields = {f.name for f in dataclasses.fields(module.Config)}
        assert fields <= flags and "smoke" in flags, name


COMMITTED = [joint, combinations, comparison, analysis]       # the studies whose JSON is in figures/


@pytest.mark.parametrize("module", COMMITTED, ids=lambda m: m.__name__.split(".")[-1])
def test_the_committed_figures_json_reads_back_into_its_result(module):
    """As a notebook reads it (course.reference): the module's Result, every number and claim kept."""
    from minireptile import course
    saved = json.loads((FIGURES / module.OUTPUTS[0]).read_text())
    result = course.reference(module)
    assert isinstance(result, module.Result) and result.to_dict() == saved
    assert result.claims and all(isinstance(c, study.Claim) for c in result.claims)
    assert result.report() and set(result.figures()) <= set(module.OUTPUTS[1:])


def test_away_from_the_checkout_there_is_no_reference(monkeypatch, tmp_path):
    from minireptile import course
    monkeypatch.setattr(course, "notebooks_folder", lambda: tmp_path / "notebooks")     # no checkout beside it
    assert all(course.reference(module) is None for module in COMMITTED)


@dataclasses.dataclass(frozen=True)
class Inner(study.Record):
    scores: tuple[fewshot.Score, ...]
    by_k: dict[int, float]


@dataclasses.dataclass(frozen=True)
class Outer(study.Record):
    inner: Inner
    maybe: Inner | None
    hidden: object = dataclasses.field(default=None, compare=False, metadata={"json": False})


def test_a_record_is_its_own_json_by_its_type_hints():
    score = fewshot.Score("transductive", 0.5, 0.1, 7)
    record = Outer(Inner((score,), {5: 0.25}), None, hidden=np.zeros(3))
    plain = record.to_dict()
    assert plain == {"inner": {"scores": [{"mode": "transductive", "accuracy": 0.5, "ci95": 0.1, "tasks": 7}],
                               "by_k": {"5": 0.25}}, "maybe": None}         # no hidden field in the JSON
    again = Outer.from_dict(json.loads(json.dumps(plain)))
    assert again == record and again.inner.by_k == {5: 0.25} and isinstance(again.inner.scores[0], fewshot.Score)


@dataclasses.dataclass(frozen=True)
class Toy(Checked):
    count: int = option(3, "how many")
    step: float = option(0.5, "how far", high=1)
    floor: float = option(0.0, "at least", closed=True)
    kind: str = option("a", "which", choices=("a", "b"))
    sizes: tuple = option((1, 2), "sizes", nargs="+", type=int)
    later: int = option(None, "filled in", type=int)

    def derived(self):
        return {"later": self.later or 2 * self.count} if isinstance(self.count, int) else {}


@pytest.mark.parametrize("changes, message", [
    (dict(count=0), "count must be an integer of at least 1, got 0"),
    (dict(count=True), "count must be an integer of at least 1, got True"),
    (dict(step=2.0), "step must be a number above 0 and at most 1, got 2.0"),
    (dict(step=float("nan")), "step must be a number above 0 and at most 1, got nan"),
    (dict(floor=-1.0), "floor must be a number at least 0, got -1.0"),
    (dict(kind="c"), "kind must be one of a, b, got c"),
    (dict(sizes=[1, 0]), "sizes must be an integer of at least 1, got 0"),
])
def test_a_configuration_checks_every_field_by_its_type(changes, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Toy(**changes)


def test_derived_defaults_are_filled_in_and_lists_become_tuples():
    toy = Toy(count=4, sizes=[3])
    assert toy.later == 8 and toy.sizes == (3,)


def test_sign_verdicts_read_paired_intervals():
    assert study.sign_verdict([(0.1, 0.05), (0.2, 0.1)]) == "holds"
    assert study.sign_verdict([(0.1, 0.05), (-0.2, 0.1)]) == "does not hold"
    assert study.sign_verdict([(0.1, 0.2)]) == "undecided at this budget"


def test_evaluation_scores_are_typed_and_shared_by_every_configuration_that_evaluates():
    for cls in (experiment.FewShotConfig, experiment.EvalConfig, comparison.CompareConfig,
                omniglot.OmniglotConfig, miniimagenet.MiniImageNetConfig):
        assert issubclass(cls, experiment.Evaluating), cls
    protocol = comparison.CompareConfig().evaluation(5)
    assert (protocol.shots, protocol.inner, protocol.inner_iters) == (5, "sgd", 10)


def test_a_finished_sine_run_resumes_and_a_zero_is_refused_not_taken_for_the_default(tmp_path, capsys):
    out = str(tmp_path / "s")
    assert cli.main(["sine", "--iterations", "20", "--out", out, "--quiet"]) == 0
    assert cli.main(["sine", "--iterations", "20", "--out", out, "--quiet", "--resume"]) == 0   # joint's checkpoint too
    capsys.readouterr()
    for argv, message in [(["omniglot", "--data", str(tmp_path), "--inner-lr", "0"], "--inner-lr must be a number above 0"),
                          (["compare", "--data", str(tmp_path), "--eval-tasks", "0"], "--eval-tasks must be an integer"),
                          (["joint", "--eps-values", "0"], "--eps-values must be a number above 0"),
                          (["joint", "--ks", "1", "1"], "--ks must be distinct names")]:
        assert cli.main(argv + ["--out", str(tmp_path / "x")]) == 2
        assert message in capsys.readouterr().err


def test_the_curves_task_count_may_change_on_resume():
    config = omniglot.OmniglotConfig(eval_tasks=20)
    fields = {f.name: f for f in dataclasses.fields(config)}
    assert config.eval_tasks_during == 20 and not fields["eval_tasks_during"].metadata["train"]


def test_a_command_without_checkpoints_does_not_promise_resume_and_dask_is_asked_for_first(monkeypatch):
    import importlib.util
    import types
    from minireptile import _shell, train, workers
    args = types.SimpleNamespace(folder=None)                  # joint and taylor have no --resume
    assert "--resume" not in _shell.interrupted(args, train.Interrupted("stopped at iteration 3"))
    args.resume = False
    assert "--resume" in _shell.interrupted(args, train.Interrupted("stopped at iteration 3"))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "distributed" else real(name, *a))
    with pytest.raises(ValueError, match='a cluster needs Dask: pip install "minireptile\\[distributed\\]"'):
        workers.check_flags(scheduler="tcp://127.0.0.1:8786")


def test_a_folder_given_as_a_checkpoint_and_another_commands_theta_are_named(tmp_path):
    from minireptile.models import omniglot_net
    from minireptile.train import CheckpointError, load_theta, save_checkpoint
    with pytest.raises(CheckpointError, match="is a folder: give the checkpoint.npz or theta.npz in it"):
        load_theta(tmp_path)
    save_checkpoint(tmp_path / "theta.npz", theta=np.zeros(3), experiment=np.array(json.dumps(
        {"command": "sine", "config": {}})))
    with pytest.raises(CheckpointError, match="it was written by `sine`\\): give --ways"):
        experiment.trained_net(omniglot_net, "an Omniglot", tmp_path / "theta.npz")

