"""Studies end to end on a tiny model: Optuna storage, resume, failed trials, MLflow nesting, plug-ins."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
from tiny_study import write_study

from headsearch.errors import HeadsearchError
from headsearch.study import load_points, run_study
from headsearch.study_config import load_study


def quiet(*_args, **_kw):
    pass


def test_study_runs_records_and_resumes(tmp_path):
    path = write_study(tmp_path, [{"name": "dense", "n_trials": 1}, {"name": "random", "n_trials": 3}])
    config = load_study(path)
    out = run_study(config, progress=False, echo=quiet)
    info = json.loads((out / "run.json").read_text())
    assert info["strategies"] == ["dense", "random"] and (out / "optuna.db").is_file()
    assert {p.strategy for p in load_points(out)} == {"dense", "random"}
    assert len([p for p in load_points(out) if p.strategy == "random"]) == 3
    dense = [p for p in load_points(out) if p.strategy == "dense"][0]
    assert dense.flops_ratio == pytest.approx(1.0) and dense.objectives["heads_kept"] == 4

    with pytest.raises(HeadsearchError, match="already holds a run"):
        run_study(config, progress=False, echo=quiet)
    run_study(config, n_trials=5, resume=True, progress=False, echo=quiet)
    study = optuna.load_study(study_name="tiny:random", storage=info["storage"])
    assert len(study.trials) == 5  # resumed: 3 kept, 2 added

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["headsearch/tiny"], output_format="list")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 2  # one per invocation
    by_id = {r.info.run_id: r for r in runs}
    trials = [r for r in runs if "trial" in r.data.tags]
    assert len(trials) == (1 + 4) + (3 + 2)  # --n-trials 5 on resume tops up every strategy to 5
    for t in trials:
        strategy_run = by_id[t.data.tags["mlflow.parentRunId"]]
        assert strategy_run.data.tags["strategy"] == t.data.tags["strategy"]
        assert strategy_run.data.tags["mlflow.parentRunId"] in {p.info.run_id for p in parents}
        assert "accuracy" in t.data.metrics and t.data.tags["git_commit"]


def test_resume_adds_the_strategies_the_study_now_lists(tmp_path):
    """`headsearch init` writes the longer strategies commented out: uncommented, `--resume` runs only them."""
    first = [{"name": "dense", "n_trials": 1}, {"name": "random", "n_trials": 2}]
    out = run_study(load_study(write_study(tmp_path, first)), progress=False, echo=quiet)
    storage = json.loads((out / "run.json").read_text())["storage"]
    before = [t.datetime_start for t in optuna.load_study(study_name="tiny:random", storage=storage).trials]
    run_study(load_study(write_study(tmp_path, [*first, {"name": "importance", "n_trials": 2}])), resume=True,
              progress=False, echo=quiet)
    assert json.loads((out / "run.json").read_text())["strategies"] == ["dense", "random", "importance"]
    assert [t.datetime_start for t in optuna.load_study(study_name="tiny:random", storage=storage).trials] == before
    assert len(optuna.load_study(study_name="tiny:importance", storage=storage).trials) == 2


def test_astar_trials_record_their_search_figures(tmp_path):
    """A strategy's Candidate.info reaches Optuna's user attributes and the trial's MLflow run."""
    space = {"max_masks": {"low": 20, "high": 40}, "eval_rows": {"choices": [40]}, "branching": {"low": 2, "high": 3}}
    config = load_study(write_study(tmp_path, [{"name": "astar", "n_trials": 2, "space": space}]))
    out = run_study(config, progress=False, echo=quiet)
    study = optuna.load_study(study_name="tiny:astar", storage=json.loads((out / "run.json").read_text())["storage"])
    for trial in study.trials:
        info = trial.user_attrs["info"]
        assert info["search_rows"] == 40 and info["heldout_rows"] == 20 and info["evaluations"] <= 40

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    trials = [r for r in mlflow.search_runs(experiment_names=["headsearch/tiny"], output_format="list")
              if "trial" in r.data.tags]
    assert len(trials) == 2
    for run in trials:
        assert 0.0 <= run.data.metrics["info.heldout_accuracy"] <= 1.0
        text = mlflow.MlflowClient().download_artifacts(run.info.run_id, "candidate_info.json", str(tmp_path))
        assert json.loads(Path(text).read_text())["stop_reason"] in ("optimal", "max masks", "frontier empty")



