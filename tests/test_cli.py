"""Bad input gets one line that says what is wrong and how to fix it: no traceback, nothing in the store lost."""
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[1]

GOOD = """
name: t
dataset: {name: cifar10, val_per_class: 5, train_per_class: 10, test_per_class: 5}
budgets: {b: {epochs: 1, precision: fp32, batch_size: 50}}
families:
  vgg: {teacher: pb_vgg_tiny, student: pb_vgg_tiny, teacher_budget: b, budget: b}
runs:
  - {method: kd, families: [vgg]}
"""

BAD = {
    "unknown method": (GOOD.replace("method: kd", "method: kdd"), "unknown method 'kdd'; available:"),
    "unknown architecture": (GOOD.replace("student: pb_vgg_tiny", "student: pb_vgg_huge"),
                             "unknown architecture 'pb_vgg_huge'"),
    "unknown dataset": (GOOD.replace("name: cifar10", "name: cifar11"), "unknown dataset 'cifar11'"),
    "malformed yaml": (GOOD.replace("runs:", "runs: [").replace("families: [vgg]}", "families: [vgg]"),
                       "is not valid YAML at line"),
    "unknown key": (GOOD.replace("budgets:", "budget:"), "unknown key(s) ['budget']"),
    "unknown config field": (GOOD.replace("families: [vgg]}", "families: [vgg], config: {temp: 3}}"),
                             "method kd: unknown config field(s) ['temp']"),
    "unknown budget": (GOOD.replace("budget: b}", "budget: c}"), "unknown budget 'c'"),
    # declared types and ranges, checked when the suite loads: booleans are not numbers
    "string for a number in a config": (GOOD.replace("families: [vgg]}", "families: [vgg], config: {T: four}}"),
                                        "method kd: config field T must be a number, not 'four'"),
    "config not a mapping": (GOOD.replace("families: [vgg]}", "families: [vgg], config: 3}"),
                             "method kd: config must be a mapping of its fields, not 3"),
    "negative learning rate": (GOOD.replace("batch_size: 50}", "batch_size: 50, optimizer: {name: sgd, lr: -0.1}}"),
                               "budget.optimizer.lr must be a number > 0, not -0.1"),
    "boolean learning rate": (GOOD.replace("batch_size: 50}", "batch_size: 50, optimizer: {name: sgd, lr: true}}"),
                              "budget.optimizer needs a numeric 'lr'"),
    "boolean epochs": (GOOD.replace("epochs: 1", "epochs: true"), "'epochs' must be a whole number >= 1, not True"),
    "zero batch size": (GOOD.replace("batch_size: 50", "batch_size: 0"), "'batch_size' must be a whole number >= 1"),
    "schedule out of range": (GOOD.replace("batch_size: 50}", "batch_size: 50, schedule: {warmup_epochs: -1}}"),
                              "budget.schedule.warmup_epochs must be a number >= 0, not -1"),
    "label smoothing out of range": (GOOD.replace("batch_size: 50}", "batch_size: 50, label_smoothing: 2}"),
                                     "budget.label_smoothing must be a number >= 0 and < 1, not 2"),
    "augment of the wrong type": (GOOD.replace("batch_size: 50}", "batch_size: 50, augment: {crop_padding: x}}"),
                                  "budget.augment.crop_padding must be a whole number >= 0, not 'x'"),
    "seed as a string": (GOOD.replace("families: [vgg]}", "families: [vgg], seeds: ['1']}"),
                         "runs[0]: each seed must be a whole number >= 0, not '1'"),
    "teacher seed as a string": (GOOD + "teacher_seed: x\n", "teacher_seed must be a whole number >= 0, not 'x'"),
    "families not a list": (GOOD.replace("families: [vgg]}", "families: vgg}"),
                            "families must be a list of family names (e.g. [vgg]), not 'vgg'"),
    "runs not a list": (GOOD.replace("  - {method: kd, families: [vgg]}", "  3").replace("runs:\n  3", "runs: 3"),
                        "runs must be a list of entries"),
    "dataset count out of range": (GOOD.replace("val_per_class: 5", "val_per_class: -1"),
                                   "dataset.val_per_class must be a whole number >= 0, not -1"),
    "bad architecture kwargs": (GOOD.replace("families: [vgg]}", "families: [vgg], student_kwargs: {bogus: 1}}"),
                                "family vgg's student: pb_vgg_tiny with {'bogus': 1} cannot be built (TypeError: "),
    "architecture kwargs of the wrong type": (GOOD.replace("families: [vgg]}",
                                                           "families: [vgg], student_kwargs: {widths: x}}"),
                                              "pb_vgg_tiny with {'widths': 'x'} cannot be built (ValueError: "),
    "empty suite file": ("", "must be a mapping, got NoneType"),
    # a method's own mistakes, found by building it on the meta device before anything trains
    "a method whose __init__ raises": (GOOD.replace("method: kd", 'method: "tests/user_methods.py:InitRaises"'),
                                       "method init-raises raised ValueError: widths do not fit when built (at "
                                       "user_methods.py:"),
    "a family not cheapest first": (GOOD.replace("method: kd", 'method: "tests/user_methods.py:Unordered"'),
                                    "method unordered's anytime family is not cheapest first (FLOPs per image "
                                    "{'large': "),
    "an unsafe point name": (GOOD.replace("method: kd", 'method: "tests/user_methods.py:UnsafeName"'),
                             "operating point names must be unique and file-name safe (letters, digits, _ . + -), "
                             "got ['../model']"),
}

