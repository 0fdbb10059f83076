"""Bad input to ``fairseq-train --user-dir xsl_fairseq`` fails before data loading, in one line.

fairseq's entry point has no error handling of its own: a wrong option or file ends in a
traceback from wherever it is first used (``MaskTokensDataset``'s bare ``assert``, a
``size mismatch`` inside ``load_state_dict``, a pickle error), or not at all (a mistyped
``--restore-file`` starts training from scratch). The plugin's tasks therefore check

* their numeric options when the task is constructed (:func:`check_task_options`), and
* the checkpoint ``fairseq-train`` is about to load (``--finetune-from-model``,
  ``--restore-file`` or ``checkpoint_last.pt`` of ``--save-dir``) against the model the task
  has just built (:class:`InputCheckedTask`), with :mod:`preprocess.checkpoints`,

and raise :class:`preprocess.InputError`, which :func:`install_excepthook` prints as one
``error:`` line (non-zero exit) when nothing else catches it.
"""
import logging
import os
import sys
from dataclasses import dataclass
from typing import Optional

from fairseq.dataclass import FairseqDataclass
from fairseq.utils import safe_getattr
from omegaconf import II
from omegaconf.errors import InterpolationResolutionError

from preprocess import InputError
from preprocess.checkpoints import check_matches_model, load_fairseq_checkpoint, start_checkpoint

logger = logging.getLogger(__name__)

# checked on every task config that has the option (xsl_meta_mlm checks its schedule options itself)
_PROBABILITIES = ("mask_prob", "leave_unmasked_prob", "random_token_prob", "head_dropout")
_POSITIVE_INTEGERS = ("tokens_per_sample", "max_source_tokens", "max_target_tokens", "max_tokens_per_side")


def option_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def check_task_options(cfg, mask_prob_may_be_zero: bool = True) -> None:
    """Ranges of the task options ``cfg`` has; InputError naming the first bad one."""
    for name in _PROBABILITIES:
        value = safe_getattr(cfg, name, None)
        if value is not None and not 0.0 <= value <= 1.0:
            raise InputError(f"{option_name(name)} {value}: must be a probability in [0, 1]")
    mask_prob = safe_getattr(cfg, "mask_prob", None)
    if mask_prob is not None and (mask_prob == 1.0 or (mask_prob == 0.0 and not mask_prob_may_be_zero)):
        # fairseq's MaskTokensDataset asserts 0 < mask_prob < 1
        bound = "[0, 1)" if mask_prob_may_be_zero else "(0, 1)"
        raise InputError(f"--mask-prob {mask_prob}: must be in {bound} for this task")
    leave, random = (safe_getattr(cfg, name, None) for name in ("leave_unmasked_prob", "random_token_prob"))
    if leave is not None and random is not None and leave + random > 1.0:
        raise InputError(f"--leave-unmasked-prob {leave} + --random-token-prob {random}: share more than all "
                         "of the masked positions (their sum must be at most 1)")
    for name in _POSITIVE_INTEGERS:
        value = safe_getattr(cfg, name, None)
        if value is not None and value < 1:
            raise InputError(f"{option_name(name)} {value}: must be at least 1")


@dataclass
class StartCheckpointConfig(FairseqDataclass):
    """What a task needs to find the checkpoint fairseq-train will load (not flags of their own)."""

    save_dir: str = II("checkpoint.save_dir")
    restore_file: str = II("checkpoint.restore_file")
    finetune_from_model: Optional[str] = II("checkpoint.finetune_from_model")


class InputCheckedTask:
    """Mixin (first base) of the plugin's tasks: options checked at construction, the start
    checkpoint checked against the freshly built model, both before any data is loaded.

    ``fairseq-train`` builds the model (``task.build_model``) before
    ``checkpoint_utils.load_checkpoint`` reads the checkpoint, so this is the last point
    at which a wrong file can be named before fairseq fails inside ``torch.load`` or
    ``load_state_dict``. Models loaded *from* a checkpoint (``from_checkpoint=True``:
    ``xsl-eval`` reading its fine-tuned model) are not checked again.
    """

    mask_prob_may_be_zero = True

    def __init__(self, cfg, *args, **kwargs):
        check_task_options(cfg, self.mask_prob_may_be_zero)
        super().__init__(cfg, *args, **kwargs)

    def build_model(self, cfg, from_checkpoint=False):
        model = super().build_model(cfg, from_checkpoint)
        if not from_checkpoint:
            check_start_checkpoint(self.cfg, model, safe_getattr(cfg, "arch", None) or "?")
        return model


def require_data_file(data: str, name: str, hint: str) -> str:
    """``{first data directory}/{name}``, which must exist (before fairseq opens it)."""
    directory = (data or "").split(":")[0]
    if not os.path.isdir(directory):
        raise InputError(f"{directory or repr(data)}: data directory not found")
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
        raise InputError(f"{path}: not found ({hint})")
    return path


def _resolved(cfg, name: str):
    """``cfg.name``, or None where it is absent or an interpolation nothing resolved (a task
    config made directly from its dataclass, as in unit tests)."""
    try:
        value = safe_getattr(cfg, name, None)
    except InterpolationResolutionError:  # a DictConfig without the root it points into
        return None
    return None if isinstance(value, str) and value.startswith("${") else value


def check_start_checkpoint(task_cfg, model, arch: str) -> None:
    """The checkpoint fairseq-train will load next, against ``model`` (see the class above)."""
    save_dir = _resolved(task_cfg, "save_dir")
    if save_dir is None:  # no StartCheckpointConfig fields, or a config built outside fairseq-train
        return
    found = start_checkpoint(_resolved(task_cfg, "restore_file"), save_dir, _resolved(task_cfg, "finetune_from_model"))
    if found is None:
        return
    path, option = found
    state = load_fairseq_checkpoint(path, required=("model", "cfg"), mmap=True)
    data = safe_getattr(task_cfg, "data", None)
    dict_path = f"{data.split(':')[0]}/dict.txt" if data else None
    check_matches_model(state, path, model.state_dict(), arch, dict_path)
    logger.info("%s %s: tensors match --arch %s", option, path, arch)


def install_excepthook() -> None:
    """An uncaught InputError (bad user input; its message names the file or option) is
    printed as one ``error:`` line instead of a traceback; every other exception keeps
    Python's report. Installed when the plugin is imported, so ``fairseq-train`` has it."""
    previous = sys.excepthook
    if getattr(previous, "xsl_input_errors", False):
        return

    def report(exc_type, exc, traceback):
        if issubclass(exc_type, InputError):
            print(f"error: {exc}", file=sys.stderr)
        else:
            previous(exc_type, exc, traceback)

    report.xsl_input_errors = True
    sys.excepthook = report