def test_recovered_trials_keep_their_weights_artefacts_and_export(tmp_path):
    """A trial that fine-tunes (CAHP recovery) is evaluated and exported with its own weights."""
    from headsearch.cli import app
    from headsearch.export import load
    from headsearch.models import TextClassifier

    space = {"embedding": {"choices": ["pca"]}, "recovery_epochs": {"low": 1, "high": 1},
             "recovery_rows": {"choices": [64]}, "recovery_lr": {"low": 1e-3, "high": 1e-3}}
    path = write_study(tmp_path, [{"name": "cahp", "n_trials": 1, "space": space}],
                       model={"max_length": 16, "builtin": {"num_layers": 2, "num_heads": 4, "hidden_size": 16,
                                                            "intermediate_size": 32}, "train": {"epochs": 2, "train_rows": 200}})
    out = run_study(load_study(path), progress=False, echo=quiet)
    (point,) = load_points(out)
    assert point.model_dir == "trial_models/cahp-0"
    recovered = TextClassifier.load(out / point.model_dir)
    assert recovered.model.head_config.to_dict() == point.head_config
    assert recovered.meta["recovery"]["rows"] == 64

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (trial,) = [r for r in mlflow.search_runs(experiment_names=["headsearch/tiny"], output_format="list")
                if "trial" in r.data.tags]
    names = {a.path for a in mlflow.MlflowClient().list_artifacts(trial.info.run_id)}
    assert {"cahp_knee.png", "cahp.json", "candidate_info.json"} <= names
    assert any(name.endswith("_features.npy") for name in names)  # the per-pair distance matrix
    assert 0.0 <= trial.data.metrics["info.accuracy_before_recovery"] <= 1.0

    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["export", str(out), "--strategy", "cahp", "--trial", "0", "--no-onnx",
                                      "--seq-len", "16", "--repeats", "1"])
    assert result.exit_code == 0, result.output
    exported = load(out / "export").model.state_dict()
    assert all(v.equal(exported[k]) for k, v in recovered.model.state_dict().items())  # not the un-recovered prune


def test_budgeted_gate_trials_share_one_checkpoint_and_export_every_budget(tmp_path):
    from typer.testing import CliRunner

    from headsearch.cli import app
    from headsearch.export import load

    space = {"budget": {"low": 0.3, "high": 0.8}, "epochs": {"choices": [1]}, "train_rows": {"choices": [64]},
             "adapt_epochs": {"high": 0}}
    path = write_study(tmp_path, [{"name": "budgeted_gates", "n_trials": 2, "space": space}],
                       model={"max_length": 16, "builtin": {"num_layers": 2, "num_heads": 4, "hidden_size": 16,
                                                            "intermediate_size": 32}, "train": {"epochs": 1, "train_rows": 200}})
    out = run_study(load_study(path), progress=False, echo=quiet)
    points = sorted(load_points(out), key=lambda p: p.trial)
    assert [p.model_dir for p in points] == ["trial_models/budgeted_gates-0"] * 2  # one checkpoint, kept once
    assert sorted(p.name for p in (out / "trial_models").iterdir()) == ["budgeted_gates-0"]

    runner = CliRunner()
    args = ["--no-onnx", "--seq-len", "16", "--repeats", "1"]
    result = runner.invoke(app, ["export", str(out), "--strategy", "budgeted_gates", "--trial", "1", *args])
    assert result.exit_code == 0, result.output
    assert load(out / "export").model.head_config.to_dict() == points[1].head_config  # sliced to the trial
    result = runner.invoke(app, ["export", str(out), "--strategy", "budgeted_gates", "--trial", "1", "--all-budgets",
                                 "--out", str(tmp_path / "every"), *args])
    assert result.exit_code == 0, result.output
    assert load(tmp_path / "every", budget=0.25).model.head_config.total_kept == 2
    assert load(tmp_path / "every").model.head_config.total_kept == 8

def test_budgetformer_trials_log_routing_and_export_a_routed_model(tmp_path):
    import mlflow
    from typer.testing import CliRunner

    from headsearch.cli import app
    from headsearch.export import load

    space = {"epochs": {"choices": [1]}, "train_rows": {"choices": [64]}}
    path = write_study(tmp_path, [{"name": "budgetformer", "n_trials": 1, "space": space}],
                       model={"max_length": 16, "builtin": {"num_layers": 2, "num_heads": 4, "hidden_size": 16,
                                                            "intermediate_size": 32}, "train": {"epochs": 1, "train_rows": 200}})
    out = run_study(load_study(path), progress=False, echo=quiet)
    (point,) = load_points(out)
    assert point.model_dir == "trial_models/budgetformer-0"
    assert 0 < point.objectives["fraction_kept"] <= 0.9 and point.objectives["flops_ratio"] < 1.0

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (trial_run,) = mlflow.search_runs(search_all_experiments=True, filter_string="tags.trial = '0'", output_format="list")
    assert {"info.s_mean", "info.s_p90", "info.heads_mean"} <= set(trial_run.data.metrics)
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(trial_run.info.run_id)}
    assert {"budget_s_hist.png", "budget_s_by_class.png", "budget_s_by_length.png", "heads_chosen.png"} <= logged

    result = CliRunner().invoke(app, ["export", str(out), "--strategy", "budgetformer", "--trial", "0",
                                      "--seq-len", "16", "--repeats", "1"])
    assert result.exit_code == 0, result.output
    routed = load(out / "export")
    assert routed.router is not None and not (out / "export" / "model.onnx").exists()
    texts = ["w1 w2 c0x1 w3", "not c1x2 w4"]
    with routed.router.tracing() as trace:
        labels = routed.predict(texts)
    assert labels and trace.kept().shape == (2, 2, 4)


