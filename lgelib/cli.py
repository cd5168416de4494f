"""The ``lgelib`` command: check data, generate the embedded cohort, put a dataset on the canonical grid, run the
segmentation experiment, build the book."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

from lgelib import __version__
from lgelib.errors import DataError

DEFAULT_MANIFEST = "data_manifest/phantom.yaml"

EPILOG = """\
examples:
  lgelib validate data_manifest/phantom.yaml           check the embedded cohort (generates it on first use)
  lgelib validate data_manifest/emidec.yaml --root /path/to/emidec
  lgelib validate my_data.yaml --set split.seed=3      any manifest key can be overridden
  lgelib split data_manifest/phantom.yaml              show the train/test split
  lgelib prepare data_manifest/phantom.yaml --profile smoke --out runs/smoke/data
  lgelib phantom --out my_cohort --n-cases 48 --seed 1 write a cohort you can edit or share
  lgelib segment --profile smoke --arms N100,D100    nnU-Net with 100 synthetic volumes added, and its control
  lgelib experiment data_manifest/emidec.yaml --split-seeds 0,1,2 --seg-budget real-cpu-long --out runs/emidec
                                                       every stage on 3 splits, every arm; Table 1 with statistics
  lgelib book --profile smoke --split-seed 3           run the notebooks and build the book
  lgelib book --profile paper --manifest data_manifest/emidec.yaml --device cuda --set inr.fit.steps=3000

Manifests are documented in data_manifest/README.md; the schema is data_manifest/manifest.schema.json.
"""


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    from lgelib.data.manifest import parse_override

    overrides = dict(parse_override(item) for item in args.set or [])
    if getattr(args, "root", None):
        overrides["source.root"] = str(Path(args.root).resolve())
    if getattr(args, "split_seed", None) is not None:
        overrides["split.seed"] = args.split_seed
    return overrides


def _add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars")


def _add_manifest_arguments(parser: argparse.ArgumentParser) -> None:
    _add_quiet(parser)
    parser.add_argument(
        "manifest", nargs="?", default=DEFAULT_MANIFEST, help=f"data manifest (YAML; default: {DEFAULT_MANIFEST})"
    )
    parser.add_argument("--root", help="data folder; overrides the manifest's source.root (EMIDEC or NIfTI data)")
    parser.add_argument("--split-seed", type=int, help="overrides split.seed (seeded splits only)")
    parser.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override any manifest key, e.g. --set split.n_test=10 (repeatable)",
    )


def _command_validate(args: argparse.Namespace) -> int:
    from lgelib.config import get_profile
    from lgelib.data.validate import validate_dataset

    report = validate_dataset(
        args.manifest, _overrides(args), grid=get_profile(args.profile).grid, progress=not args.quiet
    )
    print(report.format())
    failed = not report.ok or (args.strict and report.warnings)
    return 1 if failed else 0


def _command_split(args: argparse.Namespace) -> int:
    from lgelib.data.dataset import open_dataset
    from lgelib.data.manifest import load_manifest

    dataset = open_dataset(load_manifest(args.manifest, _overrides(args)), progress=not args.quiet)
    split = dataset.split
    seed = f"seed {split.seed}" if split.seed is not None else "explicit lists"
    print(f"{dataset.manifest.name}: {len(dataset.cases)} cases; split by {seed}")
    print(f"train ({len(split.train)}): {' '.join(split.train)}")
    print(f"test  ({len(split.test)}): {' '.join(split.test)}")
    return 0


def _command_prepare(args: argparse.Namespace) -> int:
    from lgelib.config import get_profile
    from lgelib.data.manifest import load_manifest
    from lgelib.data.prepare import prepare_dataset
    from lgelib.layout import RunLayout

    grid = get_profile(args.profile).grid
    if args.z_mode:
        grid = dataclasses.replace(grid, z_mode=args.z_mode)
    manifest = load_manifest(args.manifest, _overrides(args))
    out = Path(args.out) if args.out else RunLayout(Path("runs") / args.profile).data
    path = prepare_dataset(manifest, grid, out, progress=not args.quiet, replace=args.force)
    print(f"wrote {path.parent} ({manifest.name} on grid {grid.shape}, {grid.z_mode})")
    return 0


def _command_phantom(args: argparse.Namespace) -> int:
    from lgelib.data.cohort import write_phantom_cohort
    from lgelib.data.phantom import PhantomSettings

    config = PhantomSettings(n_cases=args.n_cases, seed=args.seed)
    path = write_phantom_cohort(config, Path(args.out), progress=not args.quiet)
    print(f"wrote {config.n_cases} cases and {path}")
    return 0


def default_run_dir(profile: str, split_seed: int | None) -> Path:
    """``runs/<profile>``, or ``runs/<profile>-split<seed>`` for another split, so that each split keeps its own run
    and book."""
    return Path("runs") / (profile if split_seed is None else f"{profile}-split{split_seed}")


def _command_book(args: argparse.Namespace) -> int:
    from lgelib.data.manifest import parse_override
    from lgelib.pipeline import NotebookFailed, run_book

    if getattr(args, "root", None):
        os.environ["EMIDEC_ROOT"] = str(Path(args.root).expanduser().resolve())  # the notebooks' kernels inherit it
    run_dir = Path(args.run_dir or default_run_dir(args.profile, args.split_seed))
    parameters = {
        "profile": args.profile,
        "manifest": str(Path(args.manifest).resolve()),
        "split_seed": args.split_seed,
    }
    if args.device:
        parameters["device"] = args.device
    for item in (args.param or []) + (args.set or []):
        name, value = parse_override(item)
        parameters[name] = value
    try:
        result = run_book(run_dir, parameters, build=not args.no_build, progress=not args.quiet)
    except (NotebookFailed, RuntimeError) as error:  # a failed chapter, a missing extra, or a failed build
        print(f"lgelib book: {error}", file=sys.stderr)
        return 1
    print(f"lgelib book: {'executed notebooks in' if args.no_build else 'built'} {result}")
    return 0


def _run_options(args: argparse.Namespace, **extra: Any):
    """The run options a command's arguments name (`lgelib.run.parse_options`), ``--set`` items last."""
    from lgelib.data.manifest import parse_override
    from lgelib.run import parse_options

    items = {
        "profile": args.profile,
        "seg_budget": args.seg_budget,
        "seg_epochs": args.epochs,
        "generator": getattr(args, "generator", None),
        "inr": getattr(args, "inr", None),
        **extra,
    }
    items.update(dict(parse_override(item) for item in getattr(args, "setting", None) or []))
    return parse_options(items)


