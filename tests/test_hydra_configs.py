"""Every recipe's Hydra config starts through ``fairseq-hydra-train`` and is the same run as
its ``fairseq-train`` flags.

Convention (what a new config needs to be picked up; the test discovers
``examples/*/config/*.yaml`` by itself):

1. The yaml's header comment carries the equivalent command, one line starting with
   ``#   fairseq-train DATA ...`` and continuation lines starting with ``#     ``
   (no backslashes). That is the command of the recipe's ``run.sh`` with its default
   values, and the same text the recipe README shows.
2. The yaml sets ``common.user_dir``, ``common.tensorboard_logdir`` and ``hydra.run.dir``
   (nothing lands in the working directory) and ``hydra.job.chdir: false`` (relative paths
   stay relative to the repository root). Each yaml is complete on its own: under
   fairseq-hydra-train's schema matching a ``defaults: [sibling, _self_]`` list loses the
   sibling's ``task`` group (it composes to null), so variants are full copies.
3. ``FIXTURES`` below names the tiny data directory the config trains on (keyed
   ``method/name``); ``EXTRA_OVERRIDES`` may add overrides that shrink it further (dotted
   hydra keys; the flag form is derived: ``group.some_key=v`` -> ``--some-key v``,
   ``=None`` removes the flag).

Checks per config:

* **Flags match exactly**, without training: every key the yaml sets equals what
  ``fairseq-train`` makes of the header command (``convert_namespace_to_omegaconf``), and
  every flag of the command is set by the yaml.
* **Same run**: the yaml with ``tiny_overrides`` (tiny model, no starting checkpoint, 2
  updates, no validation or checkpoint writing) through ``fairseq-hydra-train`` in a
  subprocess, and the header command with the same overrides through ``fairseq-train``,
  log the same first two losses. To keep the suite small this runs once per distinct
  ``(task._name, criterion._name)`` pair: for the first config of each pair in
  ``method/name`` order (``RUN_CONFIGS``). Configs that share the pair differ from it only in
  option values (a TreLM stage, a contrastive loss, an e5 or tiny size), and each option value
  is already checked by the flag match above; a config with a new task or criterion gets its
  own run automatically.
"""
import argparse
import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import BIN_DIR, REPO_ROOT, build_meta_per_language, build_trelm_aligned, write_toy_sentence_pairs

CONFIGS = sorted(REPO_ROOT.glob("examples/*/config/*.yaml"))

# method/name -> fixture (a function below taking tmp_path_factory, tiny_data_bin)
FIXTURES = {
    "clism/clism": "clism",
    "clism/mlm_baseline": "clism",
    "demo/mlctl": "mlctl",
    "demo/tiny_mlm": "mono",
    "meta_pretraining/meta_mlm": "meta",
    "mlctl/cz_nce_both": "mlctl",
    "mlctl/cz_nce_sentence": "mlctl",
    "mlctl/infonce_sentence": "mlctl",
    "salt/xnli_salt": "sentence_pairs",
    "trelm/commonality": "trelm",
    "trelm/language": "trelm",
    "trelm/lower": "trelm",
    "trelm/upper": "trelm",
}
_TRELM_TINY = {"model._name": "xsl_trelm_tiny"}  # the CdLM task needs the TRILayer model
EXTRA_OVERRIDES = {  # method/name -> {dotted key: value}
    # the fixture has en, de and ru; phase 2 from update 2 so both phases are compared
    "meta_pretraining/meta_mlm": {"dataset.valid_subset": "valid_en,valid_de,valid_ru",
                                  "task.meta_phase1_updates": 1},
    "trelm/commonality": _TRELM_TINY,
    "trelm/language": _TRELM_TINY,
    "trelm/lower": _TRELM_TINY,
    "trelm/upper": _TRELM_TINY,
}


def config_id(path: Path) -> str:
    return f"{path.parent.parent.name}/{path.stem}"


def objective(path: Path):
    cfg = OmegaConf.load(path)
    return cfg.task._name, cfg.criterion._name


def first_of_each_objective(paths):
    """The first config (in method/name order) of every distinct (task, criterion) pair."""
    chosen = {}
    for path in sorted(paths, key=config_id):
        chosen.setdefault(objective(path), path)
    return sorted(chosen.values(), key=config_id)


RUN_CONFIGS = first_of_each_objective(CONFIGS)


# --------------------------------------------------------------------------- reading configs


def compose(path: Path):
    cfg = OmegaConf.load(path)
    assert "defaults" not in cfg, f"{path}: make the config complete (see the convention above)"
    return cfg


def header_command(path: Path):
    """The ``fairseq-train`` arguments of the header comment (convention 1)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for start, line in enumerate(lines):
        if line.startswith("#   fairseq-train "):
            break
    else:
        raise AssertionError(f"{path}: no '#   fairseq-train ...' line in the header comment")
    text = [lines[start][len("#   fairseq-train "):]]
    for line in lines[start + 1:]:
        if not line.startswith("#     "):
            break
        text.append(line[len("#     "):])
    return shlex.split(" ".join(text))


def yaml_keys(cfg):
    """(group, key, value) of every leaf the yaml sets, hydra's own settings left out."""
    for group, values in cfg.items():
        if group == "hydra":
            continue
        for key, value in values.items():
            yield group, key, value


