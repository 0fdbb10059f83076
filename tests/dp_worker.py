"""One data-parallel rank (or the single-rank reference) of ``tests/test_data_parallel.py``.

    python tests/dp_worker.py SPEC.json RANK WORLD_SIZE PORT OUT.pt

``SPEC.json`` lists cases ``{"name", "args", "ids"}``: ``args`` are ``fairseq-train`` options
(data directory, task, criterion, arch, ...), ``ids[RANK]`` the dataset indices of this rank's
batch (empty: the rank's shard has run out, and fairseq's trainer substitutes its dummy batch).
For every case this process does what ``fairseq_cli/train.py`` does up to the first update:
the config from fairseq's parser and ``convert_namespace_to_omegaconf``, the process group from
``distributed_utils.distributed_init`` (gloo, ``legacy_ddp``, ranks started by hand: the CPU
recipe of ``shared/notes/environment.md``), task, model, criterion and ``Trainer``, the train
iterator (which sets the dummy batch), then one ``trainer.train_step``. It records what the
trainer reduced across ranks (the summed logging outputs that reach ``reduce_metrics``) and every
parameter's gradient after fairseq's all-reduce and its division by the total sample size.
"""
import json
import sys

import torch


def train_one_update(base_args, ids, rank, world_size, port):
    from fairseq import options, tasks, utils
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq.distributed import utils as distributed_utils
    from fairseq.trainer import Trainer

    distributed = []
    if world_size > 1:
        distributed = ["--distributed-world-size", str(world_size), "--distributed-rank", str(rank),
                       "--distributed-backend", "gloo", "--distributed-init-method", f"tcp://127.0.0.1:{port}",
                       "--distributed-no-spawn", "--ddp-backend", "legacy_ddp"]
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [*base_args, *distributed])
    cfg = convert_namespace_to_omegaconf(args)
    if world_size > 1:
        cfg.distributed_training.distributed_rank = distributed_utils.distributed_init(cfg)

    utils.set_torch_seed(cfg.common.seed)  # as fairseq_cli/train.py: the same initial model on every rank
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    trainer = Trainer(cfg, task, model, criterion)
    trainer.get_train_iterator(epoch=1, load_dataset=True)  # loads "train" and sets the dummy batch
    trainer.begin_epoch(1)

    reduced = {}
    reduce_metrics = task.reduce_metrics

    def capture(logging_outputs, criterion):
        for key, value in logging_outputs[0].items():
            if isinstance(value, (int, float)) or torch.is_tensor(value):
                reduced[key] = float(sum(float(log.get(key, 0)) for log in logging_outputs))
        return reduce_metrics(logging_outputs, criterion)

    task.reduce_metrics = capture
    dataset = task.dataset(cfg.dataset.train_subset)
    sample = dataset.collater([dataset[i] for i in ids]) if ids else []
    trainer.train_step([sample])
    # legacy_ddp gives a parameter that took no part in the loss a zero gradient; one rank leaves None
    grads = {name: param.grad.detach().clone() if param.grad is not None else torch.zeros_like(param)
             for name, param in trainer.get_model().named_parameters() if param.requires_grad}
    return {**reduced, "grads": grads}


def main(spec_path, rank, world_size, port, out_path):
    with open(spec_path) as handle:
        cases = json.load(handle)
    results = {}
    for case in cases:
        results[case["name"]] = train_one_update(case["args"], case["ids"][rank], rank, world_size, port)
    torch.save(results, out_path)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