def _command_segment(args: argparse.Namespace) -> int:
    from lgelib.data.dataset import open_dataset
    from lgelib.data.manifest import load_manifest
    from lgelib.table1 import table1, table1_markdown
    from lgelib.segmentation import NnunetStageFailed, run_segmentation
    from lgelib.layout import RunLayout
    from lgelib.run import CONDITIONED_SOURCES, resolve_settings
    from lgelib.segmentation_setup import parse_arms

    settings = resolve_settings(_run_options(args)).segmentation
    arms = parse_arms(args.arms)
    run_dir = Path(args.run_dir or default_run_dir(args.profile, args.split_seed))
    synthetic = Path(args.synthetic) if args.synthetic else run_dir / "synth"
    real = open_dataset(load_manifest(args.manifest, _overrides(args)), progress=False)
    uses_synthetic = any(a.n_added and a.source == "synthetic" for a in arms)
    try:
        result = run_segmentation(
            real,
            synthetic if uses_synthetic else None,
            run_dir / "seg",
            settings,
            arms,
            args.device,
            added_dirs={
                a.source: RunLayout(run_dir).generated_set(a.source)
                for a in arms
                if a.n_added and a.source in CONDITIONED_SOURCES
            },
        )
    except NnunetStageFailed as error:
        print(f"lgelib segment: {error}", file=sys.stderr)
        return 1
    print(table1_markdown(table1(result.per_case)))
    print(f"lgelib segment: per-case Dice in {run_dir / 'seg' / 'per_case_dice.csv'}")
    return 0


def _command_experiment(args: argparse.Namespace) -> int:
    from lgelib.comparisons import headline
    from lgelib.experiment import run_experiment
    from lgelib.run import parse_split_seeds
    from lgelib.table1 import comparisons_markdown, table1, table1_markdown
    from lgelib.segmentation import NnunetStageFailed

    if args.root:
        os.environ["EMIDEC_ROOT"] = str(Path(args.root).resolve())
    options = _run_options(
        args, manifest=str(Path(args.manifest).resolve()), device=args.device, n_train=args.n_train, seg_arms=args.arms
    )
    seeds = parse_split_seeds(args.split_seeds)
    try:
        result = run_experiment(options, args.out, seeds)
    except NnunetStageFailed as error:
        print(f"lgelib experiment: {error}", file=sys.stderr)
        return 1
    print(f"\nTable 1 (mean Dice over {len(seeds)} splits; fibrosis over test cases with scar)\n")
    print(table1_markdown(table1(result.per_case)))
    print("\nVolume Dice and false scar on scar-free test cases, per arm\n")
    print(headline(result.per_case).round(3).to_markdown(index=False))
    print("\nEach arm against N0 (paired, cluster bootstrap over splits then cases; sign-flip p over splits, Holm)\n")
    print(comparisons_markdown(result.comparisons))
    print(f"\nlgelib experiment: {result.wall_seconds / 60:.1f} min; files in {args.out}")
    return 0