def flag_dests(argv):
    """Destinations of the ``--flags`` of a command (the first word is the data directory)."""
    return [a[2:].replace("-", "_") for a in argv if a.startswith("--")]


def parse_flags(argv):
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    argv = list(argv)
    argv[argv.index("--user-dir") + 1] = str(REPO_ROOT / "xsl_fairseq")  # one import path
    parser = options.get_training_parser()
    return convert_namespace_to_omegaconf(options.parse_args_and_arch(parser, argv))


def same_value(yaml_value, flag_value) -> bool:
    if OmegaConf.is_config(yaml_value):
        yaml_value = OmegaConf.to_container(yaml_value)
    if OmegaConf.is_config(flag_value):
        flag_value = OmegaConf.to_container(flag_value)
    if hasattr(flag_value, "value"):  # ChoiceEnum members
        flag_value = flag_value.value
    if isinstance(yaml_value, (int, float)) and isinstance(flag_value, (int, float)) \
            and not isinstance(yaml_value, bool):
        return float(yaml_value) == float(flag_value)
    if isinstance(yaml_value, list) and isinstance(flag_value, (list, tuple)):
        return len(yaml_value) == len(flag_value) and all(map(same_value, yaml_value, flag_value))
    return yaml_value == flag_value or str(yaml_value) == str(flag_value)


# --------------------------------------------------------------------------- overrides


def apply_to_flags(argv, overrides):
    """The same overrides as flags: ``task.data`` is the positional data directory,
    ``model._name`` is ``--arch``, ``hydra.*`` has no flag, None removes a flag."""
    argv = list(argv)
    for dotted, value in overrides.items():
        group, key = dotted.split(".", 1)
        if group == "hydra":
            continue
        if dotted == "task.data":
            argv[0] = str(value)
            continue
        flag = "--arch" if dotted == "model._name" else "--" + key.replace("_", "-")
        takes_value = value is not None and value is not True
        if flag in argv:
            at = argv.index(flag)
            has_value = at + 1 < len(argv) and not argv[at + 1].startswith("--")
            del argv[at:at + 1 + has_value]
        if value is None:
            continue
        argv += [flag, str(value)] if takes_value else [flag]
    return argv


def as_hydra_overrides(overrides):
    def text(value):
        if value is None:
            return "null"
        if value is True:
            return "true"
        if isinstance(value, str) and "," in value:
            return f"'{value}'"  # a string, not a list or a sweep
        return str(value)
    return [f"{key}={text(value)}" for key, value in overrides.items()]


def tiny_overrides(out: Path, data: Path):
    return {
        "task.data": data,
        "model._name": "xsl_roberta_tiny",
        "checkpoint.finetune_from_model": None,
        "optimization.max_update": 2,
        "common.log_interval": 1,
        "common.log_format": "json",
        "common.tensorboard_logdir": out / "tensorboard",
        "checkpoint.save_dir": out / "checkpoints",
        "checkpoint.no_save": True,
        "dataset.disable_validation": True,
        "hydra.run.dir": out / "hydra",
    }


# --------------------------------------------------------------------------- fixtures


def _mono(tmp_path_factory, tiny_data_bin, tiny_corpus):
    return tiny_data_bin / "mono"


def _clism(tmp_path_factory, tiny_data_bin, tiny_corpus):
    from preprocess.clism_binarize import binarize_clism
    from test_clism import RECORDS, record

    root = tmp_path_factory.mktemp("hydra-clism")
    # 24 pairs: a batch needs at least --required-batch-size-multiple (8) of them
    (root / "m.jsonl").write_text("".join(record(*r) + "\n" for r in RECORDS * 8), encoding="utf-8")
    binarize_clism([str(root / "m.jsonl")], str(tiny_data_bin / "spm.model"), str(tiny_data_bin / "dict.txt"),
                   str(root / "bin"))
    return root / "bin"


def _mlctl(tmp_path_factory, tiny_data_bin, tiny_corpus):
    from test_mlctl import synthetic_wps

    return synthetic_wps(tmp_path_factory.mktemp("hydra-mlctl") / "wps", [2, 1, 3, 1, 2, 2, 1, 2], seed=3)


def _meta(tmp_path_factory, tiny_data_bin, tiny_corpus):
    return build_meta_per_language(tiny_corpus, tiny_data_bin, tmp_path_factory.mktemp("hydra-meta"))


def _trelm(tmp_path_factory, tiny_data_bin, tiny_corpus):
    out = tmp_path_factory.mktemp("hydra-trelm")
    build_trelm_aligned(tiny_corpus, tiny_data_bin, out)
    return out


def _sentence_pairs(tmp_path_factory, tiny_data_bin, tiny_corpus):
    return write_toy_sentence_pairs(tmp_path_factory.mktemp("hydra-pairs"))


