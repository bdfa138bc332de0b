"""Does the map know the degradation? A linear probe on its transport residual (issue 31).

For each of the eight degradation families ``experiment=allinone_cpu`` trains on (its
``task.degradation``, a ``OneOf``: Gaussian noise, JPEG, rain, haze, blur, low light, noise then
JPEG, blur then noise), crops are drawn, degraded by that family (its own random parameters), and
passed through the map. A multinomial logistic classifier
(:class:`rcot_lightning.detect.DegradationDetector`) is fitted on the crops' features and scored
on crops of photos it never saw, once per feature set (:data:`rcot_lightning.detect.FEATURES`):

* ``residual_spectrum``: the log power spectrum and colour statistics of the first-pass residual
  ``r0 = y - G(y)``;
* ``residual_embedding``: the residual encoder's features, averaged over space (what the second
  pass is conditioned on; two-pass maps only);
* ``input_spectrum``: the same spectrum of the degraded input: the control (what the residual
  adds over looking at the image).

Training crops: the recipe's own training photos (``data.train_images``) and generated
dead-leaves images. Test crops: the held-out photos (:mod:`rcot_lightning.data.heldout`: china,
flower, grace_hopper), which neither the map nor the probe trains on. Accuracy per class, overall,
and the confusion matrix (rows: the true family; columns: the predicted one).

Then, what ``rcot-restore`` prints: the detector of ``--ship`` (default ``residual_spectrum``)
reads whole held-out photos at every held-out severity of six tasks (``benchmarks/tasks.py``'s
8-bit inputs, :func:`benchmarks.claims.allinone_photos`) through
:meth:`~rcot_lightning.detect.DegradationDetector.detect` (9 crops on a grid); a photo counts as
right when the family named is the task's own.

``--bundle-into WEIGHTS.pt`` adds that detector to a bundled model's ``.pt`` (key ``detector``),
which :func:`rcot_lightning.pretrained.load_detector` reads.

Run::

    python benchmarks/probe.py --model allinone-blind --out docs/quality/probe_allinone.json
    python benchmarks/probe.py --ckpt runs/allinone/checkpoints/last.ckpt \\
        --bundle-into src/rcot_lightning/weights/allinone-blind.pt
    python benchmarks/probe.py --model allinone-blind --per-class 8 --test-per-class 4 \\
        --photos china --crop 64                                     # a smoke run, seconds
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

# Run as a file (``python benchmarks/<script>.py``), Python puts benchmarks/ on the path, not the
# checkout: put the checkout first so the ``benchmarks`` package imports either way.
if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rcot_lightning import hardware
from rcot_lightning.detect import FEATURES, DegradationDetector, feature_sets

#: The eight members of experiment=allinone_cpu's ``task.degradation`` (its ``OneOf``), in order.
CLASSES = ("noise", "jpeg", "rain", "haze", "blur", "lowlight", "noise+jpeg", "blur+noise")
#: The family each held-out task is degraded by.
TASK_CLASS = {
    "denoise": "noise",
    "jpeg": "jpeg",
    "derain": "rain",
    "dehaze": "haze",
    "deblur": "blur",
    "lowlight": "lowlight",
}


def families(experiment: str = "allinone_cpu") -> list[Any]:
    """The members of the experiment's ``task.degradation`` ``OneOf`` (one per :data:`CLASSES`)
    and its training photos."""
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate

    with initialize_config_module("rcot_lightning.conf", version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={experiment}"])
    members = list(instantiate(cfg.task.degradation).degradations)
    if len(members) != len(CLASSES):
        raise SystemExit(
            f"probe.py: experiment={experiment} mixes {len(members)} degradations; this probe "
            f"names {len(CLASSES)} ({', '.join(CLASSES)})"
        )
    return members


def random_crops(images: Sequence[Tensor], count: int, size: int, g: torch.Generator) -> Tensor:
    """``count`` crops ``(count, 3, size, size)``, each from a random image at a random place."""
    out = []
    for _ in range(count):
        image = images[int(torch.randint(len(images), (1,), generator=g))]
        h, w = image.shape[-2:]
        top = int(torch.randint(h - size + 1, (1,), generator=g))
        left = int(torch.randint(w - size + 1, (1,), generator=g))
        out.append(image[:, top : top + size, left : left + size])
    return torch.stack(out)


def all_features(net: nn.Module, y: Tensor, batch: int = 16) -> dict[str, Tensor]:
    """Every feature set of ``y`` ``(N, 3, S, S)`` the map has (the embedding needs a two-pass
    map), one forward of the map per crop, in batches."""
    kinds = [k for k in FEATURES if k != "residual_embedding" or hasattr(net, "residual_encoder")]
    rows = [feature_sets(net, chunk, kinds) for chunk in y.split(batch)]
    return {k: torch.cat([r[k] for r in rows]) for k in kinds}


def labelled_set(
    net: nn.Module,
    members: Sequence[Any],
    images: Sequence[Tensor],
    per_class: int,
    size: int,
    seed: int,
) -> tuple[dict[str, Tensor], Tensor]:
    """Features of ``per_class`` degraded crops of ``images`` per family, and their labels."""
    g = torch.Generator().manual_seed(seed)
    feats: dict[str, list[Tensor]] = {}
    labels = []
    for label, member in enumerate(members):
        crops = random_crops(images, per_class, size, g)
        degraded, _ = member.apply(crops, g)
        for k, v in all_features(net, degraded.clamp(0, 1)).items():
            feats.setdefault(k, []).append(v)
        labels.append(torch.full((per_class,), label))
    return {k: torch.cat(v) for k, v in feats.items()}, torch.cat(labels)


def confusion(truth: Tensor, predicted: Tensor, classes: int) -> list[list[int]]:
    """``[true][predicted]`` counts.

    Example:
        >>> confusion(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1]), 2)
        [[1, 1], [0, 1]]
    """
    matrix = torch.zeros(classes, classes, dtype=torch.long)
    matrix.index_put_((truth, predicted), torch.ones_like(truth), accumulate=True)
    return matrix.tolist()


def accuracy_report(matrix: list[list[int]]) -> dict[str, Any]:
    """Overall and per-class accuracy of a confusion matrix (rows: true class)."""
    rows = enumerate(zip(CLASSES, matrix, strict=True))
    per_class = {name: row[i] / max(1, sum(row)) for i, (name, row) in rows}
    correct = sum(matrix[i][i] for i in range(len(matrix)))
    return {
        "accuracy": correct / max(1, sum(map(sum, matrix))),
        "per_class": per_class,
        "confusion": matrix,
    }


def load_net(args: argparse.Namespace) -> tuple[nn.Module, str]:
    if args.ckpt:
        from rcot_lightning.checkpoints.load import load_module

        return load_module(args.ckpt).map_for_inference.eval(), str(args.ckpt)
    from rcot_lightning.pretrained import load

    return load(args.model), f"bundled model {args.model}"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt", type=Path, help="a training checkpoint")
    source.add_argument("--model", help="a bundled model (rcot_lightning.pretrained)")
    parser.add_argument("--per-class", type=int, default=160, help="training crops per family")
    parser.add_argument("--test-per-class", type=int, default=120, help="held-out crops per family")
    parser.add_argument("--crop", type=int, default=96, help="crop side (pixels)")
    parser.add_argument("--photos", nargs="+", default=None, help="held-out photos")
    parser.add_argument("--ship", default="residual_spectrum", choices=FEATURES)
    parser.add_argument("--bundle-into", type=Path, default=None, help="a bundled .pt to extend")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from rcot_lightning.data.dead_leaves import dead_leaves
    from rcot_lightning.data.heldout import HELDOUT_PHOTOS, load_heldout
    from rcot_lightning.data.samples import load_photo

    start = time.perf_counter()
    net, described = load_net(args)
    members = families()
    train_photos = ("astronaut", "rocket", "motorcycle_left", "motorcycle_right", "brick", "grass")
    train_images = [load_photo(n) for n in train_photos]
    train_images += [dead_leaves(256, seed=1000 + i) for i in range(8)]
    photos = list(args.photos or HELDOUT_PHOTOS)
    test_images = [load_heldout(n) for n in photos]
    train_x, train_y = labelled_set(
        net, members, train_images, args.per_class, args.crop, args.seed
    )
    test_x, test_y = labelled_set(
        net, members, test_images, args.test_per_class, args.crop, args.seed + 1
    )
    kinds = list(train_x)
    probes: dict[str, Any] = {}
    detectors = {}
    for kind in kinds:
        detector = DegradationDetector.fit(train_x[kind], train_y, CLASSES, kind, crop=args.crop)
        detectors[kind] = detector
        predicted = detector.probabilities(test_x[kind]).argmax(1)
        probes[kind] = {
            "features": int(train_x[kind].shape[1]),
            "train_accuracy": float(
                (detector.probabilities(train_x[kind]).argmax(1) == train_y).float().mean()
            ),
            **accuracy_report(confusion(test_y, predicted, len(CLASSES))),
        }
        print(f"{kind}: held-out crop accuracy {probes[kind]['accuracy']:.3f}", file=sys.stderr)
    shipped = detectors[args.ship]
    whole = whole_photo_detection(net, shipped, photos)
    if args.bundle_into is not None:
        stored = torch.load(args.bundle_into, map_location="cpu", weights_only=True)
        stored["detector"] = shipped.to_dict()
        torch.save(stored, args.bundle_into)
    report = {
        "benchmark": "probe",
        "map": described,
        "classes": list(CLASSES),
        "families": [repr(m) for m in members],
        "crop": args.crop,
        "train": {
            "photos": list(train_photos),
            "dead_leaves": 8,
            "crops_per_class": args.per_class,
        },
        "test": {"photos": photos, "crops_per_class": args.test_per_class},
        "probes": probes,
        "shipped": args.ship,
        "whole_photos": whole,
        "bundled_into": None if args.bundle_into is None else str(args.bundle_into),
        "seed": args.seed,
        "seconds": round(time.perf_counter() - start, 1),
        "cpu": hardware.cpu_summary(),
        "torch": torch.__version__,
    }
    text = json.dumps(report, indent=1)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return report


def whole_photo_detection(
    net: nn.Module, detector: DegradationDetector, photos: Sequence[str]
) -> dict[str, Any]:
    """``detector.detect`` on every held-out severity of the six tasks (whole photos): what it
    names per input, and the share it names right per task."""
    from benchmarks.claims import allinone_photos

    rows = {}
    right: dict[str, list[bool]] = {}
    for name, (_, degraded) in allinone_photos(photos).items():
        task = name.split("/")[0]
        found = detector.detect(net, degraded)
        rows[name] = {"detected": found.name, "confidence": round(found.confidence, 3)}
        right.setdefault(task, []).append(found.name == TASK_CLASS[task])
    share = {task: sum(v) / len(v) for task, v in right.items()}
    total = [x for v in right.values() for x in v]
    print(f"whole photos named right: {sum(total)}/{len(total)}", file=sys.stderr)
    return {
        "crops": f"{detector.crops} crops of {detector.crop} px on a grid",
        "accuracy": sum(total) / len(total),
        "per_task": share,
        "inputs": rows,
    }


if __name__ == "__main__":
    main()