def _add_arm_arguments(parser: argparse.ArgumentParser, default_arms: str = "N0,N100,N200") -> None:
    parser.add_argument(
        "--arms",
        default=default_arms,
        help="comma-separated arms: N<n> (n synthetic volumes added), T<n> (n volumes of the scar-conditioned "
        "generator that even out the training set's scar levels), C<n> (n volumes of the same generator in the "
        "training set's own scar proportions: T's control), D<n> (n duplicates of real "
        "training cases: the control), P<n> (n new subjects of the calibrated phantom: a simulator as the "
        "generator), -balanced for a fixed real share of every batch, -seed<k> another training seed; "
        f"N0 is always run (default {default_arms})",
    )
    parser.add_argument(
        "--seg-budget",
        help="nnU-Net budget: smoke, real-cpu, real-cpu-long or paper (default: the profile's; real-cpu-long for "
        "the smoke profile on real scans)",
    )
    parser.add_argument("--epochs", type=int, help="override the budget's nnU-Net epochs")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: CUDA if available)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lgelib",
        description="Companion library of 'Synthesis of LGE images via implicit neural representations for "
        "cardiac scar segmentation': data manifests, the embedded synthetic LGE cohort, and the "
        "pipeline stages.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lgelib {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    validate = commands.add_parser(
        "validate",
        help="check a dataset: every problem of every case; exit 1 if any error",
        description="Read every case a manifest names and report every problem found, "
        "per case, naming the file. Exit status 1 if there is any error.",
    )
    _add_manifest_arguments(validate)
    validate.add_argument("--profile", default="smoke", help="whose canonical grid to check against (smoke, paper)")
    validate.add_argument("--strict", action="store_true", help="also fail on warnings")
    validate.set_defaults(handler=_command_validate)

    split = commands.add_parser("split", help="show a dataset's train/test split")
    _add_manifest_arguments(split)
    split.set_defaults(handler=_command_split)

    prepare = commands.add_parser(
        "prepare",
        help="put a dataset on the canonical grid (NIfTI + manifest)",
        description="Read, check, orient (base first), normalise and resample every case "
        "onto the profile's canonical grid; write NIfTI files, a manifest and "
        "the mapping back to each scan's own grid. Nothing is written if any "
        "case fails.",
    )
    _add_manifest_arguments(prepare)
    prepare.add_argument("--profile", default="smoke", help="smoke (8x64x64, 2.5 mm) or paper (12x128x128, 1.25 mm)")
    prepare.add_argument("--z-mode", choices=["lv_extent", "native"], help="through-plane sampling (default lv_extent)")
    prepare.add_argument("--out", help="output folder (default: runs/<profile>/data)")
    prepare.add_argument("--force", action="store_true", help="replace an existing output folder")
    prepare.set_defaults(handler=_command_prepare)

    phantom = commands.add_parser("phantom", help="write the synthetic LGE cohort as NIfTI files plus a manifest")
    _add_quiet(phantom)
    phantom.add_argument("--out", required=True, help="output folder (must not exist)")
    phantom.add_argument("--n-cases", type=int, default=24, help="number of subjects (default 24)")
    phantom.add_argument("--seed", type=int, default=0, help="cohort seed (default 0)")
    phantom.set_defaults(handler=_command_phantom)
    segment = commands.add_parser(
        "segment",
        help="train nnU-Net on the real training cases + N synthetic volumes; Dice on the test cases",
        description="The Table 1 experiment on its own: one nnU-Net per N (real training cases plus the first N "
        "volumes of the synthesis folder), predictions on each test scan's own grid, regional Dice. "
        "Trained models are reused, interrupted training resumes. Prints Table 1.",
    )
    _add_manifest_arguments(segment)
    segment.add_argument(
        "--profile", default="smoke", help="nnU-Net budget: smoke (small 2d, CPU) or paper (nnU-Net's default, GPU)"
    )
    segment.add_argument(
        "--run-dir",
        help="run directory (default: runs/<profile>, or runs/<profile>-split<N> "
        "with --split-seed N); writes RUN_DIR/seg",
    )
    segment.add_argument("--synthetic", help="synthesis folder (default: RUN_DIR/synth)")
    _add_arm_arguments(segment)
    segment.set_defaults(handler=_command_segment)

    experiment = commands.add_parser(
        "experiment",
        help="every stage on several splits, every arm, Table 1 with paired statistics",
        description="The whole experiment on each split seed: canonical grid, INRs (shared between splits), "
        "inr2vec, EDM and synthesis on that split's training cases, then one nnU-Net per arm; Table 1 "
        "over all splits, and each arm against N0 as paired differences with cluster-bootstrap "
        "intervals and Holm-adjusted split-level p-values. Finished work is reused.",
    )
    _add_quiet(experiment)
    experiment.add_argument("manifest", nargs="?", default=DEFAULT_MANIFEST, help="data manifest")
    experiment.add_argument("--root", help="data folder of an EMIDEC-layout manifest (sets EMIDEC_ROOT)")
    experiment.add_argument("--profile", default="smoke", help="settings of every stage (default smoke)")
    experiment.add_argument("--split-seeds", default="0,1,2", help="comma-separated split seeds (default 0,1,2)")
    experiment.add_argument("--out", required=True, help="experiment folder (one run directory per split inside)")
    experiment.add_argument("--n-train", type=int, help="only the first N training cases of each split")
    experiment.add_argument(
        "--generator",
        help="generator choices (lgelib.config.GENERATORS): paper (default), data, "
        "data+film+select+geometry or weights+select+geometry",
    )
    experiment.add_argument(
        "--inr",
        help="INR network and fit settings (lgelib.config.INRS): lgelib (default, the "
        "profile's own) or authors (the authors' published network)",
    )
    _add_arm_arguments(experiment, default_arms="N0,N0-seed1,N100,N200,N100-balanced,N200-balanced,D200")
    experiment.add_argument(
        "--set",
        dest="setting",
        action="append",
        metavar="KEY=VALUE",
        help="any setting of the run by dotted key, e.g. --set edm.steps=10000 (repeatable; lgelib.run.RunOptions)",
    )
    experiment.set_defaults(handler=_command_experiment)

    book = commands.add_parser(
        "book",
        help="run every notebook with papermill and build the Jupyter Book",
        description="Execute the notebooks in order (papermill) into RUN_DIR/notebooks, then "
        "build the book from the executed copies into RUN_DIR/book/_build/html. "
        "A failing notebook stops the run and names the cell and the error.",
    )
    _add_quiet(book)
    book.add_argument("--profile", default="smoke", help="smoke (CPU, minutes; default) or paper (GPU)")
    book.add_argument("--manifest", default=DEFAULT_MANIFEST, help=f"data manifest (default: {DEFAULT_MANIFEST})")
    book.add_argument(
        "--run-dir",
        help="where stages and the book are written (default: runs/<profile>, or "
        "runs/<profile>-split<N> with --split-seed N)",
    )
    book.add_argument("--split-seed", type=int, help="rerun with another train/test split (seeded splits)")
    book.add_argument("--device", help="cpu, cuda or cuda:N for the training stages (default: CUDA if available)")
    book.add_argument("--root", help="data folder of an EMIDEC-layout manifest (sets EMIDEC_ROOT for every chapter)")
    book.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="any setting of the run by dotted key, e.g. --set edm.steps=10000, or a run option "
        "(seg_arms=N0,N100) or a chapter's parameter (n_examples=5); repeatable. Written to "
        "RUN_DIR/run.json, which every chapter reads",
    )
    book.add_argument(
        "-p",
        "--param",
        action="append",
        metavar="NAME=VALUE",
        help="the same as --set; the short names steps, inr2vec_steps, edm_steps, n_synthetic, "
        "training_seed, synthesis_seed and seg_epochs stand for their dotted keys",
    )
    book.add_argument("--no-build", action="store_true", help="execute the notebooks only")
    book.set_defaults(handler=_command_book)
    return parser


def main(argv: list[str] | None = None) -> int:
    from lgelib.log import show_progress

    args = build_parser().parse_args(argv)
    show_progress()
    try:
        return args.handler(args)
    except DataError as error:
        print(error, file=sys.stderr)
        return 1
    except (FileExistsError, ValueError) as error:
        print(f"lgelib {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