PLUGIN = textwrap.dedent('''
    from headsearch.heads import HeadConfig
    from headsearch.strategies import Candidate, Strategy

    class FirstHeads(Strategy):
        """Keeps the first k heads of every layer; fails on k = 2 to exercise failed trials."""
        name = "first-heads"
        search_space = __file__.replace(".py", ".yaml")

        def propose(self, params, context):
            if params["k"] == 2:
                raise RuntimeError("k=2 is not allowed")
            k = params["k"]
            return Candidate(HeadConfig(tuple(tuple(range(k)) for _ in range(context.num_layers)), context.num_heads))
''')


@pytest.fixture()
def plugin_path(tmp_path):
    """A third-party strategy 'installed' the way pip would: a module plus a .dist-info with an entry point."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "first_heads.py").write_text(PLUGIN)
    (site / "first_heads.yaml").write_text("params:\n  k: {type: int, low: 1, high: 2}\n")
    (site / "broken_plugin.py").write_text("raise ImportError('this plug-in is broken on purpose')\n")
    info = site / "first_heads-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: first-heads\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[headsearch.strategies]\nfirst-heads = first_heads:FirstHeads\nbroken = broken_plugin:Nope\n"
        "misnamed = first_heads:FirstHeads\n")
    return site


def test_plugin_appears_and_runs_with_failed_trials(plugin_path, tmp_path):
    env_path = str(plugin_path)
    listed = subprocess.run([sys.executable, "-m", "headsearch", "strategies"], capture_output=True, text=True,
                            env={**__import__("os").environ, "PYTHONPATH": env_path}, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert "first-heads" in listed.stdout and "first-heads " in listed.stdout.split("first-heads", 1)[1][:20]
    assert "importance" in listed.stdout  # the broken plug-in broke nothing
    assert "'broken' from first-heads failed to load" in listed.stderr
    assert "'misnamed' from first-heads failed to load: first_heads:FirstHeads is named 'first-heads'" in listed.stderr

    sys.path.insert(0, env_path)
    try:
        path = write_study(tmp_path, [{"name": "first-heads", "n_trials": 6}], sampler="random")
        out = run_study(load_study(path), progress=False, echo=quiet)
    finally:
        sys.path.remove(env_path)
    study = optuna.load_study(study_name="tiny:first-heads", storage=json.loads((out / "run.json").read_text())["storage"])
    states = [t.state for t in study.trials]
    assert len(states) == 6
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert failed and all(t.params["k"] == 2 for t in failed)
    assert all("k=2 is not allowed" in t.user_attrs["fail_reason"] for t in failed)
    assert any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def test_bad_study_files(tmp_path):
    with pytest.raises(HeadsearchError, match="Study file not found"):
        load_study(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nstrategies: [{name: random, n_trials: 0}]\n")
    with pytest.raises(HeadsearchError, match=r"strategies\.0\.n_trials: Input should be greater than or equal to 1"):
        load_study(bad)
    bad.write_text("name: x\nobjectives: [accuracy, beauty]\nstrategies: [{name: random}]\n")
    with pytest.raises(HeadsearchError, match="unknown objective"):
        load_study(bad)
    bad.write_text("name: x\nstrategies: [{name: nope}]\n")
    with pytest.raises(HeadsearchError, match="Unknown strategy 'nope'"):
        run_study(load_study(bad), progress=False, echo=quiet)
    bad.write_text("name: x\nstrategies: [{name: random, space: {budget: {low: 2, high: 1}}}]\n")
    config = load_study(bad, output=str(tmp_path / "o"))
    with pytest.raises(HeadsearchError, match=r"random\.yaml: params\.budget: Value error, low \(2\) must not exceed"):
        run_study(config, progress=False, echo=quiet)
    assert not (tmp_path / "o").exists()  # nothing written before the study is known to be valid


def test_shipped_studies_validate():
    from pathlib import Path

    studies = sorted((Path(__file__).resolve().parents[1] / "studies").glob("*.yaml"))
    assert {p.stem for p in studies} >= {"quickstart", "sst2_minilm", "agnews_builtin"}
    for path in studies:
        config = load_study(path)
        for run in config.strategies:
            from headsearch.searchspace import load_space
            from headsearch.strategies import get

            load_space(get(run.name).cls.search_space, run.space)


def test_trials_record_their_hardware_and_a_run_never_mixes_profiles(tmp_path):
    path = write_study(tmp_path, [{"name": "random", "n_trials": 2}])
    out = run_study(load_study(path), progress=False, echo=quiet)
    storage = json.loads((out / "run.json").read_text())["storage"]
    trials = optuna.load_study(study_name="tiny:random", storage=storage).trials
    assert all(t.user_attrs["hardware"]["seq_len"] == 16 and t.user_attrs["hardware"]["cpu"] for t in trials)

    other = write_study(tmp_path, [{"name": "random", "n_trials": 3}], hardware={"seq_len": 16, "batch_size": 2, "repeats": 1})
    with pytest.raises(HeadsearchError, match="batch_size 1 -> 2"):
        run_study(load_study(other), resume=True, progress=False, echo=quiet)
    assert len(optuna.load_study(study_name="tiny:random", storage=storage).trials) == 2  # nothing was added