FIXTURE_BUILDERS = {"mono": _mono, "clism": _clism, "mlctl": _mlctl, "meta": _meta, "trelm": _trelm,
                    "sentence_pairs": _sentence_pairs}


@pytest.fixture(scope="module")
def fixture_data(tmp_path_factory, tiny_data_bin, tiny_corpus):
    built = {}

    def get(name):
        if name not in built:
            built[name] = FIXTURE_BUILDERS[name](tmp_path_factory, tiny_data_bin, tiny_corpus)
        return built[name]
    return get


# --------------------------------------------------------------------------- tests


def test_every_config_is_discovered_and_has_a_fixture():
    assert CONFIGS, "no examples/*/config/*.yaml found"
    missing = [config_id(p) for p in CONFIGS if config_id(p) not in FIXTURES]
    assert not missing, f"add a FIXTURES row for {missing} (see the convention at the top of this file)"
    stale = sorted(set(FIXTURES) - {config_id(p) for p in CONFIGS})
    assert not stale, f"FIXTURES rows {stale} name no config"
    assert {objective(p) for p in RUN_CONFIGS} == {objective(p) for p in CONFIGS}
    for path in CONFIGS:
        cfg = compose(path)
        for key in ("common.user_dir", "common.tensorboard_logdir", "hydra.run.dir"):
            assert OmegaConf.select(cfg, key) is not None, f"{path}: {key} is not set"
        assert OmegaConf.select(cfg, "hydra.job.chdir") is False, f"{path}: set hydra.job.chdir: false"


@pytest.mark.parametrize("path", CONFIGS, ids=config_id)
def test_config_sets_exactly_the_recipe_flags(path):
    cfg, argv = compose(path), header_command(path)
    from_flags = parse_flags(argv)
    set_keys = set()
    for group, key, value in yaml_keys(cfg):
        if group == "model" and key == "_name":
            assert value == from_flags.model._name, f"{path}: model._name {value} != --arch"
            set_keys.add("arch")
            continue
        if key == "_name":
            continue  # --task / --criterion / --optimizer / --lr-scheduler
        if key == "user_dir":  # parse_flags passes it as an absolute path
            assert value == argv[argv.index("--user-dir") + 1], f"{path}: common.user_dir differs"
            set_keys.add(key)
            continue
        fields = from_flags[group]
        fields = vars(fields) if isinstance(fields, argparse.Namespace) else fields  # legacy models
        assert key in fields, f"{path}: {group}.{key} is not a field fairseq-train knows"
        assert same_value(value, fields[key]), \
            f"{path}: {group}.{key} = {value!r} but the flags give {fields[key]!r}"
        set_keys.add(key)
    set_keys |= {"task", "criterion", "optimizer", "lr_scheduler"}
    assert from_flags.task.data == cfg.task.data, f"{path}: task.data differs from the command's data directory"
    unset = [d for d in flag_dests(argv) if d not in set_keys]
    assert not unset, f"{path}: the command passes {unset} but the yaml does not set them"


def _losses(stdout: str):
    losses = {}
    for line in stdout.splitlines():
        match = re.search(r"\{.*\"num_updates\".*\}", line)
        if match and "train_inner" in line:
            record = json.loads(match.group())
            losses[int(record["num_updates"])] = float(record["loss"])
    return [losses.get(1), losses.get(2)]


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=config_id)
def test_hydra_run_matches_fairseq_train(path, fixture_data, tmp_path):
    data = fixture_data(FIXTURES[config_id(path)])
    overrides = {**tiny_overrides(tmp_path / "hydra", data), **EXTRA_OVERRIDES.get(config_id(path), {})}
    flag_overrides = {**overrides, "checkpoint.save_dir": tmp_path / "flags" / "checkpoints",
                      "common.tensorboard_logdir": tmp_path / "flags" / "tensorboard"}
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    hydra_cmd = [str(BIN_DIR / "fairseq-hydra-train"), "--config-dir", str(path.parent),
                 "--config-name", path.stem, *as_hydra_overrides(overrides)]
    flags_cmd = [str(BIN_DIR / "fairseq-train"), *apply_to_flags(header_command(path), flag_overrides)]
    # both at once (one thread each): the two runs are independent
    procs = [subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for cmd in (hydra_cmd, flags_cmd)]
    outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    for name, proc, output in zip(("fairseq-hydra-train", "fairseq-train"), procs, outputs):
        assert proc.returncode == 0, f"{name} exited {proc.returncode}\n{output[-4000:]}"
    hydra_losses, flag_losses = _losses(outputs[0]), _losses(outputs[1])
    assert None not in hydra_losses, f"no loss of updates 1 and 2 in the hydra log\n{outputs[0][-3000:]}"
    assert hydra_losses == flag_losses
    # nothing written to the working directory; hydra's own files where the config says
    assert not (REPO_ROOT / "outputs").exists()
    assert (tmp_path / "hydra" / "hydra" / ".hydra" / "config.yaml").is_file()
    assert any((tmp_path / "hydra" / "tensorboard").rglob("events.out.tfevents.*"))