BAD_FLAGS = {
    "zero threads": (["--threads", "0"], "--threads-per-worker (executor.threads_per_worker) must be a whole "
                                         "number >= 1, not 0"),
    "negative threads": (["--threads", "-3"], "must be a whole number >= 1, not -3"),
    "a GPU rate without the GPU estimate": (["--gpu-tflops", "-1"], "--gpu-tflops is a positive rate"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_suite_is_one_line(case, tmp_path, capsys):
    text, message = BAD[case]
    suite = tmp_path / "suite.yaml"
    suite.write_text(text)
    store = tmp_path / "results"
    code = run_cli("run", str(suite), "--results", str(store), "--no-progress")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("progbench: error:"), err
    assert message in err[0]
    assert not store.exists() or not list(store.rglob("runs/*/*"))  # nothing half-written


@pytest.mark.parametrize("case", sorted(BAD_FLAGS))
def test_bad_flags_are_one_line(case, tmp_path, capsys):
    flags, message = BAD_FLAGS[case]
    assert run_cli("plan", "smoke", "--results", str(tmp_path / "r"), *flags) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("progbench: error:") and message in err[0], err


def test_missing_data_root(tmp_path, capsys, monkeypatch):
    suite = tmp_path / "suite.yaml"
    suite.write_text(GOOD)
    monkeypatch.setenv("PROGBENCH_DATA", str(tmp_path / "no-data-here"))
    assert run_cli("run", str(suite), "--results", str(tmp_path / "r"), "--no-progress") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist; point PROGBENCH_DATA or --data-root" in err[0]


def test_unknown_suite_name(capsys):
    assert run_cli("plan", "cpuu") == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert "unknown suite 'cpuu'; built-in suites: cpu, " in err and ", paper, smoke (or a path to a .yaml)" in err


def test_console_script_prints_no_traceback(tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text(GOOD.replace("method: kd", "method: kdd"))
    proc = subprocess.run([sys.executable, "-m", "progbench.cli", "plan", str(suite)], cwd=REPO, capture_output=True,
                          text=True)
    assert proc.returncode == 2
    (line,) = proc.stderr.splitlines()  # one line; installed user packages add their methods to the list
    assert line.startswith("progbench: error: unknown method 'kdd'; available: ")
    assert line.endswith(" (or a path/to/file.py:ClassName, or a package exposing the 'progbench.methods' entry point)")
    listed = line.split("available: ")[1].split(" (or")[0].split(", ")
    assert listed == sorted(listed) and {"bdistil", "des_pretrain", "des_scratch", "kd", "noresched", "pwl", "resched",
                                         "scratch", "sws"} <= set(listed)


@pytest.mark.parametrize("suite", ["smoke", "cpu", "paper"])
def test_builtin_suites_plan(suite, capsys, tmp_path):
    assert run_cli("plan", suite, "--results", str(tmp_path)) == 0
    out = capsys.readouterr().out
    assert f"suite {suite}:" in out and "to run:" in out
    # what each family still needs adds up to the whole
    total = next(x for x in out.splitlines() if x.startswith("to run:"))
    families = next(x for x in out.splitlines() if x.startswith("by family: ")).removeprefix("by family: ").split("; ")
    assert sum(int(f.split()[1]) for f in families) == int(total.split()[2])
    assert abs(sum(int(f.split("~")[1].split()[0]) for f in families) - int(total.split("~")[1].split()[0])) <= len(
        families)  # each rounded to the minute


def test_methods_and_models_commands(capsys):
    assert run_cli("methods") == 0
    out = capsys.readouterr().out
    assert "kd" in out and "T=4.0" in out and "scratch" in out
    assert run_cli("models", "--scale", "cpu") == 0
    out = capsys.readouterr().out
    assert "pb_resnet_teacher_cpu" in out and "701K" in out


def test_malformed_record_is_one_line_and_redone(smoke_store, tmp_path, capsys):
    import shutil

    from progbench.store import Store
    store_dir = tmp_path / "results"
    shutil.copytree(smoke_store, store_dir)
    victim = next(p for p in (store_dir / "runs").iterdir() if p.name.startswith("scratch-vgg"))
    (victim / "record.json").write_text("[]")
    assert run_cli("plan", "smoke", "--results", str(store_dir)) == 0
    out = capsys.readouterr().out
    assert f"{victim.name} corrupt" in " ".join(out.split())
    assert run_cli("run", "smoke", "--results", str(store_dir), "--no-progress", "--only", "method=scratch") == 0
    assert "corrupt record (malformed record" in capsys.readouterr().out
    assert Store(store_dir).status(victim.name) == "done"


def test_results_path_that_is_a_file(tmp_path, capsys):
    (tmp_path / "results").write_text("not a folder")
    assert run_cli("plan", "smoke", "--results", str(tmp_path / "results")) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert "is not a folder; pass --results DIR" in err


def test_plan_estimates_a_missing_seed_from_its_finished_siblings(smoke_store, tmp_path):
    from progbench.runner import plan
    from progbench.store import Store
    from progbench.suite import load_suite, suite_path
    text = suite_path("smoke").read_text().replace("{method: kd, families: [vgg], seeds: [0, 1]}",
                                                           "{method: kd, families: [vgg], seeds: [0, 1, 2]}")
    suite_file = tmp_path / "smoke3.yaml"
    suite_file.write_text(text)
    store = Store(smoke_store)
    rows = {(r["method"], r["seed"]): r for r in plan(load_suite(str(suite_file)), store) if r["family"] == "vgg"}
    assert rows[("kd", 2)]["status"] == "missing" and rows[("kd", 2)]["estimated"]
    done = [rows[("kd", s)]["train_min"] for s in (0, 1)]
    assert rows[("kd", 2)]["train_min"] == pytest.approx(sum(done) / 2)


def test_only_filter_names_teachers_by_their_role():
    from progbench.suite import load_suite, matches, parse_only
    suite = load_suite("cpu")
    teachers = suite.select("method=teacher")
    assert teachers and all(r.is_teacher for r in teachers)
    assert {r.family for r in teachers} == {"vgg", "resnet", "vit", "sws_imagenette"}
    kd = suite.select("method=kd,family=vgg,seed=0")  # the student, and the teacher it distils from
    assert [r.is_teacher for r in kd] == [True, False]
    assert not matches(kd[0], parse_only("method=kd")) and matches(kd[1], parse_only("method=kd"))
    assert [r.is_teacher for r in suite.select("method=scratch,family=vgg,seed=0")] == [False]  # needs no teacher
    assert [r.run_id for r in suite.select("id=teacher-vgg")] == [kd[0].run_id]


def test_help_and_argument_errors_do_not_import_torch():
    """The CLI answers at once: torch (seconds to import) only in commands that build or train models."""
    probe = ("import sys\nfrom progbench.cli import main\n"
             "for argv in (['--help'], ['run', '--help'], ['plan']):\n"
             "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
             "print(sorted(m for m in ('torch', 'timm', 'torchvision', 'datasets') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout + proc.stderr
